-- projection_attacks: the Medium findings of security issue 14 about user
-- projections, each as the attacker plays it (README, Security).
SET es_ledger.projection_autostart = off;
CREATE ROLE pa_demoted IN ROLE es_ledger_admin;
CREATE ROLE pa_admin IN ROLE es_ledger_admin;
CREATE ROLE pa_other IN ROLE es_ledger_admin;
CREATE ROLE pa_writer IN ROLE es_ledger_writer;
CREATE SCHEMA pa AUTHORIZATION pa_demoted;
GRANT USAGE, CREATE ON SCHEMA pa TO PUBLIC;
SELECT es_open_account('pa-a', 'USD') > 0 AS ok;

-- 1. A demoted admin keeps no code in the write path.  pa_demoted registers
-- an inline and an async projection, loses es_ledger_admin, and replaces
-- its handler (it still owns the function) with one that raises.
SET ROLE pa_demoted;
CREATE TABLE pa.seen (seq bigint);
CREATE FUNCTION pa.h(ev es_events) RETURNS void LANGUAGE sql AS
	$$ INSERT INTO pa.seen VALUES (ev.seq) $$;
SELECT es_projection_create('pa_inline', 'pa.h(es_events)', 'inline') >= 0 AS ok;
SELECT es_projection_create('pa_async', 'pa.h(es_events)', 'async') >= 0 AS ok;
RESET ROLE;
REVOKE es_ledger_admin FROM pa_demoted;
SET ROLE pa_demoted;
SELECT try($$SELECT es_projection_pause('pa_inline')::text$$) AS cannot_pause;
CREATE OR REPLACE FUNCTION pa.h(ev es_events) RETURNS void LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'every write fails'; END $$;
RESET ROLE;
-- The writer's command succeeds; the projection is not called and says so.
SET ROLE pa_writer;
SELECT es_deposit('pa-a', 5) > 0 AS writer_not_blocked;
RESET ROLE;
-- The async one fails (marked, not run) instead of running the code.
SELECT es_projection_run('pa_async') AS applied;
SELECT name, state, last_error FROM es_projections WHERE name LIKE 'pa_%' ORDER BY name;
-- Its rebuild and resume refuse too (as admin of another role: 42501).
SELECT try($$SELECT es_projection_rebuild('pa_inline')::text$$) AS rebuild;
SELECT es_projection_drop('pa_inline'), es_projection_drop('pa_async');
GRANT es_ledger_admin TO pa_demoted;

-- 2. A handler raising 57014 itself is a handler failure: its projection is
-- marked failed, and the async projections after it are still applied.
SET ROLE pa_admin;
CREATE TABLE pa.pa_b_seen (seq bigint);
CREATE FUNCTION pa.pa_cancel(ev es_events) RETURNS void LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'not a cancel' USING ERRCODE = 'query_canceled'; END $$;
CREATE FUNCTION pa.pa_b(ev es_events) RETURNS void LANGUAGE sql AS
	$$ INSERT INTO pa.pa_b_seen VALUES (ev.seq) $$;
SELECT es_projection_create('pa_a_cancel', 'pa.pa_cancel(es_events)', 'async') >= 0 AS ok;
SELECT es_projection_create('pa_b_after', 'pa.pa_b(es_events)', 'async') >= 0 AS ok;
SELECT es_projection_run(NULL) > 0 AS others_applied;
SELECT name, state, last_error FROM es_projections WHERE name LIKE 'pa_%' ORDER BY name;
SELECT count(*) > 0 AS b_applied FROM pa.pa_b_seen;
-- A real cancel (statement_timeout) is still raised, not a failure.
CREATE OR REPLACE FUNCTION pa.pa_b(ev es_events) RETURNS void LANGUAGE plpgsql AS
	$$ BEGIN PERFORM pg_catalog.pg_sleep(1); END $$;
SELECT es_projection_rebuild('pa_b_after') >= 0 AS ok;
SET statement_timeout = '100ms';
SELECT es_projection_run('pa_b_after') AS real_cancel;
RESET statement_timeout;
SELECT name, state FROM es_projections WHERE name = 'pa_b_after';
SELECT es_projection_drop('pa_a_cancel'), es_projection_drop('pa_b_after');
RESET ROLE;

-- 3. es_projection_run(NULL) by one admin locks only its own projections:
-- pa_other's row is not locked by pa_admin's transaction.
SET ROLE pa_other;
CREATE FUNCTION pa.pa_noop(ev es_events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT es_projection_create('pa_others', 'pa.pa_noop(es_events)', 'async') >= 0 AS ok;
RESET ROLE;
BEGIN;
SET LOCAL ROLE pa_admin;
SELECT es_projection_run(NULL) AS applied_as_pa_admin;
RESET ROLE;
SELECT xmax::text::bigint = (pg_catalog.txid_current() % 4294967296) AS locked_by_us
  FROM es_projection_registry WHERE name = 'pa_others';
COMMIT;
SET ROLE pa_admin;
SELECT try($$SELECT es_projection_run('pa_others')::text$$) AS named;
RESET ROLE;
SET ROLE pa_other;
SELECT es_projection_drop('pa_others');
RESET ROLE;

-- 4. An inline projection whose handler calls es_apply (doc/projections.md
-- allows it) sees every event exactly once, in the catch-up of create and
-- rebuild too: the events its own es_apply appends reach it once.
CREATE ROLE pa_fees IN ROLE es_ledger_admin, es_ledger_writer;
GRANT CREATE ON SCHEMA pa TO pa_fees;
SELECT es_open_account('pa-src', 'USD') > 0 AS ok, es_open_account('pa-fee', 'USD') > 0 AS ok;
SELECT es_deposit('pa-src', 7) > 0 AS ok;
SET ROLE pa_fees;
CREATE TABLE pa.fee_seen (seq bigint);
CREATE FUNCTION pa.fees(ev es_events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO pa.fee_seen VALUES (ev.seq);
	IF ev.type = 'Deposited' AND ev.amount = 7 THEN
		PERFORM es_deposit('pa-fee', 1);
	END IF;
END $$;
SELECT es_projection_create('pa_fees', 'pa.fees(es_events)', 'inline', NULL) > 0 AS caught_up;
SELECT count(*) = count(DISTINCT seq) AS each_once,
       count(DISTINCT seq) = (SELECT count(*) FROM es_events) AS every_event
  FROM pa.fee_seen;
SELECT es_deposit('pa-src', 7) > 0 AS ok;
SELECT count(*) - count(DISTINCT seq) AS twice FROM pa.fee_seen;
TRUNCATE pa.fee_seen;
SELECT es_projection_rebuild('pa_fees') > 0 AS rebuilt;
SELECT count(*) = count(DISTINCT seq) AS each_once,
       count(DISTINCT seq) = (SELECT count(*) FROM es_events) AS every_event
  FROM pa.fee_seen;
SELECT es_projection_drop('pa_fees');
RESET ROLE;

-- 5. Session state an inline handler leaves in the writer's session: the
-- settings it changes are undone; a session-level advisory lock and
-- lastval() are not (documented in doc/projections.md, Session state).
SET ROLE pa_fees;
CREATE SEQUENCE pa.handler_seq;
CREATE FUNCTION pa.sessiony(ev es_events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('application_name', 'set by a handler', false);
	PERFORM set_config('work_mem', '7777kB', false);
	PERFORM pg_advisory_lock(4242, 4242);
	PERFORM nextval('pa.handler_seq');
END $$;
SELECT es_projection_create('pa_sessiony', 'pa.sessiony(es_events)', 'inline') >= 0 AS ok;
SELECT pg_advisory_unlock_all();
RESET ROLE;
SET application_name = 'the writer';
SET ROLE pa_writer;
SELECT es_deposit('pa-src', 1) > 0 AS ok;
SELECT current_setting('application_name') AS application_name,
       current_setting('work_mem') <> '7777kB' AS work_mem_undone;
SELECT count(*) AS advisory_lock_left
  FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
   AND classid = 4242 AND objid = 4242;
SELECT try($$SELECT lastval()::text$$) AS lastval_is_the_handlers;
SELECT pg_advisory_unlock_all();
RESET ROLE;
RESET application_name;
SET ROLE pa_fees;
SELECT es_projection_drop('pa_sessiony');
RESET ROLE;

DROP SCHEMA pa CASCADE;
DROP ROLE pa_demoted, pa_admin, pa_other, pa_writer, pa_fees;
