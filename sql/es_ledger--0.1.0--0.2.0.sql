/* es_ledger--0.1.0--0.2.0.sql: update es_ledger from 0.1.0 to 0.2.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION es_ledger UPDATE TO '0.2.0'" to load this file. \quit


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
