-- schema: the extension lives in the schema it is created in, works from
-- there whatever the caller's search_path, and drops cleanly.  The earlier
-- tests left events in the ledger, so dropping it needs es_ledger.allow_drop
-- (superuser_guard), here set before the library is loaded in this session.
SET es_ledger.allow_drop = on;
DROP EXTENSION es_ledger CASCADE;
SELECT count(*) AS es_log_left FROM pg_am WHERE amname = 'es_log';
SELECT count(*) AS event_triggers_left FROM pg_event_trigger WHERE evtname LIKE 'es_guard%';
CREATE SCHEMA ledger;
CREATE EXTENSION es_ledger SCHEMA ledger;
SELECT c.relname, a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam
 WHERE c.relnamespace = 'ledger'::regnamespace AND c.relkind = 'r' ORDER BY 1;
SET search_path = public;
SELECT ledger.es_open_account('x', 'USD') > 0 AS ok;
SELECT ledger.es_open_account('y', 'USD', id => 'open-y') > 0 AS ok;
SELECT ledger.es_apply('[{"type": "deposit", "account": "x", "amount": 5, "id": "d"},
                         {"type": "transfer", "from": "x", "to": "y", "amount": 2}]') > 0 AS ok;
SELECT account, balance, version FROM ledger.es_accounts ORDER BY 1;
SELECT balance, version FROM ledger.es_replay('y');
SELECT p.proname, p.proconfig FROM pg_proc p
 WHERE p.pronamespace = 'ledger'::regnamespace AND p.prosecdef ORDER BY 1;
SELECT try($$DROP TRIGGER es_guard ON ledger.es_accounts$$);
SELECT try($$UPDATE ledger.es_events SET amount = 1 RETURNING 1$$);
RESET search_path;
DROP EXTENSION es_ledger;
SELECT count(*) AS objects_left FROM pg_class WHERE relnamespace = 'ledger'::regnamespace;
DROP SCHEMA ledger;
