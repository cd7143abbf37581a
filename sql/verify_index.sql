-- verify_index: sql/verify.sql again, in a database of its own, with
-- es_verify() of the whole ledger forced to walk es_events by index
-- (es_ledger.verify_strategy = index) instead of in physical order.  Both
-- walks feed the same per-account checker; this file's output after the
-- setup is verify.out's, line for line, except where only the physical
-- walk can see: the accounts it met out of physical order (versions'
-- detail), and rows hidden from the (account_id, version) index (section
-- 6, which the index walk, reading that index, cannot see).  A command
-- with an id first, as verify.sql's database has some from earlier files.
\set origdb :DBNAME
CREATE DATABASE es_verify_index;
\c es_verify_index
SET client_min_messages = warning;
\i sql/setup.sql
SELECT es_open_account('vi-x', 'USD', 0, NULL, 'vi-x') > 0 AS ok;
SET es_ledger.verify_strategy = index;
SHOW es_ledger.verify_strategy;
\i sql/verify.sql
-- a developer setting: superusers only
CREATE ROLE vi_nobody;
SET ROLE vi_nobody;
SELECT try($$SELECT set_config('es_ledger.verify_strategy', 'physical', false)$$);
RESET ROLE;
DROP ROLE vi_nobody;
SELECT try($$SELECT set_config('es_ledger.verify_strategy', 'sideways', false)$$);
\c :origdb
DROP DATABASE es_verify_index;
