-- roles: PUBLIC gets nothing; readers read; writers apply commands.
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'es_ledger_%' ORDER BY 1;
SELECT pg_has_role('es_ledger_writer', 'es_ledger_reader', 'MEMBER') AS writer_reads;
-- no function of the extension is executable by PUBLIC
SELECT p.proname FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
  JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'es_ledger'
 WHERE has_function_privilege('public', p.oid, 'EXECUTE') OR p.proacl IS NULL;
-- every SECURITY DEFINER function pins search_path
SELECT p.proname, p.proconfig FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
  JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'es_ledger'
 WHERE p.prosecdef ORDER BY 1;

CREATE ROLE r_nobody;
CREATE ROLE r_reader IN ROLE es_ledger_reader;
CREATE ROLE r_writer IN ROLE es_ledger_writer;
SELECT es_open_account('r-a', 'USD') > 0 AS ok;
SELECT es_open_account('r-b', 'USD') > 0 AS ok;

SET ROLE r_nobody;
SELECT try($$SELECT count(*)::text FROM es_accounts$$);
SELECT try($$SELECT count(*)::text FROM es_events$$);
SELECT try($$SELECT es_deposit('r-a', 1)::text$$);
SELECT try($$SELECT (es_replay('r-a')).balance::text$$);
RESET ROLE;

SET ROLE r_reader;
SELECT try($$SELECT count(*)::text FROM es_accounts WHERE account LIKE 'r-%'$$);
SELECT try($$SELECT (es_replay('r-a')).balance::text$$);
SELECT try($$SELECT es_deposit('r-a', 1)::text$$);
SELECT try($$SELECT es_apply('{"type": "deposit", "account": "r-a", "amount": 1}')::text$$);
SELECT try($$SELECT count(*)::text FROM es_commands$$);
RESET ROLE;

SET ROLE r_writer;
SELECT try($$SELECT (es_deposit('r-a', 100) > 0)::text$$);
SELECT try($$SELECT (es_apply('{"type": "transfer", "from": "r-a", "to": "r-b", "amount": 30}') > 0)::text$$);
SELECT try($$SELECT balance::text FROM es_accounts WHERE account = 'r-b'$$);
SELECT try($$UPDATE es_accounts SET balance = 0 RETURNING 1$$);
SELECT try($$INSERT INTO es_events SELECT * FROM es_events LIMIT 1 RETURNING 1$$);
SELECT try($$SELECT nextval('es_events_seq_seq')::text$$);
-- a writer's search_path cannot redirect es_apply.  No look-alike of the
-- ledger's tables or functions can be planted, even in a schema of the
-- writer's own: the names are reserved in every schema (ES011).  Where the
-- writer may not create at all (public), the privilege check comes first
-- (42501).
RESET ROLE;
CREATE SCHEMA r_evil AUTHORIZATION r_writer;
SET ROLE r_writer;
SELECT try($$CREATE TABLE r_evil.es_accounts (LIKE es_accounts)$$);
SELECT try($$CREATE VIEW r_evil.es_events AS SELECT * FROM es_events$$);
SELECT try($$CREATE FUNCTION r_evil.es_deposit(text, bigint, text DEFAULT NULL) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint'$$);
SELECT try($$CREATE FUNCTION public.es_apply(text) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint'$$);
-- what can be planted (operators, functions of other names) is not read:
-- es_apply and es_replay find their tables, indexes and operators by OID
CREATE FUNCTION r_evil.r_boom(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT 1/0 = 1';
CREATE FUNCTION r_evil.r_boom(jsonb, jsonb) RETURNS text LANGUAGE sql AS 'SELECT (1/0)::text';
CREATE OPERATOR r_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = r_evil.r_boom);
CREATE OPERATOR r_evil.->> (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = r_evil.r_boom);
SET search_path = r_evil, public;
SELECT (es_deposit('r-a', 5) > 0)::text AS ok;
SELECT (es_replay('r-a')).balance;
RESET search_path;
SELECT count(*) AS evil_relations FROM pg_class WHERE relnamespace = 'r_evil'::regnamespace;
RESET ROLE;
SELECT account, balance FROM es_accounts WHERE account LIKE 'r-%' ORDER BY 1;
DROP SCHEMA r_evil CASCADE;
DROP ROLE r_nobody, r_reader, r_writer;

-- separation of duties: every command type as reader, writer and admin.
-- Writers move money; admins administer accounts; a command outside the
-- caller's role fails with 42501 and writes nothing.
CREATE ROLE r_reader IN ROLE es_ledger_reader;
CREATE ROLE r_writer IN ROLE es_ledger_writer;
CREATE ROLE r_admin IN ROLE es_ledger_admin;
SELECT es_open_account('r-c', 'USD') > 0 AS ok;
CREATE FUNCTION outcome(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
CREATE TABLE r_cmds (ord int, name text, sql text);
INSERT INTO r_cmds VALUES
 (1, 'open_account', $$SELECT es_apply('{"type": "open_account", "account": "r-m", "currency": "USD", "overdraft_limit": 5}')$$),
 (2, 'es_open_account', $$SELECT es_open_account('r-n', 'USD', 5)$$),
 (3, 'deposit', $$SELECT es_apply('{"type": "deposit", "account": "r-a", "amount": 1}')$$),
 (4, 'es_deposit', $$SELECT es_deposit('r-a', 1)$$),
 (5, 'withdraw', $$SELECT es_apply('{"type": "withdraw", "account": "r-a", "amount": 1}')$$),
 (6, 'es_withdraw', $$SELECT es_withdraw('r-a', 1)$$),
 (7, 'transfer', $$SELECT es_apply('{"type": "transfer", "from": "r-a", "to": "r-b", "amount": 1}')$$),
 (8, 'es_transfer', $$SELECT es_transfer('r-a', 'r-b', 1)$$),
 (9, 'freeze_account', $$SELECT es_apply('{"type": "freeze_account", "account": "r-b"}')$$),
 (10, 'unfreeze_account', $$SELECT es_apply('{"type": "unfreeze_account", "account": "r-b"}')$$),
 (11, 'set_limits', $$SELECT es_apply('{"type": "set_limits", "account": "r-a", "overdraft_limit": 1000000}')$$),
 (12, 'close_account', $$SELECT es_apply('{"type": "close_account", "account": "r-c"}')$$),
 (13, 'mixed batch', $$SELECT es_apply('[{"type": "deposit", "account": "r-a", "amount": 1}, {"type": "freeze_account", "account": "r-a"}]')$$);
GRANT SELECT ON r_cmds TO PUBLIC;
SELECT count(*) AS events_before FROM es_events \gset
SET ROLE r_reader;
SELECT ord, name, outcome(sql) AS reader FROM r_cmds ORDER BY ord;
RESET ROLE;
SELECT count(*) - :events_before AS written FROM es_events;
SET ROLE r_writer;
SELECT ord, name, outcome(sql) AS writer FROM r_cmds ORDER BY ord;
RESET ROLE;
SELECT count(*) - :events_before AS written FROM es_events;
SET ROLE r_admin;
SELECT ord, name, outcome(sql) AS admin FROM r_cmds ORDER BY ord;
RESET ROLE;
SELECT count(*) - :events_before AS written FROM es_events;
-- the message names the command type and the role it needs
SET ROLE r_writer;
SELECT try($$SELECT es_apply('{"type": "set_limits", "account": "r-a", "overdraft_limit": 1000000000}')::text$$);
RESET ROLE;
SELECT account, status, overdraft_limit FROM es_accounts WHERE account LIKE 'r-%' ORDER BY 1;
DROP TABLE r_cmds;
DROP FUNCTION outcome(text);
DROP ROLE r_reader, r_writer, r_admin;
