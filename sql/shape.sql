-- shape: the row codec (es_row.c) refuses a table whose columns are not, in
-- order, the names and types the C code reads by number.  es_check_shape
-- runs the check that guards every read and write of the ledger's tables.
SELECT es_check_shape('es_events', 'es_events') AS events,
       es_check_shape('es_accounts', 'es_accounts') AS accounts,
       es_check_shape('es_commands', 'es_commands') AS commands;
-- a copy of a table's columns has its shape
CREATE TABLE shape_ev (LIKE es_events);
SELECT es_check_shape('shape_ev', 'es_events') AS copy_ok;
-- two columns swapped
CREATE TABLE shape_swapped AS
SELECT account_id, seq, version, type, amount, data, command_id, recorded_at,
       effective_at, checksum, hash, format, tx
  FROM es_events LIMIT 0;
SELECT try($$SELECT es_check_shape('shape_swapped', 'es_events')::text$$);
-- a column of another type
CREATE TABLE shape_retyped (LIKE es_accounts);
ALTER TABLE shape_retyped ALTER COLUMN balance TYPE numeric;
SELECT try($$SELECT es_check_shape('shape_retyped', 'es_accounts')::text$$);
-- a column renamed
CREATE TABLE shape_renamed (LIKE es_commands);
ALTER TABLE shape_renamed RENAME COLUMN seq TO position;
SELECT try($$SELECT es_check_shape('shape_renamed', 'es_commands')::text$$);
-- a column added, and one added then dropped (a hole in the attribute numbers)
CREATE TABLE shape_wide (LIKE es_commands);
ALTER TABLE shape_wide ADD COLUMN extra int;
SELECT try($$SELECT es_check_shape('shape_wide', 'es_commands')::text$$);
ALTER TABLE shape_wide DROP COLUMN extra;
SELECT try($$SELECT es_check_shape('shape_wide', 'es_commands')::text$$);
-- a column missing
CREATE TABLE shape_short (command_id text, command jsonb);
SELECT try($$SELECT es_check_shape('shape_short', 'es_commands')::text$$);
-- one table is not the shape of another
SELECT try($$SELECT es_check_shape('es_accounts', 'es_events')::text$$);
-- only the ledger's tables are shapes
SELECT try($$SELECT es_check_shape('es_accounts', 'shape_ev')::text$$);
SELECT try($$SELECT es_check_shape('es_accounts', 'es_events_pkey')::text$$);
-- the details name the first column that differs
SELECT es_check_shape('shape_swapped', 'es_events');
DROP TABLE shape_ev, shape_swapped, shape_retyped, shape_renamed, shape_wide, shape_short;
-- relations are the extension's own, not look-alikes: a superuser who gets
-- past the DDL guard and replaces the index es_replay reads by one of the
-- same name is refused by the codec (55000), not read
SELECT es_open_account('sh-a', 'USD') > 0 AS ok;
BEGIN;
ALTER EVENT TRIGGER es_guard_ddl DISABLE;
DROP INDEX es_events_opened_idx;
CREATE UNIQUE INDEX es_events_opened_idx ON es_events ((data ->> 'currency'))
	WHERE type = 'AccountOpened' AND data ->> 'account' = 'sh-a';
SELECT try($$SELECT (es_replay('USD')).account$$);
SELECT try($$SELECT es_deposit('sh-a', 1)::text$$);
ROLLBACK;
SELECT (es_replay('sh-a')).account AS replayed;
