/* es_ledger--0.1.0--0.2.0.sql: update es_ledger from 0.1.0 to 0.2.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION es_ledger UPDATE TO '0.2.0'" to load this file. \quit

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
