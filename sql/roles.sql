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
-- a writer's search_path cannot redirect es_apply
RESET ROLE;
CREATE SCHEMA r_evil AUTHORIZATION r_writer;
SET ROLE r_writer;
CREATE TABLE r_evil.es_accounts (LIKE es_accounts);
SET search_path = r_evil, public;
SELECT (es_deposit('r-a', 5) > 0)::text AS ok;
RESET search_path;
SELECT count(*) AS evil_rows FROM r_evil.es_accounts;
RESET ROLE;
SELECT account, balance FROM es_accounts WHERE account LIKE 'r-%' ORDER BY 1;
DROP SCHEMA r_evil CASCADE;
DROP ROLE r_nobody, r_reader, r_writer;
