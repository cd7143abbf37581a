-- test/pgtap/timetravel.sql
--
-- Time travel (reference section 3: es_replay, es_balance_at, es_accounts_at,
-- es_history) against snapshots of es_accounts taken as the ledger grew.
--
-- A seeded, randomised workload (setseed from es_test.seed, default 0.4242,
-- as in invariants.sql) of 300 commands over 15 accounts in two currencies
-- -- opens, deposits, withdrawals, transfers, freezes / unfreezes,
-- set_limits, a fifth of them with an effective_at in the past -- runs in 30
-- separate transactions.  es_apply records each event at its transaction's
-- start, so this file can NOT run in one transaction as the other files do
-- (every event would get the same recorded_at): the workload is a procedure
-- that COMMITs after each step, called outside any transaction block.  At
-- the end of each step, clock_timestamp() is kept as an instant together
-- with a copy of es_accounts at that instant.  Afterwards:
--   * transaction time: for every instant and every account that existed
--     then, es_replay(account, instant) and es_balance_at(account, instant)
--     give the copied row / balance, es_accounts_at(instant) the copied set;
--     accounts opened later do not exist at that instant;
--   * now: es_accounts_at(NULL) = es_accounts, es_history ends at the
--     account's balance and version;
--   * valid time: es_replay(account, NULL / instant, t) against a fold of
--     es_events computed here in SQL;
--   * snapshots: the workload runs with es_ledger.snapshot_interval = 3, so
--     every answer above starts from a snapshot where one is usable; then
--     every replay, balance and history is asked again with the snapshots
--     dropped and must not change, and es_verify checks every snapshot.
--
-- Since the file commits, it drops what it made at the end (the extension
-- with es_ledger.allow_drop, the helper schema tt).

SET client_min_messages = warning;
SET es_ledger.snapshot_interval = 3;    -- a snapshot every 3 events of an account
CREATE EXTENSION es_ledger;
CREATE SCHEMA tt;

CREATE TABLE tt.inst (
	k      int PRIMARY KEY,      -- step (transaction) number
	at     timestamptz NOT NULL, -- clock_timestamp() at the end of the step
	xstart timestamptz NOT NULL  -- the step's transaction_timestamp()
);
CREATE TABLE tt.snap (
	k  int NOT NULL,
	at timestamptz NOT NULL,
	r  es_accounts NOT NULL      -- the es_accounts row at that instant
);
CREATE TABLE tt.runlog (
	n   serial PRIMARY KEY,
	k   int NOT NULL,
	cmd jsonb NOT NULL,
	got text NOT NULL            -- 'ok' or the SQLSTATE
);

CREATE FUNCTION tt.rnd(lo int, hi int) RETURNS int LANGUAGE sql AS $$
	SELECT lo + floor(random() * (hi - lo + 1))::int
$$;

CREATE FUNCTION tt.acct(i int) RETURNS text LANGUAGE sql AS $$
	SELECT 'tt' || lpad(i::text, 2, '0')
$$;

-- An open of account number i: odd numbers USD, even EUR.
CREATE FUNCTION tt.gen_open(i int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE c jsonb;
BEGIN
	c := jsonb_build_object('type', 'open_account', 'account', tt.acct(i),
		'currency', CASE i % 2 WHEN 1 THEN 'USD' ELSE 'EUR' END,
		'overdraft_limit', tt.rnd(0, 2000));
	IF random() < 0.3 THEN c := c || jsonb_build_object('max_balance', tt.rnd(20000, 200000)); END IF;
	RETURN c;
END $$;

-- A command on the accounts that exist, mostly one the rules accept.
CREATE FUNCTION tt.gen() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	p float8 := random();
	a es_accounts;
	b es_accounts;
	c jsonb;
BEGIN
	SELECT * INTO a FROM es_accounts ORDER BY account_id
	 OFFSET (SELECT floor(random() * count(*))::int FROM es_accounts) LIMIT 1;
	IF p < 0.28 THEN
		c := jsonb_build_object('type', 'deposit', 'account', a.account, 'amount', tt.rnd(1, 5000));
	ELSIF p < 0.50 THEN
		c := jsonb_build_object('type', 'withdraw', 'account', a.account, 'amount', tt.rnd(1, 4000));
	ELSIF p < 0.80 THEN
		SELECT * INTO b FROM es_accounts WHERE currency = a.currency AND account_id <> a.account_id
		 ORDER BY account_id
		 OFFSET (SELECT floor(random() * count(*))::int FROM es_accounts
		          WHERE currency = a.currency AND account_id <> a.account_id) LIMIT 1;
		IF b.account IS NULL THEN
			c := jsonb_build_object('type', 'deposit', 'account', a.account, 'amount', tt.rnd(1, 5000));
		ELSE
			c := jsonb_build_object('type', 'transfer', 'from', a.account, 'to', b.account,
			                        'amount', tt.rnd(1, 3000));
		END IF;
	ELSIF p < 0.90 THEN
		-- unfreeze a frozen account if there is one, else freeze this one
		SELECT * INTO b FROM es_accounts WHERE status = 'frozen' ORDER BY random() LIMIT 1;
		IF b.account IS NOT NULL THEN
			c := jsonb_build_object('type', 'unfreeze_account', 'account', b.account);
		ELSE
			c := jsonb_build_object('type', 'freeze_account', 'account', a.account);
		END IF;
	ELSE
		c := jsonb_build_object('type', 'set_limits', 'account', a.account, 'overdraft_limit', tt.rnd(0, 3000));
		IF random() < 0.5 THEN
			c := c || jsonb_build_object('max_balance', CASE WHEN random() < 0.5 THEN NULL ELSE tt.rnd(20000, 200000) END);
		END IF;
	END IF;
	RETURN c;
END $$;

-- The workload: nsteps transactions of per commands each.  Step 1 opens
-- accounts 1-6, steps 2-10 open one more each (so accounts come into
-- existence between instants).
CREATE PROCEDURE tt.run(nsteps int, per int) LANGUAGE plpgsql AS $$
DECLARE
	c jsonb;
	got text;
	t timestamptz;
BEGIN
	PERFORM setseed(coalesce(nullif(current_setting('es_test.seed', true), '')::float8, 0.4242));
	FOR k IN 1 .. nsteps LOOP
		FOR j IN 1 .. per LOOP
			IF k = 1 AND j <= 6 THEN
				c := tt.gen_open(j);
			ELSIF k BETWEEN 2 AND 10 AND j = 1 THEN
				c := tt.gen_open(k + 5);
			ELSE
				c := tt.gen();
			END IF;
			-- a fifth of the commands happened earlier than the ledger learns of them
			IF random() < 0.2 THEN
				c := c || jsonb_build_object('effective_at', now() - make_interval(mins => tt.rnd(1, 2000)));
			END IF;
			BEGIN
				PERFORM es_apply(c);
				got := 'ok';
			EXCEPTION WHEN OTHERS THEN
				got := SQLSTATE;
			END;
			INSERT INTO tt.runlog (k, cmd, got) VALUES (k, c, got);
		END LOOP;
		t := clock_timestamp();
		INSERT INTO tt.inst VALUES (k, t, transaction_timestamp());
		INSERT INTO tt.snap SELECT k, t, a FROM es_accounts a;
		PERFORM pg_sleep(0.002);    -- the next transaction starts strictly later
		COMMIT;
	END LOOP;
END $$;

CALL tt.run(30, 10);

-- Valid time: a fold of the log computed here, es_replay's contract for
-- effective_until (the AccountOpened event always counts), optionally
-- bounded by transaction time too.
CREATE FUNCTION tt.vfold(aid bigint, t timestamptz, asof timestamptz DEFAULT NULL,
	OUT balance bigint, OUT version bigint, OUT last_seq bigint) LANGUAGE sql STABLE AS $$
	SELECT sum(e.amount)::bigint, max(e.version), max(e.seq) FROM es_events e
	 WHERE e.account_id = aid AND (e.effective_at <= t OR e.version = 1)
	   AND (asof IS NULL OR e.recorded_at <= asof)
$$;

-- The accounts with the most backdated events, and the valid times to ask
-- about: each distinct effective_at, each midpoint between two consecutive
-- ones, and one before them all.
CREATE TABLE tt.vt_acc AS
	SELECT a.account_id, a.account FROM es_accounts a
	  JOIN es_events e USING (account_id)
	 WHERE e.effective_at < e.recorded_at
	 GROUP BY a.account_id, a.account
	HAVING count(*) >= 2
	 ORDER BY count(*) DESC, a.account_id LIMIT 5;
CREATE TABLE tt.vt_t AS
	SELECT account_id, t FROM (
		SELECT account_id, effective_at AS t FROM es_events
		UNION
		SELECT account_id, effective_at + (lead(effective_at) OVER w - effective_at) / 2
		  FROM es_events WINDOW w AS (PARTITION BY account_id ORDER BY effective_at)
		UNION
		SELECT account_id, min(effective_at) - interval '1 hour' FROM es_events GROUP BY account_id
	) s WHERE t IS NOT NULL AND account_id IN (SELECT account_id FROM tt.vt_acc);

SELECT plan(68);

-- 1. the workload
SELECT ok((SELECT count(*) FILTER (WHERE got = 'ok') >= 200 AND count(*) = 300
	        AND count(*) FILTER (WHERE got = 'ok' AND cmd ? 'effective_at' AND cmd->>'type' <> 'open_account') >= 20
	        AND count(DISTINCT cmd->>'type') FILTER (WHERE got = 'ok') = 7
	         FROM tt.runlog),
	'workload: 300 commands, at least 200 accepted, 20 of them backdated, all seven kinds used');
SELECT diag(format('%s accepted, %s rejected (%s)', count(*) FILTER (WHERE got = 'ok'), count(*) FILTER (WHERE got <> 'ok'),
	(SELECT string_agg(got || ' x' || n, ', ') FROM (SELECT got, count(*) n FROM tt.runlog WHERE got <> 'ok' GROUP BY got ORDER BY got) g)))
  FROM tt.runlog;
SELECT is((SELECT count(DISTINCT recorded_at) FROM es_events), 30::bigint,
	'30 transactions: 30 distinct recorded_at values');
SELECT is((SELECT count(*) FROM es_events e WHERE NOT EXISTS (
		SELECT 1 FROM tt.inst i WHERE i.xstart = e.recorded_at
		   AND e.recorded_at < i.at
		   AND e.recorded_at > coalesce((SELECT p.at FROM tt.inst p WHERE p.k = i.k - 1), '-infinity'))), 0::bigint,
	'every event is recorded at the start of its step''s transaction, between two instants');

-- 2. transaction time, at every instant
SELECT set_eq(format('SELECT * FROM es_accounts_at(%L)', i.at),
              format('SELECT (r).* FROM tt.snap WHERE k = %s', i.k),
              format('es_accounts_at(instant %s) = es_accounts then (%s accounts)', i.k,
                     (SELECT count(*) FROM tt.snap s WHERE s.k = i.k)))
  FROM tt.inst i ORDER BY i.k;
SELECT results_eq(format('SELECT * FROM es_accounts_at(%L)', (SELECT at FROM tt.inst WHERE k = 17)),
                  'SELECT (r).* FROM tt.snap WHERE k = 17 ORDER BY (r).account_id',
	'es_accounts_at returns its rows ordered by account_id');

SELECT diag(format('instant %s, %s: replay %s, copied %s', s.k, (s.r).account, es_replay((s.r).account, s.at), s.r))
  FROM tt.snap s WHERE es_replay((s.r).account, s.at) IS DISTINCT FROM s.r ORDER BY s.k, (s.r).account_id LIMIT 5;
SELECT is((SELECT count(*) FROM tt.snap s WHERE es_replay((s.r).account, s.at) IS DISTINCT FROM s.r), 0::bigint,
	format('es_replay(account, instant) = the copied es_accounts row, all columns, for all %s (instant, account) pairs',
	       (SELECT count(*) FROM tt.snap)));
SELECT is((SELECT count(*) FROM tt.snap s WHERE es_balance_at((s.r).account, s.at) IS DISTINCT FROM (s.r).balance), 0::bigint,
	'es_balance_at(account, instant) = the copied balance, for every (instant, account) pair');
SELECT is((SELECT count(*) FROM tt.snap s JOIN tt.inst i USING (k)
	 WHERE es_replay((s.r).account, i.xstart) IS DISTINCT FROM s.r), 0::bigint,
	'boundary: as_of = a step''s recorded_at counts that step''s events (recorded_at <= as_of)');
SELECT is((SELECT count(*) FROM tt.snap s JOIN tt.inst i ON i.k = s.k + 1
	 WHERE es_replay((s.r).account, i.xstart - interval '1 microsecond') IS DISTINCT FROM s.r), 0::bigint,
	'boundary: as_of one microsecond before a step''s recorded_at gives the previous instant''s rows');
SELECT ok((SELECT count(*) > 0 AND bool_and(es_balance_at(a.account, i.at) IS NULL)
	         FROM tt.inst i CROSS JOIN es_accounts a
	        WHERE NOT EXISTS (SELECT 1 FROM tt.snap s WHERE s.k = i.k AND (s.r).account_id = a.account_id)),
	'es_balance_at is NULL for an account opened after the instant');
SELECT throws_ok(format('SELECT es_replay(%L, %L)', tt.acct(15), (SELECT at FROM tt.inst WHERE k = 5)),
	'ES003', NULL, 'es_replay of an account opened after the instant: ES003');
SELECT is_empty(format('SELECT * FROM es_accounts_at(%L)', (SELECT xstart - interval '1 second' FROM tt.inst WHERE k = 1)),
	'es_accounts_at before the first transaction: no accounts');
SELECT ok((SELECT count(*) FROM tt.snap s WHERE s.k = 30) = 15
	  AND (SELECT count(DISTINCT (s.r).balance) FROM tt.snap s WHERE (s.r).account = tt.acct(1)) > 5,
	'the copies cover 15 accounts at the end and a balance that changed over time');

-- 3. now
SELECT results_eq('SELECT * FROM es_accounts_at(NULL)', 'SELECT * FROM es_accounts ORDER BY account_id',
	'es_accounts_at(NULL) = es_accounts');
SELECT results_eq('SELECT * FROM es_accounts_at(NULL)', format('SELECT * FROM es_accounts_at(%L)', clock_timestamp()),
	'es_accounts_at(now) = es_accounts_at(NULL)');
SELECT is((SELECT count(*) FROM es_accounts a CROSS JOIN LATERAL (
		SELECT count(*) n,
		       (array_agg(h.balance_after ORDER BY h.ordinality DESC))[1] last_bal,
		       (array_agg(h.version ORDER BY h.ordinality DESC))[1] last_ver
		  FROM es_history(a.account) WITH ORDINALITY h) x
	 WHERE x.n <> a.version OR x.last_bal <> a.balance OR x.last_ver <> a.version), 0::bigint,
	'es_history: the last row has balance_after = balance and version = version, the row count is version');
SELECT is((SELECT count(*) FROM es_accounts a CROSS JOIN LATERAL (
		SELECT h.balance_after, h.seq, h.recorded_at, h.effective_at,
		       sum(h.amount) OVER (ORDER BY h.version) rs, e.seq eseq, e.recorded_at erec, e.effective_at eeff
		  FROM es_history(a.account) h
		  LEFT JOIN es_events e ON e.account_id = a.account_id AND e.version = h.version) x
	 WHERE x.balance_after <> x.rs OR x.eseq IS DISTINCT FROM x.seq
	    OR x.erec <> x.recorded_at OR x.eeff <> x.effective_at), 0::bigint,
	'es_history: balance_after is the running sum, seq / recorded_at / effective_at those of the log');
SELECT results_eq(
	format('SELECT seq, balance_after FROM es_history(%L, %L, %L)', tt.acct(1),
	       (SELECT xstart FROM tt.inst WHERE k = 10), (SELECT at FROM tt.inst WHERE k = 20)),
	format($q$SELECT seq, balance_after FROM (
	            SELECT e.seq, e.version, e.recorded_at, sum(e.amount) OVER (ORDER BY e.version)::bigint balance_after
	              FROM es_events e JOIN es_accounts a USING (account_id) WHERE a.account = %L) s
	           WHERE recorded_at BETWEEN %L AND %L ORDER BY version$q$, tt.acct(1),
	       (SELECT xstart FROM tt.inst WHERE k = 10), (SELECT at FROM tt.inst WHERE k = 20)),
	'es_history(account, since, until): the events recorded in the window, balance_after folded from version 1');

-- 4. valid time
CREATE VIEW tt.vt_cmp AS
	SELECT v.account_id, v.account, t.t, r.balance, r.version, r.last_seq,
	       f.balance AS f_balance, f.version AS f_version, f.last_seq AS f_last_seq
	  FROM tt.vt_acc v JOIN tt.vt_t t USING (account_id)
	 CROSS JOIN LATERAL es_replay(v.account, NULL, t.t) r
	 CROSS JOIN LATERAL tt.vfold(v.account_id, t.t) f;
SELECT diag(format('%s, effective_until %s: replay (%s, %s, %s), fold (%s, %s, %s)', account, t,
		balance, version, last_seq, f_balance, f_version, f_last_seq))
  FROM tt.vt_cmp WHERE (balance, version, last_seq) IS DISTINCT FROM (f_balance, f_version, f_last_seq)
 LIMIT 5;
SELECT is((SELECT count(*) FROM tt.vt_cmp c WHERE c.account_id = v.account_id
	   AND (c.balance, c.version, c.last_seq) IS DISTINCT FROM (c.f_balance, c.f_version, c.f_last_seq)),
	0::bigint,
	format('valid time, %s: es_replay(account, NULL, t) = the fold of events effective by t (+ the opening), %s values of t, %s backdated events',
	       v.account, (SELECT count(*) FROM tt.vt_t t WHERE t.account_id = v.account_id),
	       (SELECT count(*) FROM es_events e WHERE e.account_id = v.account_id AND e.effective_at < e.recorded_at)))
  FROM tt.vt_acc v ORDER BY v.account_id;
SELECT ok((SELECT count(*) FROM tt.vt_cmp c JOIN es_accounts a USING (account_id)
	 WHERE c.f_version < a.version AND c.f_balance <> a.balance) >= 10,
	'valid time: some of those t leave events out and give another balance');
SELECT is((SELECT count(*) FROM tt.vt_acc v JOIN tt.vt_t t USING (account_id)
	  JOIN tt.inst i ON i.k % 3 = 0
	 CROSS JOIN LATERAL tt.vfold(v.account_id, t.t, i.at) f
	 CROSS JOIN LATERAL es_replay(v.account, i.at, t.t) r
	 WHERE EXISTS (SELECT 1 FROM tt.snap s WHERE s.k = i.k AND (s.r).account_id = v.account_id)
	   AND (r.balance, r.version, r.last_seq) IS DISTINCT FROM (f.balance, f.version, f.last_seq)),
	0::bigint,
	'valid and transaction time together: es_replay(account, instant, t) = the fold of events recorded by the instant and effective by t');
SELECT is((SELECT count(*) FROM tt.snap s
	 WHERE es_replay((s.r).account, s.at, 'infinity') IS DISTINCT FROM s.r), 0::bigint,
	'es_replay(account, instant, infinity) = es_replay(account, instant)');


-- 5. snapshots: the answers above started from snapshots where one was
-- usable; asked again with none, every answer is the same
SELECT ok((SELECT count(*) >= 60 AND count(DISTINCT account_id) = 15 FROM es_snapshots),
	format('snapshots: %s written by es_apply over the 15 accounts (interval 3)', (SELECT count(*) FROM es_snapshots)));
SELECT is((SELECT count(*) FROM es_snapshots WHERE version % 3 <> 0), 0::bigint,
	'every automatic snapshot is at a multiple of the interval');
SELECT is((SELECT count(*) FROM es_accounts a
	 WHERE (SELECT max(version) FROM es_snapshots s WHERE s.account_id = a.account_id) <> a.version - a.version % 3), 0::bigint,
	'each account''s newest snapshot is at the last multiple of 3 of its version');
SELECT ok((SELECT ok FROM es_verify() WHERE check_name = 'snapshots')
	  AND (SELECT checked FROM es_verify() WHERE check_name = 'snapshots') = (SELECT count(*) FROM es_snapshots),
	'es_verify: every snapshot passes its checks and equals the replay of the log at its version');
SELECT ok((SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM es_snapshots x
	                WHERE x.account_id = (s.r).account_id AND x.max_recorded_at <= s.at))::float8 / count(*) > 0.5
	         FROM tt.snap s),
	'most (instant, account) pairs have a usable snapshot, so replay started from one');
SELECT ok((SELECT count(*) FROM tt.vt_acc v JOIN tt.vt_t t USING (account_id) JOIN es_snapshots x USING (account_id)
	        WHERE x.max_effective_at <= t.t) > 0
	  AND (SELECT count(*) FROM tt.vt_acc v JOIN tt.vt_t t USING (account_id) JOIN es_snapshots x USING (account_id)
	        WHERE x.max_effective_at > t.t) > 0,
	'valid-time questions both can and cannot start from some snapshots');
CREATE TABLE tt.with_snap AS
	SELECT s.k, (s.r).account, x.at, es_replay((s.r).account, x.at) AS rep, es_balance_at((s.r).account, x.at) AS bal
	  FROM tt.snap s JOIN tt.inst i USING (k)
	 CROSS JOIN LATERAL (VALUES (i.at), (i.xstart), (i.xstart - interval '1 microsecond')) x(at)
	 WHERE x.at >= (SELECT xstart FROM tt.inst WHERE k = 1) AND es_balance_at((s.r).account, x.at) IS NOT NULL;
CREATE TABLE tt.with_snap_vt AS
	SELECT v.account, t.t, i.at, es_replay(v.account, i.at, t.t) AS rep
	  FROM tt.vt_acc v JOIN tt.vt_t t USING (account_id) JOIN tt.inst i ON i.k % 3 = 0
	 WHERE EXISTS (SELECT 1 FROM tt.snap s WHERE s.k = i.k AND (s.r).account_id = v.account_id);
CREATE TABLE tt.with_snap_hist AS
	SELECT i.k, h.* FROM tt.inst i CROSS JOIN LATERAL es_history(tt.acct(1), i.xstart) h WHERE i.k % 5 = 0;
SELECT cmp_ok(es_drop_snapshots(), '>=', 60::bigint, 'es_drop_snapshots says how many it dropped');
SELECT is((SELECT count(*) FROM es_snapshots), 0::bigint, 'es_drop_snapshots drops them all');
SELECT is((SELECT count(*) FROM tt.with_snap w
	 WHERE es_replay(w.account, w.at) IS DISTINCT FROM w.rep OR es_balance_at(w.account, w.at) IS DISTINCT FROM w.bal),
	0::bigint,
	format('es_replay and es_balance_at with snapshots = without, for all %s (time, account) pairs (instants, recorded_at and just before)',
	       (SELECT count(*) FROM tt.with_snap)));
SELECT is((SELECT count(*) FROM tt.with_snap_vt w WHERE es_replay(w.account, w.at, w.t) IS DISTINCT FROM w.rep),
	0::bigint,
	format('es_replay(account, instant, effective_until) with snapshots = without, %s questions', (SELECT count(*) FROM tt.with_snap_vt)));
SELECT set_eq('SELECT * FROM tt.with_snap_hist',
	'SELECT i.k, h.* FROM tt.inst i CROSS JOIN LATERAL es_history(tt.acct(1), i.xstart) h WHERE i.k % 5 = 0',
	'es_history(account, since) with snapshots = without');
SELECT is((SELECT count(*) FROM es_accounts a CROSS JOIN LATERAL es_snapshot(a.account) v WHERE v <> a.version), 0::bigint,
	'es_snapshot of every account: at its current version');
SELECT is((SELECT count(*) FROM es_accounts a CROSS JOIN LATERAL es_replay(a.account) r WHERE r IS DISTINCT FROM a), 0::bigint,
	'es_replay from the on-demand snapshots = es_accounts');

SELECT * FROM finish();

DROP SCHEMA tt CASCADE;
SET es_ledger.allow_drop = on;
DROP EXTENSION es_ledger;
RESET es_ledger.allow_drop;
