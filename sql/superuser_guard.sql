-- superuser_guard: what a superuser could once do to get past the guards,
-- now refused with ES011 (pg_regress runs as a superuser), what stays
-- allowed, and the limit that software cannot close.
SELECT current_setting('is_superuser') AS superuser;
SELECT es_open_account('sg-a', 'USD') > 0 AS ok;
SELECT es_deposit('sg-a', 50) > 0 AS ok;
CREATE TABLE sg_before AS SELECT count(*) AS n, sum(amount) AS total FROM es_events;

-- 1. the guard triggers and the event triggers fire ALWAYS, so replica mode
--    silences none of them
SELECT tgrelid::regclass AS "table", tgenabled FROM pg_trigger WHERE tgname = 'es_guard' ORDER BY 1;
SELECT evtname, evtevent, evtenabled, evttags FROM pg_event_trigger ORDER BY 1;
SET session_replication_role = replica;
SELECT try($$INSERT INTO es_accounts SELECT * FROM es_accounts LIMIT 1 RETURNING 1$$);
SELECT try($$UPDATE es_accounts SET balance = 1000000 WHERE account = 'sg-a' RETURNING 1$$);
SELECT try($$DELETE FROM es_commands RETURNING 1$$);
SELECT try($$INSERT INTO es_events SELECT * FROM es_events LIMIT 1 RETURNING 1$$);
SELECT try($$CREATE RULE sg AS ON UPDATE TO es_accounts DO INSTEAD NOTHING$$);
RESET session_replication_role;
-- and nobody can turn ALWAYS back to ORIGIN (or REPLICA, or off)
SELECT try($$ALTER TABLE es_accounts ENABLE TRIGGER es_guard$$);
SELECT try($$ALTER TABLE es_accounts ENABLE ALWAYS TRIGGER es_guard$$);
SELECT try($$ALTER TABLE es_commands ENABLE REPLICA TRIGGER es_guard$$);
SELECT try($$ALTER TABLE es_commands ENABLE TRIGGER ALL$$);
SELECT try($$ALTER TABLE es_commands ENABLE TRIGGER USER$$);
SELECT try($$ALTER TABLE es_events DISABLE TRIGGER ALL$$);

-- 2. no user code runs inside es_apply's writes: no trigger, rule, policy,
--    row level security or constraint on the extension's tables
CREATE FUNCTION sg_noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
SELECT try($$CREATE TRIGGER sg AFTER INSERT ON es_events FOR EACH ROW EXECUTE FUNCTION sg_noop()$$);
SELECT try($$CREATE TRIGGER sg BEFORE UPDATE ON es_accounts FOR EACH ROW EXECUTE FUNCTION sg_noop()$$);
SELECT try($$CREATE OR REPLACE TRIGGER es_guard BEFORE INSERT ON es_accounts FOR EACH STATEMENT EXECUTE FUNCTION sg_noop()$$);
SELECT try($$CREATE CONSTRAINT TRIGGER sg AFTER INSERT ON es_commands FOR EACH ROW EXECUTE FUNCTION sg_noop()$$);
SELECT try($$CREATE RULE sg AS ON INSERT TO es_events DO ALSO NOTIFY sg$$);
SELECT try($$CREATE POLICY sg ON es_accounts USING (true)$$);
SELECT try($$ALTER TABLE es_accounts ENABLE ROW LEVEL SECURITY$$);
SELECT try($$ALTER TABLE es_events FORCE ROW LEVEL SECURITY$$);
SELECT try($$ALTER TABLE es_events ADD CONSTRAINT sg CHECK (amount <> 13)$$);
SELECT try($$ALTER TABLE es_accounts ADD CONSTRAINT sg UNIQUE (account, currency)$$);
SELECT try($$ALTER TABLE es_accounts DROP CONSTRAINT es_accounts_account_key$$);
SELECT try($$ALTER TABLE es_events DROP CONSTRAINT es_events_pkey$$);
SELECT try($$ALTER TABLE es_events ALTER COLUMN tx SET DEFAULT '0'$$);
SELECT try($$ALTER TABLE es_accounts ALTER COLUMN max_balance SET NOT NULL$$);
-- inheritance and partitions, both directions
CREATE TABLE sg_plain (LIKE es_events);
CREATE TABLE sg_parted (LIKE es_events) PARTITION BY LIST (seq);
SELECT try($$CREATE TABLE sg_child () INHERITS (es_events)$$);
SELECT try($$ALTER TABLE sg_plain INHERIT es_events$$);
SELECT try($$ALTER TABLE es_events INHERIT sg_plain$$);
SELECT try($$ALTER TABLE es_events NO INHERIT sg_plain$$);
SELECT try($$CREATE TABLE sg_part PARTITION OF es_events FOR VALUES IN (1)$$);
SELECT try($$ALTER TABLE sg_parted ATTACH PARTITION es_events FOR VALUES IN (1)$$);
SELECT try($$ALTER TABLE sg_parted DETACH PARTITION es_events$$);
SELECT try($$ALTER TABLE es_events ATTACH PARTITION sg_plain FOR VALUES IN (1)$$);
-- persistence, owner, schema
SELECT try($$ALTER TABLE es_accounts SET UNLOGGED$$);
SELECT try($$ALTER TABLE es_events SET LOGGED$$);
CREATE ROLE sg_other;
CREATE SCHEMA sg_elsewhere;
SELECT try($$ALTER TABLE es_accounts OWNER TO sg_other$$);
SELECT try($$ALTER TABLE es_commands SET SCHEMA sg_elsewhere$$);
-- sequences
SELECT try($$ALTER SEQUENCE es_events_seq_seq RESTART WITH 1$$);
SELECT try($$ALTER SEQUENCE es_events_seq_seq OWNED BY NONE$$);
SELECT try($$ALTER SEQUENCE es_events_seq_seq OWNER TO sg_other$$);
SELECT try($$ALTER SEQUENCE es_accounts_account_id_seq SET SCHEMA sg_elsewhere$$);
SELECT try($$DROP SEQUENCE es_events_seq_seq$$);
SELECT try($$DROP SEQUENCE es_accounts_account_id_seq CASCADE$$);
-- functions and the access method
SELECT try($$ALTER FUNCTION es_apply(jsonb) OWNER TO sg_other$$);
SELECT try($$ALTER FUNCTION es_apply(jsonb) SECURITY INVOKER$$);
SELECT try($$ALTER FUNCTION es_apply(jsonb) RESET ALL$$);
SELECT try($$ALTER FUNCTION es_deposit(text, bigint, text, jsonb, timestamptz) RENAME TO sg$$);
SELECT try($$ALTER FUNCTION es_replay(text, timestamptz, timestamptz) SET SCHEMA sg_elsewhere$$);
SELECT try($$CREATE OR REPLACE FUNCTION es_guard_projection() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'$$);
SELECT try($$CREATE OR REPLACE FUNCTION public.es_guard_ddl() RETURNS event_trigger LANGUAGE plpgsql AS 'BEGIN END'$$);
SELECT try($$DROP FUNCTION es_log_handler(internal) CASCADE$$);
SELECT try($$DROP ACCESS METHOD es_log CASCADE$$);
-- the names of the extension's functions are reserved in every schema: a
-- function of the same name with other arguments, or a default argument, or
-- in a schema earlier in search_path, would capture unqualified calls
SELECT try($$CREATE FUNCTION public.es_apply(text) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint'$$);
SELECT try($$CREATE OR REPLACE FUNCTION es_apply(text) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint'$$);
SELECT try($$CREATE FUNCTION es_apply(jsonb, int DEFAULT 0) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint'$$);
SELECT try($$CREATE FUNCTION sg_elsewhere.es_apply(jsonb) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint'$$);
SELECT try($$CREATE OR REPLACE FUNCTION sg_elsewhere.es_apply(jsonb) RETURNS bigint LANGUAGE sql AS 'SELECT 1::bigint'$$);
SELECT try($$CREATE FUNCTION es_deposit(text, integer, text) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint'$$);
SELECT try($$CREATE FUNCTION es_transfer(text, text, integer, text) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint'$$);
SELECT try($$CREATE FUNCTION sg_elsewhere.es_replay(text) RETURNS int LANGUAGE sql AS 'SELECT 0'$$);
SELECT try($$CREATE PROCEDURE sg_elsewhere.es_withdraw() LANGUAGE sql AS 'SELECT 0'$$);
SELECT try($$CREATE AGGREGATE sg_elsewhere.es_open_account(int) (SFUNC = int4pl, STYPE = int)$$);
SELECT try($$CREATE FUNCTION sg_elsewhere.es_check_shape(int) RETURNS int LANGUAGE sql AS 'SELECT 0'$$);
SELECT try($$CREATE FUNCTION sg_elsewhere.es_guard_ddl() RETURNS event_trigger LANGUAGE plpgsql AS 'BEGIN END'$$);
SELECT try($$CREATE FUNCTION sg_elsewhere.es_log_handler(internal) RETURNS table_am_handler LANGUAGE internal AS 'heap_tableam_handler'$$);
-- (a range type's constructor functions are named like the type)
SELECT try($$CREATE TYPE sg_elsewhere.es_apply AS RANGE (SUBTYPE = int)$$);
-- and so are those of its tables, sequences and types, for every kind of
-- relation and type, however it is made: a relation of the same name in a
-- schema earlier in search_path would be read instead
CREATE FOREIGN DATA WRAPPER sg_fdw;
CREATE SERVER sg_server FOREIGN DATA WRAPPER sg_fdw;
SELECT try($$CREATE VIEW sg_elsewhere.es_accounts AS SELECT * FROM public.es_accounts$$);
SELECT try($$CREATE TABLE sg_elsewhere.es_events (LIKE public.es_events)$$);
SELECT try($$CREATE TABLE sg_elsewhere.es_commands AS SELECT 1 AS x$$);
SELECT try($$CREATE MATERIALIZED VIEW sg_elsewhere.es_accounts AS SELECT 1 AS x$$);
SELECT try($$CREATE FOREIGN TABLE sg_elsewhere.es_accounts (x int) SERVER sg_server$$);
SELECT try($$CREATE SEQUENCE sg_elsewhere.es_events_seq_seq$$);
SELECT try($$CREATE TYPE sg_elsewhere.es_accounts AS (balance bigint)$$);
SELECT try($$CREATE TYPE sg_elsewhere.es_events AS ENUM ('x')$$);
SELECT try($$CREATE TYPE sg_elsewhere.es_events$$);
SELECT try($$CREATE DOMAIN sg_elsewhere.es_commands AS int$$);
SELECT try($$CREATE TEMP VIEW es_accounts AS SELECT 1 AS x$$);
SELECT try($$CREATE SCHEMA sg_more CREATE VIEW es_events AS SELECT 1 AS x$$);
\set VERBOSITY sqlstate
SELECT 1 AS x INTO sg_elsewhere.es_commands;
\set VERBOSITY default
-- renaming to a reserved name is refused too
CREATE FUNCTION sg_elsewhere.sg_f(text) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint';
CREATE PROCEDURE sg_elsewhere.sg_p() LANGUAGE sql AS 'SELECT 0';
CREATE AGGREGATE sg_elsewhere.sg_agg(int) (SFUNC = int4pl, STYPE = int);
CREATE TABLE sg_elsewhere.sg_t (x int);
CREATE VIEW sg_elsewhere.sg_v AS SELECT 1 AS x;
CREATE MATERIALIZED VIEW sg_elsewhere.sg_mv AS SELECT 1 AS x;
CREATE SEQUENCE sg_elsewhere.sg_s;
CREATE INDEX sg_i ON sg_elsewhere.sg_t (x);
CREATE TYPE sg_elsewhere.sg_comp AS (x int);
CREATE TYPE sg_elsewhere.sg_enum AS ENUM ('x');
CREATE DOMAIN sg_elsewhere.sg_dom AS int;
SELECT try($$CREATE INDEX es_accounts_account_id_seq ON sg_elsewhere.sg_t (x)$$);
SELECT try($$ALTER FUNCTION sg_elsewhere.sg_f(text) RENAME TO es_apply$$);
SELECT try($$ALTER PROCEDURE sg_elsewhere.sg_p() RENAME TO es_transfer$$);
SELECT try($$ALTER AGGREGATE sg_elsewhere.sg_agg(int) RENAME TO es_deposit$$);
SELECT try($$ALTER ROUTINE sg_elsewhere.sg_f(text) RENAME TO es_replay$$);
SELECT try($$ALTER TABLE sg_elsewhere.sg_t RENAME TO es_accounts$$);
SELECT try($$ALTER VIEW sg_elsewhere.sg_v RENAME TO es_events$$);
SELECT try($$ALTER MATERIALIZED VIEW sg_elsewhere.sg_mv RENAME TO es_commands$$);
SELECT try($$ALTER SEQUENCE sg_elsewhere.sg_s RENAME TO es_accounts_account_id_seq$$);
SELECT try($$ALTER INDEX sg_elsewhere.sg_i RENAME TO es_events$$);
SELECT try($$ALTER TYPE sg_elsewhere.sg_comp RENAME TO es_accounts$$);
SELECT try($$ALTER TYPE sg_elsewhere.sg_enum RENAME TO es_accounts$$);
SELECT try($$ALTER DOMAIN sg_elsewhere.sg_dom RENAME TO es_commands$$);
DROP FUNCTION sg_elsewhere.sg_f(text);
DROP PROCEDURE sg_elsewhere.sg_p();
DROP AGGREGATE sg_elsewhere.sg_agg(int);
DROP VIEW sg_elsewhere.sg_v;
DROP MATERIALIZED VIEW sg_elsewhere.sg_mv;
DROP TABLE sg_elsewhere.sg_t;
DROP SEQUENCE sg_elsewhere.sg_s;
DROP TYPE sg_elsewhere.sg_comp, sg_elsewhere.sg_enum;
DROP DOMAIN sg_elsewhere.sg_dom;
-- other names, and other kinds of object, stay the user's: a table named
-- like a function, a function named like a table, a renamed column
CREATE TABLE sg_elsewhere.es_apply (es_events int);
CREATE FUNCTION sg_elsewhere.es_accounts() RETURNS int LANGUAGE sql AS 'SELECT 0';
ALTER TABLE sg_elsewhere.es_apply RENAME COLUMN es_events TO es_commands;
CREATE FUNCTION sg_elsewhere.es_apply_more(jsonb) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint';
DROP TABLE sg_elsewhere.es_apply;
DROP FUNCTION sg_elsewhere.es_accounts(), sg_elsewhere.es_apply_more(jsonb);
-- a look-alike made before the names were reserved (here: with the DDL
-- guard off, in a session that has not loaded the library) can be renamed
-- away or dropped, not replaced or moved to another schema
CREATE SCHEMA sg_more;
ALTER EVENT TRIGGER es_guard_ddl DISABLE;
\c -
CREATE FUNCTION sg_elsewhere.es_apply(text) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint';
CREATE VIEW sg_elsewhere.es_accounts AS SELECT 1 AS x;
ALTER EVENT TRIGGER es_guard_ddl ENABLE ALWAYS;
\c -
SELECT try($$CREATE OR REPLACE FUNCTION sg_elsewhere.es_apply(text) RETURNS bigint LANGUAGE sql AS 'SELECT 1::bigint'$$);
SELECT try($$ALTER FUNCTION sg_elsewhere.es_apply(text) SET SCHEMA sg_more$$);
SELECT try($$ALTER VIEW sg_elsewhere.es_accounts SET SCHEMA sg_more$$);
ALTER FUNCTION sg_elsewhere.es_apply(text) OWNER TO sg_other;
ALTER FUNCTION sg_elsewhere.es_apply(text) RENAME TO sg_was_es_apply;
DROP FUNCTION sg_elsewhere.sg_was_es_apply(text);
DROP VIEW sg_elsewhere.es_accounts;
-- extension membership, the DEPENDS ON EXTENSION mark, the extension's schema
SELECT try($$ALTER EXTENSION es_ledger DROP TABLE es_commands$$);
SELECT try($$ALTER EXTENSION es_ledger DROP EVENT TRIGGER es_guard_ddl$$);
SELECT try($$ALTER EXTENSION es_ledger ADD TABLE sg_plain$$);
SELECT try($$ALTER INDEX es_events_pkey NO DEPENDS ON EXTENSION es_ledger$$);
SELECT try($$ALTER INDEX es_events_pkey DEPENDS ON EXTENSION es_ledger$$);
-- nor can another extension be given the extension's objects, or its
-- indexes (its TOAST tables' too), triggers, types or schema: DROP EXTENSION
-- of that one would drop them (and, through a row type, the table)
CREATE EXTENSION postgres_fdw;
SELECT try($$ALTER INDEX es_events_opened_idx DEPENDS ON EXTENSION postgres_fdw$$);
SELECT try($$ALTER INDEX es_commands_pkey NO DEPENDS ON EXTENSION postgres_fdw$$);
SELECT regexp_replace(try(format('ALTER INDEX %s DEPENDS ON EXTENSION postgres_fdw', i.indexrelid::regclass)), '_[0-9]+_', '_N_', 'g') AS try
  FROM pg_class c JOIN pg_index i ON i.indrelid = c.reltoastrelid WHERE c.oid = 'es_events'::regclass;
SELECT try($$ALTER TRIGGER es_guard ON es_accounts DEPENDS ON EXTENSION postgres_fdw$$);
SELECT try($$ALTER FUNCTION es_apply(jsonb) DEPENDS ON EXTENSION postgres_fdw$$);
SELECT try($$ALTER EXTENSION postgres_fdw ADD TYPE es_accounts$$);
SELECT try($$ALTER EXTENSION postgres_fdw ADD TYPE es_events[]$$);
SELECT try($$ALTER EXTENSION postgres_fdw ADD SCHEMA public$$);
SELECT try($$ALTER EXTENSION postgres_fdw ADD TABLE es_commands$$);
SELECT try($$ALTER EXTENSION postgres_fdw ADD ACCESS METHOD es_log$$);
-- (an index of the user's own table may be marked)
CREATE INDEX sg_plain_idx ON sg_plain (seq);
ALTER INDEX sg_plain_idx DEPENDS ON EXTENSION postgres_fdw;
DROP EXTENSION postgres_fdw;
SELECT count(*) AS sg_plain_idx FROM pg_class WHERE relname = 'sg_plain_idx';
SELECT count(*) AS ledger_indexes FROM pg_index i, pg_class c
 WHERE c.oid IN ('es_events'::regclass, 'es_accounts'::regclass, 'es_commands'::regclass)
   AND i.indrelid IN (c.oid, c.reltoastrelid);
SELECT tgrelid::regclass AS "table", tgname FROM pg_trigger WHERE tgname = 'es_guard' ORDER BY 1;
SELECT try($$ALTER SCHEMA public RENAME TO sg_renamed$$);
SELECT try($$ALTER SCHEMA public OWNER TO sg_other$$);
ALTER SCHEMA sg_elsewhere OWNER TO sg_other;
ALTER SCHEMA sg_elsewhere RENAME TO sg_elsewhere2;
ALTER SCHEMA sg_elsewhere2 RENAME TO sg_elsewhere;
-- the extension's own indexes cannot be dropped
SELECT try($$DROP INDEX es_events_opened_idx$$);
SELECT try($$DROP INDEX es_events_command_id_idx$$);
SELECT try($$DROP INDEX es_accounts_account_key, es_commands_pkey$$);
\set VERBOSITY sqlstate
DROP INDEX CONCURRENTLY es_events_account_version_key;
\set VERBOSITY default
-- an index that is unique or runs user code cannot be added
CREATE FUNCTION sg_lower(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT lower($1)';
CREATE OPERATOR === (LEFTARG = text, RIGHTARG = text, FUNCTION = texteq);
CREATE DOMAIN sg_pos AS bigint CHECK (VALUE > 0);
CREATE OPERATOR CLASS sg_ops FOR TYPE text USING btree AS
	OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
	FUNCTION 1 bttextcmp(text, text);
CREATE ACCESS METHOD sg_am TYPE INDEX HANDLER bthandler;
SELECT try($$CREATE UNIQUE INDEX sg ON es_events (seq, type)$$);
SELECT try($$CREATE INDEX sg ON es_events (sg_lower(type))$$);
SELECT try($$CREATE INDEX sg ON es_events (type) WHERE sg_lower(type) = 'x'$$);
SELECT try($$CREATE INDEX sg ON es_events (type) WHERE type === 'x'$$);
SELECT try($$CREATE INDEX sg ON es_events ((amount::sg_pos))$$);
SELECT try($$CREATE INDEX sg ON es_events (type sg_ops)$$);
SELECT try($$CREATE INDEX sg ON es_events USING sg_am (type)$$);
\set VERBOSITY sqlstate
CREATE INDEX CONCURRENTLY sg ON es_events (sg_lower(type));
\set VERBOSITY default
SELECT count(*) AS sg_indexes FROM pg_class WHERE relname LIKE 'sg%' AND relkind = 'i';

-- what stays allowed: storage parameters, statistics, ANALYZE, and extra
-- non-unique indexes of built-in code, which users can drop again
ALTER TABLE es_accounts SET (fillfactor = 60);
ALTER TABLE es_accounts SET (fillfactor = 50);
ALTER TABLE es_events ALTER COLUMN type SET STATISTICS 200;
ALTER TABLE es_events ALTER COLUMN type SET STATISTICS -1;
ANALYZE es_events;
ANALYZE es_accounts;
CREATE INDEX sg_type_idx ON es_events (type);
CREATE INDEX sg_lower_idx ON es_events (lower(type)) WHERE amount > 0;
CREATE INDEX CONCURRENTLY sg_conc_idx ON es_events (account_id, recorded_at);
CREATE INDEX sg_accounts_idx ON es_accounts (currency, balance);
SELECT es_deposit('sg-a', 1) > 0 AS ok;
SELECT es_transfer('sg-a', 'g-a', 1) > 0 AS ok;
DROP INDEX sg_type_idx, sg_lower_idx, sg_accounts_idx;
DROP INDEX CONCURRENTLY sg_conc_idx;
-- the seven indexes of the extension keep their mark, REINDEX CONCURRENTLY included
REINDEX TABLE CONCURRENTLY es_commands;
SELECT c.relname FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
 WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'x'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'es_ledger') ORDER BY 1;

-- 3. a ledger that holds events cannot be dropped, by any road, unless a
--    superuser sets es_ledger.allow_drop
SELECT pg_relation_size('es_events') > 0 AS holds_events;
SHOW es_ledger.allow_drop;
SET client_min_messages = warning;
DROP EXTENSION es_ledger CASCADE;
SELECT try($$DROP SCHEMA public CASCADE$$);
SELECT try($$DROP TABLE es_events$$);
SELECT try($$DROP TABLE es_events CASCADE$$);
SELECT try($$DROP TABLE es_accounts, es_commands$$);
SELECT try($$DROP TRIGGER es_guard ON es_accounts$$);
-- only superusers may set it
SET ROLE sg_other;
SELECT try($$SET es_ledger.allow_drop = on$$);
RESET ROLE;
-- with it, the drop goes through (rolled back here: later tests need the ledger)
BEGIN;
SET LOCAL es_ledger.allow_drop = on;
DROP EXTENSION es_ledger CASCADE;
SELECT count(*) AS ledgers FROM pg_extension WHERE extname = 'es_ledger';
-- an empty ledger can be dropped without it
SET LOCAL es_ledger.allow_drop = off;
CREATE EXTENSION es_ledger;
DROP EXTENSION es_ledger;
-- DROP OWNED BY and REASSIGN OWNED BY the owner of a ledger holding events
CREATE ROLE sg_owner SUPERUSER;
SET LOCAL ROLE sg_owner;
CREATE EXTENSION es_ledger;
SELECT es_open_account('o-a', 'USD') > 0 AS ok;
RESET ROLE;
SELECT extowner::regrole FROM pg_extension WHERE extname = 'es_ledger';
SELECT try($$DROP EXTENSION es_ledger$$);
SELECT try($$DROP OWNED BY sg_owner$$);
SELECT try($$DROP OWNED BY sg_owner CASCADE$$);
SELECT try($$DROP SCHEMA public CASCADE$$);
-- REASSIGN OWNED fires no event trigger; the owner guard (an object access
-- hook) refuses it all the same
-- (which of the extension's objects it meets first depends on catalog order)
SELECT regexp_replace(try($$REASSIGN OWNED BY sg_owner TO CURRENT_USER$$), 'owner of .*$', 'owner of ...') AS try;
SET LOCAL es_ledger.allow_drop = on;
DROP OWNED BY sg_owner;
SELECT count(*) AS ledgers FROM pg_extension WHERE extname = 'es_ledger';
ROLLBACK;
RESET client_min_messages;
SELECT count(*) AS ledgers FROM pg_extension WHERE extname = 'es_ledger';

-- a superuser's SET before the library is loaded (a placeholder) counts; a
-- non-superuser's does not
\c -
SET client_min_messages = warning;
SET es_ledger.allow_drop = on;
SELECT count(*) AS defined FROM pg_settings WHERE name = 'es_ledger.allow_drop';
BEGIN;
DROP EXTENSION es_ledger CASCADE;
SELECT count(*) AS ledgers FROM pg_extension WHERE extname = 'es_ledger';
ROLLBACK;
SELECT setting, context FROM pg_settings WHERE name = 'es_ledger.allow_drop';
\c -
SET client_min_messages = warning;
SET ROLE sg_other;
SET es_ledger.allow_drop = on;
RESET ROLE;
SELECT count(*) AS defined FROM pg_settings WHERE name = 'es_ledger.allow_drop';
SELECT try($$DROP EXTENSION es_ledger CASCADE$$);
SHOW es_ledger.allow_drop;
RESET client_min_messages;

-- the log and the projection are unchanged by all of the above
SELECT count(*) = n + 3 AND sum(amount) = total + 1 AS unchanged FROM es_events, sg_before GROUP BY n, total;
SELECT a.account, (a.balance, a.version, a.last_hash) = (r.balance, r.version, r.last_hash) AS replay_matches
  FROM es_accounts a, LATERAL es_replay(a.account) r WHERE a.account IN ('sg-a', 'g-a') ORDER BY 1;

-- 4. the limit: event triggers do not fire for ALTER or DROP EVENT TRIGGER,
--    so a superuser can switch the DDL guard off, and then a refused command
--    goes through.  (Rolled back here.)
SELECT try($$DROP EVENT TRIGGER es_guard_ddl$$);
BEGIN;
ALTER EVENT TRIGGER es_guard_ddl DISABLE;
CREATE TRIGGER sg_evil BEFORE UPDATE ON es_accounts FOR EACH ROW EXECUTE FUNCTION sg_noop();
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'es_accounts'::regclass ORDER BY 1;
ALTER EXTENSION es_ledger DROP EVENT TRIGGER es_guard_ddl;
DROP EVENT TRIGGER es_guard_ddl;
SELECT count(*) AS event_triggers FROM pg_event_trigger WHERE evtname = 'es_guard_ddl';
-- what does not depend on the event trigger still holds: the access method,
-- the guard triggers, and (while the library is loaded) the drop guard
SELECT try($$UPDATE es_events SET amount = 0 RETURNING 1$$);
SELECT try($$UPDATE es_accounts SET balance = 0 RETURNING 1$$);
SET LOCAL client_min_messages = warning;
SELECT try($$DROP EXTENSION es_ledger CASCADE$$);
ROLLBACK;
-- the same in a fresh session, where the library is not loaded yet: the
-- drop still loads it (dropping es_events' indexes opens es_events, whose
-- access method is in the library) before es_events itself goes
\c -
BEGIN;
ALTER EVENT TRIGGER es_guard_ddl DISABLE;
ALTER EVENT TRIGGER es_guard_drop DISABLE;
ALTER EVENT TRIGGER es_guard_rewrite DISABLE;
SET LOCAL client_min_messages = warning;
SELECT try($$DROP EXTENSION es_ledger CASCADE$$);
ROLLBACK;
SELECT evtname, evtenabled FROM pg_event_trigger ORDER BY 1;

DROP OPERATOR FAMILY sg_ops USING btree;
DROP ACCESS METHOD sg_am;
DROP OPERATOR === (text, text);
DROP DOMAIN sg_pos;
DROP FUNCTION sg_lower(text), sg_noop();
DROP TABLE sg_plain, sg_parted, sg_before;
DROP SCHEMA sg_elsewhere CASCADE;
DROP SCHEMA sg_more;
DROP SERVER sg_server;
DROP FOREIGN DATA WRAPPER sg_fdw;
DROP ROLE sg_other;

-- the names of the extension's indexes are reserved too, in every schema,
-- while REINDEX CONCURRENTLY of the extension's own indexes still works
CREATE SCHEMA sg_idx;
CREATE TABLE sg_idx.t (x int);
SELECT try($$CREATE TABLE sg_idx.es_accounts_pkey (x int)$$);
SELECT try($$CREATE SEQUENCE sg_idx.es_commands_pkey$$);
SELECT try($$CREATE INDEX es_events_opened_idx ON sg_idx.t (x)$$);
CREATE INDEX sg_i ON sg_idx.t (x);
SELECT try($$ALTER INDEX sg_idx.sg_i RENAME TO es_events_pkey$$);
REINDEX INDEX CONCURRENTLY es_events_pkey;
REINDEX INDEX CONCURRENTLY es_events_opened_idx;
SELECT count(*) AS marked_indexes FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'es_ledger')
   AND d.deptype = 'x' AND c.relkind = 'i';
DROP SCHEMA sg_idx CASCADE;
