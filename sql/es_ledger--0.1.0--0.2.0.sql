/* es_ledger--0.1.0--0.2.0.sql: update es_ledger from 0.1.0 to 0.2.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION es_ledger UPDATE TO '0.2.0'" to load this file. \quit

-------------------------------------------------------------------------------
-- Look-alikes, before anything is created.  es_ledger is called and read with
-- unqualified names, so a function of one of its functions' names (whatever
-- its argument types), or a relation, view, type or domain of one of its
-- relations' names, that is not the extension's own would capture a
-- superuser's call or query once the extension is there, and run with the
-- superuser's rights.  The DDL guard reserves these names only from the
-- moment they are members; what was created before is found here: the
-- update is refused while any such object stands in a schema that a
-- non-superuser owns or may create in, or is owned by a non-superuser.
-- The lists are every name es_ledger 0.2.0 reserves (sql/lookalikes.sql
-- checks them against the members after the update).
-------------------------------------------------------------------------------
DO $lookalikes$
DECLARE
	functions CONSTANT pg_catalog.text[] := '{es_accounts_at,es_apply,es_balance_at,es_check_shape,es_deposit,
		es_digest,es_guard_ddl,es_guard_drop,es_guard_projection,
		es_history,es_log_handler,es_open_account,es_rebuild_projections,
		es_replay,es_restore_to,es_reverse,es_transfer,es_verify,
		es_verify_digest,es_withdraw}';
	relations CONSTANT pg_catalog.text[] := '{es_accounts,es_accounts_account_id_seq,es_accounts_account_key,
		es_accounts_pkey,es_commands,es_commands_pkey,es_events,
		es_events_account_version_key,es_events_command_id_idx,
		es_events_opened_idx,es_events_pkey,es_events_seq_seq}';
	ext CONSTANT pg_catalog.oid := (SELECT e.oid FROM pg_catalog.pg_extension e
									 WHERE e.extname OPERATOR(pg_catalog.=) 'es_ledger'::pg_catalog.name);
	found pg_catalog.text;
BEGIN
	SELECT pg_catalog.string_agg(o.what, '; ' ORDER BY o.what) INTO found
	  FROM (SELECT pg_catalog.format('%s %I.%I(%s) owned by %I',
									 CASE p.prokind WHEN 'a' THEN 'aggregate' WHEN 'p' THEN 'procedure'
									 ELSE 'function' END,
									 n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid),
									 pg_catalog.pg_get_userbyid(p.proowner)) AS what,
				   p.pronamespace AS nsp, p.proowner AS owner,
				   'pg_catalog.pg_proc'::pg_catalog.regclass AS cls, p.oid AS obj
			  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
			 WHERE p.proname::pg_catalog.text OPERATOR(pg_catalog.=) ANY (functions)
			UNION ALL
			SELECT pg_catalog.format('%s %I.%I owned by %I',
									 CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
									 WHEN 'S' THEN 'sequence' WHEN 'i' THEN 'index' WHEN 'I' THEN 'index'
									 WHEN 'c' THEN 'composite type' WHEN 'f' THEN 'foreign table' ELSE 'table' END,
									 n.nspname, c.relname, pg_catalog.pg_get_userbyid(c.relowner)),
				   c.relnamespace, c.relowner, 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid
			  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
			 WHERE c.relname::pg_catalog.text OPERATOR(pg_catalog.=) ANY (relations)
			UNION ALL
			SELECT pg_catalog.format('%s %I.%I owned by %I',
									 CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END, n.nspname, t.typname,
									 pg_catalog.pg_get_userbyid(t.typowner)),
				   t.typnamespace, t.typowner, 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid
			  FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
			 WHERE t.typname::pg_catalog.text OPERATOR(pg_catalog.=) ANY (relations)
			   AND t.typrelid OPERATOR(pg_catalog.=) 0::pg_catalog.oid) o
	 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_depend d	-- a member, or an index marked as the extension's
						WHERE d.classid OPERATOR(pg_catalog.=) o.cls AND d.objid OPERATOR(pg_catalog.=) o.obj
						  AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
						  AND d.refobjid OPERATOR(pg_catalog.=) ext)
	   AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i JOIN pg_catalog.pg_depend d	-- an index of a member table
						   ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
						  AND d.objid OPERATOR(pg_catalog.=) i.indrelid
						  AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
						  AND d.refobjid OPERATOR(pg_catalog.=) ext AND d.deptype OPERATOR(pg_catalog.=) 'e'
						WHERE o.cls OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
						  AND i.indexrelid OPERATOR(pg_catalog.=) o.obj)
	   AND (NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) o.owner)
			OR EXISTS (SELECT FROM pg_catalog.pg_roles r, pg_catalog.pg_namespace n
						WHERE n.oid OPERATOR(pg_catalog.=) o.nsp AND NOT r.rolsuper
						  AND (r.oid OPERATOR(pg_catalog.=) n.nspowner
							   OR pg_catalog.has_schema_privilege(r.oid, n.oid, 'CREATE'))));
	IF found IS NOT NULL THEN
		RAISE EXCEPTION USING
			ERRCODE = 'duplicate_object',
			MESSAGE = 'cannot update es_ledger to 0.2.0: objects bearing names it reserves already exist',
			DETAIL = 'Found: ' OPERATOR(pg_catalog.||) found OPERATOR(pg_catalog.||) '.  Each could capture an unqualified call or query meant for es_ledger and run with its caller''s rights.',
			HINT = 'Drop or rename each of them (or, as a superuser, move it to a schema that only superusers own and may create in), then run ALTER EXTENSION es_ledger UPDATE again.';
	END IF;
END
$lookalikes$;

-- No function is SECURITY DEFINER any more: the C code finds its tables by
-- OID and EXECUTE is the only gate (see the install script).
ALTER FUNCTION es_apply(jsonb) SECURITY INVOKER RESET search_path;
ALTER FUNCTION es_open_account(text, text, bigint, bigint, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION es_deposit(text, bigint, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION es_withdraw(text, bigint, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION es_transfer(text, text, bigint, text) SECURITY INVOKER RESET search_path;
ALTER FUNCTION es_replay(text, timestamptz, timestamptz) SECURITY INVOKER RESET search_path;

CREATE FUNCTION es_check_shape(rel regclass, shape regclass) RETURNS boolean
	AS 'MODULE_PATHNAME', 'es_check_shape' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION es_check_shape(regclass, regclass) IS
	'true if table rel has the columns this library expects of es_events, es_accounts or es_commands; 55000 otherwise';
REVOKE ALL ON FUNCTION es_check_shape(regclass, regclass) FROM PUBLIC;

-- Separation of duties: es_ledger_admin administers accounts, writers only
-- move money (es_apply checks each command's type against the caller too).
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'es_ledger_admin'::pg_catalog.name) THEN
		CREATE ROLE es_ledger_admin NOLOGIN;
	END IF;
END
$roles$;
GRANT es_ledger_reader TO es_ledger_admin;
REVOKE EXECUTE ON FUNCTION es_open_account(text, text, bigint, bigint, text) FROM es_ledger_writer;
GRANT EXECUTE ON FUNCTION es_apply(jsonb) TO es_ledger_admin;
GRANT EXECUTE ON FUNCTION es_open_account(text, text, bigint, bigint, text) TO es_ledger_admin;

-- pg_dump dumps the ledger (0.1.0's dumps held only CREATE EXTENSION): the
-- tables' rows, es_events in (account_id, version) order for the verified
-- restore (es_ledger.restore), and the sequences' values.
SELECT pg_catalog.pg_extension_config_dump('es_events', 'WHERE true ORDER BY account_id, version');
SELECT pg_catalog.pg_extension_config_dump('es_accounts', '');
SELECT pg_catalog.pg_extension_config_dump('es_commands', '');
SELECT pg_catalog.pg_extension_config_dump('es_events_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('es_accounts_account_id_seq', '');


-------------------------------------------------------------------------------
-- Superuser guard (es_guard.c): the guard triggers and event triggers fire
-- ALWAYS, es_guard_ddl fires for every command, and the extension's own
-- indexes carry the DEPENDS ON EXTENSION mark that protects them from DROP.
-------------------------------------------------------------------------------
ALTER TABLE es_accounts ENABLE ALWAYS TRIGGER es_guard;
ALTER TABLE es_commands ENABLE ALWAYS TRIGGER es_guard;
DROP EVENT TRIGGER es_guard_ddl;
CREATE EVENT TRIGGER es_guard_ddl ON ddl_command_start
	EXECUTE FUNCTION es_guard_ddl();
ALTER EVENT TRIGGER es_guard_ddl ENABLE ALWAYS;
ALTER EVENT TRIGGER es_guard_rewrite ENABLE ALWAYS;
ALTER EVENT TRIGGER es_guard_drop ENABLE ALWAYS;
ALTER INDEX es_events_pkey DEPENDS ON EXTENSION es_ledger;
ALTER INDEX es_events_account_version_key DEPENDS ON EXTENSION es_ledger;
ALTER INDEX es_events_command_id_idx DEPENDS ON EXTENSION es_ledger;
ALTER INDEX es_events_opened_idx DEPENDS ON EXTENSION es_ledger;
ALTER INDEX es_accounts_pkey DEPENDS ON EXTENSION es_ledger;
ALTER INDEX es_accounts_account_key DEPENDS ON EXTENSION es_ledger;
ALTER INDEX es_commands_pkey DEPENDS ON EXTENSION es_ledger;

-- es_guard_drop finds the extension's schema by OID when it runs: 0.1.0
-- compared with the name the schema had at install, so a renamed schema
-- left the guard triggers unprotected.
CREATE OR REPLACE FUNCTION es_guard_drop() RETURNS event_trigger LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
	extschema text;
	dropped record;
BEGIN
	IF EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects()
				WHERE object_type OPERATOR(pg_catalog.=) 'extension'
				  AND object_identity OPERATOR(pg_catalog.=) 'es_ledger') THEN
		RETURN;
	END IF;
	-- The extension's schema by its name now, not at install: it may have
	-- been renamed since (0.1.0 did not refuse it).
	SELECT n.nspname INTO extschema
	  FROM pg_catalog.pg_extension e
	  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
	 WHERE e.extname OPERATOR(pg_catalog.=) 'es_ledger';
	FOR dropped IN
		SELECT object_identity FROM pg_catalog.pg_event_trigger_dropped_objects()
		 WHERE object_type OPERATOR(pg_catalog.=) 'trigger'
		   AND address_names[3] OPERATOR(pg_catalog.=) 'es_guard'
		   AND address_names[1] OPERATOR(pg_catalog.=) extschema
	LOOP
		RAISE EXCEPTION 'cannot drop guard trigger %', dropped.object_identity
			USING ERRCODE = 'ES011',
				  DETAIL = 'Projections are written only by es_apply; the guard triggers enforce it.';
	END LOOP;
END
$fn$;

-------------------------------------------------------------------------------
-- Integrity: the verifier and digests (es_verify.c).  Readers may run them;
-- they read one snapshot and block no writer.
-------------------------------------------------------------------------------
CREATE FUNCTION es_verify(account text DEFAULT NULL)
	RETURNS TABLE(check_name text, ok boolean, checked bigint, first_bad_seq bigint, detail text)
	AS 'MODULE_PATHNAME', 'es_verify' LANGUAGE C VOLATILE;
CREATE FUNCTION es_digest() RETURNS TABLE(seq bigint, digest bytea)
	AS 'MODULE_PATHNAME', 'es_digest' LANGUAGE C VOLATILE;
CREATE FUNCTION es_verify_digest(seq bigint, digest bytea) RETURNS boolean
	AS 'MODULE_PATHNAME', 'es_verify_digest' LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION es_verify(text), es_digest(), es_verify_digest(bigint, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION es_verify(text), es_digest(), es_verify_digest(bigint, bytea)
	TO es_ledger_reader;

-------------------------------------------------------------------------------
-- Time travel (es_history.c): the log read as of a time, from the log alone.
-- Readers may run them; they read the statement's snapshot and block no
-- writer.
-------------------------------------------------------------------------------
CREATE FUNCTION es_history(account text, since timestamptz DEFAULT NULL,
		until timestamptz DEFAULT NULL)
	RETURNS TABLE(seq bigint, version bigint, type text, amount bigint, balance_after bigint,
		recorded_at timestamptz, effective_at timestamptz, command_id text, data jsonb)
	AS 'MODULE_PATHNAME', 'es_history' LANGUAGE C STABLE;
CREATE FUNCTION es_balance_at(account text, as_of timestamptz) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_balance_at' LANGUAGE C STABLE;
CREATE FUNCTION es_accounts_at(as_of timestamptz) RETURNS SETOF es_accounts
	AS 'MODULE_PATHNAME', 'es_accounts_at' LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION es_history(text, timestamptz, timestamptz),
	es_balance_at(text, timestamptz), es_accounts_at(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION es_history(text, timestamptz, timestamptz),
	es_balance_at(text, timestamptz), es_accounts_at(timestamptz)
	TO es_ledger_reader;

-------------------------------------------------------------------------------
-- Undo by compensation (es_reverse.c): the compensating command of an
-- applied command, applied like any command.  Administrators only.
-------------------------------------------------------------------------------
CREATE FUNCTION es_reverse(command_id text, id text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_reverse' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION es_reverse(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION es_reverse(text, text) TO es_ledger_admin;

-------------------------------------------------------------------------------
-- Tools for the database administrator (es_dba.c): the projection rebuilt
-- from the log in place, or restored as of a time into a new schema.  For
-- the extension owner and superusers only: EXECUTE is granted to nobody.
-------------------------------------------------------------------------------
CREATE FUNCTION es_rebuild_projections() RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_rebuild_projections' LANGUAGE C VOLATILE;
CREATE FUNCTION es_restore_to(as_of timestamptz, target_schema text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_restore_to' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION es_rebuild_projections(), es_restore_to(timestamptz, text)
	FROM PUBLIC;
