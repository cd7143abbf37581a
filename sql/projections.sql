-- projections: user-defined projections (doc/projections.md): registration
-- and its errors, inline projections kept in es_apply's transaction, async
-- ones applied by es_projection_run over es_read, pause / resume / rebuild /
-- drop, the es_projections view, and handlers as the attacker writes them.
-- No background worker here (es_ledger.projection_autostart off; with the
-- library preloaded, es_ledger.projection_databases must leave this database
-- out, as .ci/test sets it, since creating an async projection wakes the
-- launcher): async projections move only when es_projection_run says so.
-- The worker: test/t/014_projections.pl.
SET es_ledger.projection_autostart = off;
CREATE ROLE p_owner IN ROLE es_ledger_admin;
CREATE ROLE p_other IN ROLE es_ledger_admin;
CREATE ROLE p_writer IN ROLE es_ledger_writer;
CREATE ROLE p_nobody;
CREATE SCHEMA p_app AUTHORIZATION p_owner;
CREATE SCHEMA p_evil;
GRANT USAGE, CREATE ON SCHEMA p_evil TO PUBLIC;
SELECT es_open_account('pj-a', 'USD') > 0 AS ok, es_open_account('pj-b', 'USD') > 0 AS ok,
       es_open_account('pj-e', 'EUR') > 0 AS ok;
SELECT es_deposit('pj-a', 1000) > 0 AS ok, es_deposit('pj-e', 500) > 0 AS ok;

-- The user's read model: totals per currency (the example of
-- doc/projections.md) of this test's accounts (p-*: earlier tests' accounts
-- are left out), as p_owner, in p_owner's schema.
SET ROLE p_owner;
SET search_path = p_app, public;
CREATE TABLE currency_of (account_id bigint PRIMARY KEY, currency text NOT NULL);
CREATE TABLE totals (currency text PRIMARY KEY, total bigint NOT NULL, events bigint NOT NULL);
CREATE FUNCTION totals_apply(ev es_events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF ev.type = 'AccountOpened' AND ev.data->>'account' LIKE 'pj-%' THEN
		INSERT INTO currency_of VALUES (ev.account_id, ev.data->>'currency');
	END IF;
	IF ev.amount = 13 AND ev.account_id IN (SELECT account_id FROM currency_of) THEN
		RAISE EXCEPTION 'unlucky amount' USING ERRCODE = 'PX013';
	END IF;
	INSERT INTO totals
	SELECT c.currency, ev.amount, 1 FROM currency_of c WHERE c.account_id = ev.account_id
	ON CONFLICT (currency) DO UPDATE
		SET total = totals.total + excluded.total, events = totals.events + 1;
END $$;
CREATE FUNCTION totals_reset() RETURNS void LANGUAGE sql AS $$
	DELETE FROM totals; DELETE FROM currency_of;
$$;
-- what the projection must equal: a plain query over the log
CREATE VIEW totals_expected AS
SELECT a.currency, sum(e.amount)::bigint AS total, count(*) AS events
  FROM es_events e JOIN es_accounts a USING (account_id)
 WHERE a.account LIKE 'pj-%' GROUP BY a.currency;
CREATE FUNCTION totals_ok() RETURNS boolean LANGUAGE sql AS $$
	SELECT NOT EXISTS (SELECT * FROM p_app.totals_expected EXCEPT SELECT * FROM p_app.totals)
	   AND NOT EXISTS (SELECT * FROM p_app.totals EXCEPT SELECT * FROM p_app.totals_expected)
$$;
GRANT USAGE ON SCHEMA p_app TO p_writer;
GRANT SELECT ON totals, totals_expected TO p_writer;

-- Registration errors, each with its SQLSTATE.
SELECT try($$SELECT es_projection_create(NULL, 'totals_apply(es_events)')::text$$);
SELECT try($$SELECT es_projection_create('Totals', 'totals_apply(es_events)')::text$$);
SELECT try($$SELECT es_projection_create('', 'totals_apply(es_events)')::text$$);
SELECT try($$SELECT es_projection_create(repeat('t', 64), 'totals_apply(es_events)')::text$$);
SELECT try($$SELECT es_projection_create('totals', 'totals_apply(es_events)', 'sometimes')::text$$);
SELECT try($$SELECT es_projection_create('totals', 'totals_reset()')::text$$);
SELECT try($$SELECT es_projection_create('totals', 'totals_apply(es_events)', 'inline', 'totals_apply(es_events)')::text$$);
SELECT try($$SELECT es_projection_create('totals', 'no_such_function(es_events)')::text$$);
SELECT try($$SELECT es_projection_create('totals', 'pg_catalog.count(pg_catalog."any")')::text$$);
SELECT try($$SELECT es_projection_pause('no_such')::text$$);
SELECT try($$SELECT es_projection_resume('no_such')::text$$);
SELECT try($$SELECT es_projection_rebuild('no_such')::text$$);
SELECT try($$SELECT es_projection_drop('no_such')::text$$);
SELECT try($$SELECT es_projection_run('no_such')::text$$);

-- inline changes need READ COMMITTED (a transaction snapshot would miss events)
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT try($$SELECT es_projection_create('totals', 'totals_apply(es_events)', 'inline')::text$$);
ROLLBACK;
-- An inline projection catches up with the whole log when created.
SELECT es_projection_create('totals', 'totals_apply(es_events)', 'inline', 'totals_reset()') > 0 AS caught_up;
SELECT totals_ok();
SELECT try($$SELECT es_projection_create('totals', 'totals_apply(es_events)')::text$$);
RESET ROLE;
RESET search_path;

-- es_apply runs it in the same transaction, whoever calls es_apply.
SET ROLE p_writer;
BEGIN;
SELECT es_deposit('pj-b', 250) > 0 AS ok;
SELECT total = (SELECT sum(balance) FROM es_accounts WHERE currency = 'USD' AND account LIKE 'pj-%') AS same_transaction
  FROM p_app.totals WHERE currency = 'USD';
ROLLBACK;
SELECT p_app.totals_ok();
SELECT es_transfer('pj-a', 'pj-b', 100) > 0 AS ok;
SELECT es_apply('[{"type": "deposit", "account": "pj-a", "amount": 5},
                  {"type": "deposit", "account": "pj-e", "amount": 7}]') > 0 AS batch;
SELECT p_app.totals_ok();
-- A handler error fails the command: nothing written, the error is the handler's.
SELECT count(*) AS events_before FROM es_events \gset
SELECT try($$SELECT es_deposit('pj-a', 13)::text$$);
SELECT try($$SELECT es_apply('[{"type": "deposit", "account": "pj-a", "amount": 1}, {"type": "deposit", "account": "pj-a", "amount": 13}]')::text$$);
SELECT count(*) = :events_before AS nothing_written, p_app.totals_ok() FROM es_events;
SELECT balance FROM es_accounts WHERE account = 'pj-a';
-- an idempotent retry appends nothing, so calls no handler
SELECT es_deposit('pj-a', 1, 'pj-dep-1') = es_deposit('pj-a', 1, 'pj-dep-1') AS same_seq;
SELECT p_app.totals_ok();
RESET ROLE;

-- The view: readers see every projection; an inline one that runs is at
-- the head of the log.
SET ROLE p_writer;
SELECT name, owner, mode, state, handler, reset, last_seq = (SELECT max(seq) FROM es_events) AS at_head,
       applied, lag_events, lag_time, last_error
  FROM es_projections ORDER BY name;
RESET ROLE;

-- Pause: es_apply no longer calls it; the lag grows; resume catches up.
SET ROLE p_owner;
SELECT es_projection_pause('totals');
SELECT es_projection_pause('totals');	-- no change
RESET ROLE;
SELECT es_deposit('pj-a', 13) > 0 AS applied_while_paused, es_deposit('pj-e', 3) > 0 AS ok;
SELECT name, state, lag_events, lag_time > '0' AS behind FROM es_projections WHERE name = 'totals';
SELECT p_app.totals_ok() AS paused_is_behind;
SET ROLE p_owner;
-- resuming replays the events since the pause: the unlucky 13 fails it
SELECT try($$SELECT es_projection_resume('totals')::text$$);
SELECT state FROM es_projections WHERE name = 'totals';
-- the owner fixes the handler, and resumes
CREATE OR REPLACE FUNCTION p_app.totals_apply(ev es_events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF ev.type = 'AccountOpened' AND ev.data->>'account' LIKE 'pj-%' THEN
		INSERT INTO currency_of VALUES (ev.account_id, ev.data->>'currency');
	END IF;
	INSERT INTO totals
	SELECT c.currency, ev.amount, 1 FROM currency_of c WHERE c.account_id = ev.account_id
	ON CONFLICT (currency) DO UPDATE
		SET total = totals.total + excluded.total, events = totals.events + 1;
END $$;
SELECT es_projection_resume('totals') AS caught_up;
SELECT es_projection_resume('totals') AS no_change;
SELECT p_app.totals_ok();
SELECT name, state, lag_events FROM es_projections WHERE name = 'totals';
RESET ROLE;

-- Only the owner (or a member of it, or a superuser) manages a projection.
SET ROLE p_other;
SELECT try($$SELECT es_projection_pause('totals')::text$$);
SELECT try($$SELECT es_projection_drop('totals')::text$$);
SELECT try($$SELECT es_projection_rebuild('totals')::text$$);
RESET ROLE;
-- Registering is for es_ledger_admin.
SET ROLE p_writer;
SELECT try($$SELECT es_projection_create('w', 'pg_catalog.now()')::text$$);
RESET ROLE;
SET ROLE p_nobody;
SELECT try($$SELECT count(*)::text FROM es_projections$$);
RESET ROLE;
-- Nobody writes the registry but the functions, superusers included.
SELECT try($$UPDATE es_projection_registry SET state = 'paused' RETURNING 1$$);
SELECT try($$DELETE FROM es_projection_registry RETURNING 1$$);
SELECT try($$INSERT INTO es_projection_registry SELECT * FROM es_projection_registry RETURNING 1$$);
SELECT try($$TRUNCATE es_projection_registry$$);

-- Rebuild gives the same table as the live projection.
SET ROLE p_writer;
SELECT count(*) > 0 AS ok FROM (
	SELECT es_transfer(CASE WHEN i % 2 = 0 THEN 'pj-a' ELSE 'pj-b' END,
	                   CASE WHEN i % 2 = 0 THEN 'pj-b' ELSE 'pj-a' END, i)
	  FROM generate_series(1, 40) i) t;
RESET ROLE;
CREATE TEMP TABLE totals_live AS SELECT * FROM p_app.totals;
SET ROLE p_owner;
SELECT es_projection_rebuild('totals') = (SELECT count(*) FROM es_events) AS all_events;
RESET ROLE;
SELECT NOT EXISTS (SELECT * FROM totals_live EXCEPT SELECT * FROM p_app.totals)
   AND NOT EXISTS (SELECT * FROM p_app.totals EXCEPT SELECT * FROM totals_live) AS rebuild_equals_live;
SELECT p_app.totals_ok();

-- Async: the same read model, applied by es_projection_run (what the
-- background worker does), following es_read.
SET ROLE p_owner;
SET search_path = p_app, public;
CREATE VIEW p_accounts AS SELECT account_id FROM es_accounts WHERE account LIKE 'pj-%';
CREATE TABLE totals_async (LIKE totals);
ALTER TABLE totals_async ADD PRIMARY KEY (currency);
CREATE FUNCTION totals_async_apply(ev es_events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF ev.amount = 13 AND ev.account_id IN (SELECT account_id FROM p_accounts) THEN
		RAISE EXCEPTION 'unlucky amount' USING ERRCODE = 'PX013';
	END IF;
	INSERT INTO totals_async
	SELECT a.currency, ev.amount, 1 FROM es_accounts a
	 WHERE a.account_id = ev.account_id AND a.account LIKE 'pj-%'
	ON CONFLICT (currency) DO UPDATE
		SET total = totals_async.total + excluded.total, events = totals_async.events + 1;
END $$;
CREATE FUNCTION totals_async_reset() RETURNS void LANGUAGE sql AS $$ DELETE FROM totals_async $$;
CREATE FUNCTION totals_async_ok() RETURNS boolean LANGUAGE sql AS $$
	SELECT NOT EXISTS (SELECT * FROM p_app.totals_expected EXCEPT SELECT * FROM p_app.totals_async)
	   AND NOT EXISTS (SELECT * FROM p_app.totals_async EXCEPT SELECT * FROM p_app.totals_expected)
$$;
SELECT es_projection_create('totals_async', 'totals_async_apply(es_events)', 'async', 'totals_async_reset()');
RESET search_path;
-- created: nothing applied yet, the whole log is its lag
SELECT name, mode, state, applied, lag_events = (SELECT count(*) FROM es_events) AS whole_log,
       cursor IS NULL AS at_start FROM es_projections WHERE name = 'totals_async';
SELECT try($$SELECT es_projection_run('totals')::text$$);
-- it stops at the first 13: failed, with the error and the event, having
-- applied every event before it
CREATE TEMP VIEW first_13 AS
SELECT tx, seq FROM es_events WHERE amount = 13 AND account_id IN (SELECT account_id FROM p_app.p_accounts)
 ORDER BY tx, seq LIMIT 1;
SET client_min_messages = error;	-- its WARNING names a seq that depends on earlier tests
SELECT es_projection_run('totals_async') = (SELECT count(*) FROM es_events
		WHERE (tx, seq) < (SELECT tx, seq FROM first_13)) AS applied_up_to_13;
RESET client_min_messages;
SELECT name, state, lag_events > 0 AS behind, split_part(last_error, ' (', 1) AS last_error,
       last_error LIKE '%handler called for the event with seq%' AS names_event,
       error_seq = (SELECT seq FROM first_13) AS at_13
  FROM es_projections WHERE name = 'totals_async';
SELECT es_projection_run('totals_async') AS failed_applies_nothing;
RESET ROLE;
-- es_apply is not blocked by a failed async projection
SELECT es_deposit('pj-e', 2) > 0 AS ok;
SET ROLE p_owner;
CREATE OR REPLACE FUNCTION p_app.totals_async_apply(ev es_events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO p_app.totals_async
	SELECT a.currency, ev.amount, 1 FROM es_accounts a
	 WHERE a.account_id = ev.account_id AND a.account LIKE 'pj-%'
	ON CONFLICT (currency) DO UPDATE
		SET total = totals_async.total + excluded.total, events = totals_async.events + 1;
END $$;
SELECT es_projection_resume('totals_async');
SELECT es_projection_run('totals_async', 3) AS at_most_3;
SELECT es_projection_run('totals_async') > 0 AS the_rest;
SELECT p_app.totals_async_ok();
SELECT name, state, applied = (SELECT count(*) FROM es_events) AS applied_all, lag_events, lag_time,
       last_error, cursor IS NOT NULL AS has_cursor, last_seq > 0 AS has_seq
  FROM es_projections WHERE name = 'totals_async';
-- paused: es_projection_run skips it
SELECT es_projection_pause('totals_async');
RESET ROLE;
SELECT es_deposit('pj-e', 4) > 0 AS ok;
SET ROLE p_owner;
SELECT es_projection_run('totals_async') AS paused_skipped;
SELECT es_projection_resume('totals_async'), es_projection_run() AS resumed;
SELECT p_app.totals_async_ok();
-- rebuild: from the start, the same table
CREATE TEMP TABLE async_live AS SELECT * FROM p_app.totals_async;
SELECT es_projection_rebuild('totals_async');
SELECT count(*) AS reset_emptied FROM p_app.totals_async;
SELECT applied, cursor IS NULL AS at_start FROM es_projections WHERE name = 'totals_async';
SELECT es_projection_run() = (SELECT count(*) FROM es_events) AS rebuilt_all;
SELECT NOT EXISTS (SELECT * FROM async_live EXCEPT SELECT * FROM p_app.totals_async)
   AND NOT EXISTS (SELECT * FROM p_app.totals_async EXCEPT SELECT * FROM async_live) AS rebuild_equals_live;
RESET ROLE;

-- Handlers run as the projection's owner, not as the caller of es_apply:
-- p_owner cannot read this table, so neither can its handler, even when a
-- superuser appends.
CREATE TABLE p_secret (s text);
INSERT INTO p_secret VALUES ('the superuser''s secret');
SET ROLE p_owner;
CREATE TABLE p_app.seen (seq bigint, who text, secret text);
CREATE FUNCTION p_app.spy(ev es_events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF ev.account_id NOT IN (SELECT account_id FROM p_app.p_accounts) THEN
		RETURN;
	END IF;
	INSERT INTO p_app.seen VALUES (ev.seq, current_user, NULL);
	IF ev.amount = 77 THEN
		INSERT INTO p_app.seen SELECT ev.seq, current_user, s FROM public.p_secret;
	END IF;
END $$;
SELECT es_projection_create('spy', 'p_app.spy(es_events)', 'inline') > 0 AS ok;
RESET ROLE;
SELECT es_deposit('pj-a', 1) > 0 AS ok;
SELECT DISTINCT who FROM p_app.seen;
SELECT try($$SELECT es_deposit('pj-a', 77)::text$$);
SELECT count(*) AS secrets FROM p_app.seen WHERE secret IS NOT NULL;
SET ROLE p_owner;
SELECT es_projection_drop('spy');
RESET ROLE;

-- A handler cannot write the log or the projections more than its owner
-- could: a low-privilege owner is refused by privileges, a superuser's
-- handler by the write guard (ES011), even inside es_apply.
SET ROLE p_owner;
CREATE FUNCTION p_app.forge(ev es_events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF ev.account_id NOT IN (SELECT account_id FROM p_app.p_accounts) THEN
		RETURN;
	ELSIF ev.amount = 91 THEN
		INSERT INTO es_events SELECT * FROM es_events WHERE seq = ev.seq;
	ELSIF ev.amount = 92 THEN
		UPDATE es_accounts SET balance = balance + 1000000 WHERE account_id = ev.account_id;
	ELSIF ev.amount = 93 THEN
		UPDATE es_projection_registry SET state = 'running';
	ELSIF ev.amount = 94 THEN
		SET ROLE p_other;
	ELSIF ev.amount = 95 THEN
		CREATE TEMP TABLE t_forge (x int);
	END IF;
END $$;
SELECT es_projection_create('forge', 'p_app.forge(es_events)', 'inline') > 0 AS ok;
RESET ROLE;
SELECT try($$SELECT es_deposit('pj-a', 91)::text$$);
SELECT try($$SELECT es_deposit('pj-a', 92)::text$$);
SELECT try($$SELECT es_deposit('pj-a', 93)::text$$);
SELECT try($$SELECT es_deposit('pj-a', 94)::text$$);
SELECT try($$SELECT es_deposit('pj-a', 95)::text$$);
SET ROLE p_owner;
SELECT es_projection_drop('forge');
RESET ROLE;
-- the same handler registered by a superuser: privileges let it through,
-- the write guard does not
CREATE FUNCTION public.p_forge(ev es_events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF ev.account_id NOT IN (SELECT account_id FROM p_app.p_accounts) THEN
		RETURN;
	ELSIF ev.amount = 91 THEN
		INSERT INTO es_events SELECT * FROM es_events WHERE seq = ev.seq;
	ELSIF ev.amount = 92 THEN
		UPDATE es_accounts SET balance = balance + 1000000 WHERE account_id = ev.account_id;
	ELSIF ev.amount = 93 THEN
		DELETE FROM es_commands;
	ELSIF ev.amount = 96 THEN
		PERFORM es_projection_drop('su_forge');
	END IF;
END $$;
SELECT es_projection_create('su_forge', 'public.p_forge(es_events)', 'inline') > 0 AS ok;
SELECT try($$SELECT es_deposit('pj-a', 91)::text$$);
SELECT try($$SELECT es_deposit('pj-a', 92)::text$$);
SELECT try($$SELECT es_deposit('pj-a', 93)::text$$);
-- nor manage projections (a handler that rebuilt its own projection in
-- the middle of a batch would apply events twice)
SELECT try($$SELECT es_deposit('pj-a', 96)::text$$);
SELECT es_projection_drop('su_forge');
SELECT count(*) AS su_forge_left FROM es_projections WHERE name = 'su_forge';
SELECT check_name, ok FROM es_verify() ORDER BY 1;

-- The handler's search_path is its owner's at registration: a caller's
-- search_path cannot capture its unqualified names.
CREATE TABLE p_evil.totals (currency text, total bigint, events bigint);
CREATE TABLE p_evil.currency_of (account_id bigint, currency text);
SET search_path = p_evil, public;
SELECT es_deposit('pj-a', 11) > 0 AS ok;
RESET search_path;
SELECT count(*) AS captured FROM p_evil.totals;
SELECT p_app.totals_ok();
-- Nor can a writer's temporary tables, which a search_path that does not
-- name pg_temp searches first: the handler runs in the writer's session.
SET ROLE p_writer;
CREATE TEMP TABLE totals (currency text PRIMARY KEY, total bigint, events bigint);
CREATE TEMP TABLE currency_of (account_id bigint, currency text);
GRANT ALL ON totals, currency_of TO PUBLIC;
INSERT INTO currency_of SELECT account_id, 'XXX' FROM es_accounts WHERE account = 'pj-a';
RESET ROLE;
DISCARD PLANS;	-- as in a fresh session: the handler's plans were made before
SET ROLE p_writer;
SELECT es_deposit('pj-a', 12) > 0 AS ok;
SELECT count(*) AS captured_by_temp FROM pg_temp.totals;
SELECT p_app.totals_ok();
DROP TABLE pg_temp.totals, pg_temp.currency_of;
RESET ROLE;

-- A projection whose owner loses es_ledger_admin (and with it the right to
-- read the log) stops: inline, it is no longer called (WARNING) and the
-- command succeeds (security issue 14; sql/projection_attacks.sql).
REVOKE es_ledger_admin FROM p_owner;
SET ROLE p_writer;
SELECT try($$SELECT (es_deposit('pj-a', 1) > 0)::text$$);
RESET ROLE;
GRANT es_ledger_admin TO p_owner;
SELECT es_deposit('pj-a', 1) > 0 AS ok;

-- Drop: the handler is called no more; the user's tables stay.
SET ROLE p_owner;
SELECT es_projection_drop('totals'), es_projection_drop('totals_async');
RESET ROLE;
SELECT count(*) AS projections FROM es_projections;
SELECT es_deposit('pj-a', 13) > 0 AS unlucky_but_fine;
SELECT count(*) > 0 AS tables_stay FROM p_app.totals;

DROP VIEW first_13;
DROP TABLE totals_live, async_live;
DROP SCHEMA p_app CASCADE;
DROP SCHEMA p_evil CASCADE;
DROP TABLE p_secret;
DROP FUNCTION public.p_forge(es_events);
DROP ROLE p_owner, p_other, p_writer, p_nobody;
