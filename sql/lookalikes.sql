-- lookalikes: a database owner cannot become superuser through objects
-- bearing es_ledger's names that it planted BEFORE CREATE EXTENSION or
-- ALTER EXTENSION UPDATE (the DDL guard reserves names only once they are
-- members).  Each install and update script refuses, before it creates
-- anything, while such an object is not the extension's and stands in a
-- schema a non-superuser owns or may create in, or is owned by a
-- non-superuser.  Runs after upgrade: it drops and re-creates the extension.
\set VERBOSITY default
SET es_ledger.allow_drop = on;
SET client_min_messages = warning;
DROP EXTENSION es_ledger CASCADE;
RESET client_min_messages;
RESET es_ledger.allow_drop;

-- the attacker owns the database, so it owns public (PostgreSQL 15); its
-- look-alikes would make it superuser if a superuser ever called them
CREATE ROLE la_owner;
CREATE FUNCTION pg_temp.set_db_owner(r text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN EXECUTE format('ALTER DATABASE %I OWNER TO %I', current_database(), r); END $$;
SELECT pg_temp.set_db_owner('la_owner');
SET ROLE la_owner;
CREATE FUNCTION la_escalate() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
		ALTER ROLE la_owner SUPERUSER;
	END IF;
	RETURN 1;
END $$;
-- same signature, other argument types, a procedure, an aggregate, in
-- public and in a schema earlier in search_path
CREATE FUNCTION public.es_apply(text) RETURNS bigint LANGUAGE sql AS 'SELECT la_escalate()';
CREATE FUNCTION public.es_deposit(text, bigint, text DEFAULT NULL) RETURNS bigint LANGUAGE sql AS 'SELECT la_escalate()';
CREATE SCHEMA la_early;
CREATE FUNCTION la_early.es_transfer(text, text, integer) RETURNS bigint LANGUAGE sql AS 'SELECT la_escalate()';
CREATE PROCEDURE la_early.es_expire_pending() LANGUAGE sql AS 'SELECT la_escalate()';
CREATE AGGREGATE public.es_history(int) (SFUNC = int4pl, STYPE = int);
-- relations, views, types and domains named like its relations
CREATE VIEW la_early.es_accounts AS SELECT 'x'::text AS account, la_escalate() AS balance;
CREATE TABLE public.es_transfers (x int);
CREATE DOMAIN la_early.es_events AS int;
CREATE TYPE public.es_snapshots AS (x int);
CREATE SEQUENCE la_early.es_events_seq_seq;
-- a name es_ledger does not reserve stays the owner's
CREATE FUNCTION public.es_apply_more(jsonb) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint';
RESET ROLE;

-- the install is refused, naming each look-alike, and creates nothing
SET search_path = la_early, public;
CREATE EXTENSION es_ledger;
SELECT count(*) AS es_ledger_installed FROM pg_extension WHERE extname = 'es_ledger';
SELECT count(*) AS es_log_created FROM pg_am WHERE amname = 'es_log';
-- in a schema of its own, with public (the owner's) first in search_path: the same
CREATE SCHEMA la_ledger;
SET search_path = public, la_ledger;
CREATE EXTENSION es_ledger SCHEMA la_ledger;
RESET search_path;

-- objects a superuser made in a schema only superusers own and may create
-- in are its own affair and do not stop the install; one owned by a
-- non-superuser there does (its owner may replace its body)
CREATE SCHEMA la_trusted;
CREATE FUNCTION la_trusted.es_apply(text) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint';
CREATE FUNCTION la_trusted.es_withdraw(int) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint';
ALTER FUNCTION la_trusted.es_withdraw(int) OWNER TO la_owner;
-- once granted CREATE, the schema counts as the non-superuser's
GRANT CREATE ON SCHEMA la_trusted TO PUBLIC;
DROP FUNCTION public.es_apply(text), public.es_deposit(text, bigint, text), la_early.es_transfer(text, text, integer);
DROP PROCEDURE la_early.es_expire_pending();
DROP AGGREGATE public.es_history(int);
DROP VIEW la_early.es_accounts;
DROP TABLE public.es_transfers;
DROP DOMAIN la_early.es_events;
DROP TYPE public.es_snapshots;
DROP SEQUENCE la_early.es_events_seq_seq;
CREATE EXTENSION es_ledger;
REVOKE CREATE ON SCHEMA la_trusted FROM PUBLIC;
CREATE EXTENSION es_ledger;
DROP FUNCTION la_trusted.es_withdraw(int);
CREATE EXTENSION es_ledger;
SELECT extversion FROM pg_extension WHERE extname = 'es_ledger';
DROP FUNCTION la_trusted.es_apply(text);
SET es_ledger.allow_drop = on;
DROP EXTENSION es_ledger CASCADE;
RESET es_ledger.allow_drop;

-- the update: the names a version adds are free until ALTER EXTENSION
-- UPDATE; look-alikes planted in that window stop the update
CREATE EXTENSION es_ledger VERSION '0.1.0';
SET ROLE la_owner;
CREATE FUNCTION public.es_verify(text) RETURNS bigint LANGUAGE sql AS 'SELECT la_escalate()';
CREATE FUNCTION la_early.es_digest(int) RETURNS bigint LANGUAGE sql AS 'SELECT la_escalate()';
RESET ROLE;
ALTER EXTENSION es_ledger UPDATE TO '0.2.0';
SELECT extversion FROM pg_extension WHERE extname = 'es_ledger';
DROP FUNCTION public.es_verify(text), la_early.es_digest(int);
ALTER EXTENSION es_ledger UPDATE TO '0.2.0';
SET ROLE la_owner;
CREATE FUNCTION public.es_read(text) RETURNS bigint LANGUAGE sql AS 'SELECT la_escalate()';
CREATE FUNCTION la_early.es_apply_each(text) RETURNS bigint LANGUAGE sql AS 'SELECT la_escalate()';
CREATE VIEW public.es_projections AS SELECT la_escalate() AS x;
CREATE TABLE la_early.es_transfers_pkey (x int);
RESET ROLE;
ALTER EXTENSION es_ledger UPDATE TO '0.3.0';
ALTER EXTENSION es_ledger UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'es_ledger';
DROP FUNCTION public.es_read(text), la_early.es_apply_each(text);
DROP VIEW public.es_projections;
DROP TABLE la_early.es_transfers_pkey;
ALTER EXTENSION es_ledger UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'es_ledger';

-- no look-alike was ever called by a superuser
SELECT rolsuper AS la_owner_is_superuser FROM pg_roles WHERE rolname = 'la_owner';

-- each script's lists are exactly the names of the members it leaves: the
-- functions' names, and the relations' (with the indexes of its tables)
CREATE FUNCTION pg_temp.script_list(file text, list text) RETURNS SETOF text LANGUAGE sql AS $$
	SELECT unnest((regexp_match(pg_read_file((SELECT setting FROM pg_config WHERE name = 'SHAREDIR')
											 || '/extension/' || file),
								list || ' CONSTANT pg_catalog.text\[\] := ''(\{[^}]*\})'''))[1]::text[])
$$;
CREATE FUNCTION pg_temp.member_names(kind text) RETURNS SETOF text LANGUAGE sql AS $$
	WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'es_ledger'),
	members AS (SELECT classid, objid, deptype FROM pg_depend, ext
				 WHERE refclassid = 'pg_extension'::regclass AND refobjid = ext.oid)
	SELECT p.proname::text FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
	 WHERE kind = 'functions'
	UNION
	SELECT c.relname::text FROM pg_class c
	 WHERE kind = 'relations'
	   AND (c.oid IN (SELECT objid FROM members WHERE classid = 'pg_class'::regclass)
			OR c.oid IN (SELECT i.indexrelid FROM pg_index i JOIN members m
							ON m.classid = 'pg_class'::regclass AND m.objid = i.indrelid AND m.deptype = 'e'))
	UNION
	SELECT t.typname::text FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
	 WHERE kind = 'relations'
$$;
CREATE FUNCTION pg_temp.list_differs(file text) RETURNS SETOF text LANGUAGE sql AS $$
	SELECT file || ' ' || k || ' list lacks ' || n FROM unnest(ARRAY['functions', 'relations']) k,
		LATERAL (SELECT pg_temp.member_names(k) EXCEPT SELECT pg_temp.script_list(file, k)) x(n)
	UNION ALL
	SELECT file || ' ' || k || ' list has no member ' || n FROM unnest(ARRAY['functions', 'relations']) k,
		LATERAL (SELECT pg_temp.script_list(file, k) EXCEPT SELECT pg_temp.member_names(k)) x(n)
$$;
SELECT count(*) > 40 AS lists_read FROM (SELECT pg_temp.script_list('es_ledger--0.4.0.sql', 'functions')
										UNION ALL SELECT pg_temp.script_list('es_ledger--0.4.0.sql', 'relations')) x;
SELECT * FROM pg_temp.list_differs((SELECT 'es_ledger--0.3.0--' || extversion || '.sql'
									  FROM pg_extension WHERE extname = 'es_ledger'));
SET es_ledger.allow_drop = on;
DROP EXTENSION es_ledger CASCADE;
RESET es_ledger.allow_drop;
CREATE EXTENSION es_ledger;
SELECT * FROM pg_temp.list_differs('es_ledger--0.4.0.sql');
SET es_ledger.allow_drop = on;
DROP EXTENSION es_ledger CASCADE;
RESET es_ledger.allow_drop;
CREATE EXTENSION es_ledger VERSION '0.1.0';
SELECT * FROM pg_temp.list_differs('es_ledger--0.1.0.sql');
ALTER EXTENSION es_ledger UPDATE TO '0.2.0';
SELECT * FROM pg_temp.list_differs('es_ledger--0.1.0--0.2.0.sql');
ALTER EXTENSION es_ledger UPDATE TO '0.3.0';
SELECT * FROM pg_temp.list_differs('es_ledger--0.2.0--0.3.0.sql');

-- leave a fresh ledger, the database back with its owner
SET es_ledger.allow_drop = on;
DROP EXTENSION es_ledger CASCADE;
RESET es_ledger.allow_drop;
CREATE EXTENSION es_ledger;
SELECT pg_temp.set_db_owner(current_user);
DROP SCHEMA la_early, la_trusted, la_ledger;
DROP FUNCTION public.es_apply_more(jsonb), public.la_escalate();
DROP ROLE la_owner;
