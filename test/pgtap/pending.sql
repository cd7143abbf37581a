-- test/pgtap/pending.sql
--
-- Two-phase (pending) transfers (doc/reference.md, 4 "Commands")
-- under a seeded, randomised workload checked against an INDEPENDENT model
-- kept here in plpgsql tables: immediate and pending transfers (without a
-- timeout, with a long one, and with a timeout of 1 second), posts in full
-- and in part, voids, expiries (es_expire_pending after a pg_sleep), and the
-- rejected commands of these rules (ES001, ES002, ES003, ES006, ES008, ES009,
-- ES010, ES013, ES014).  A tenth of the commands go through es_apply_each in
-- small arrays (each element judged on its own).
--
-- The model decides, before looking at the ledger's answer, which outcomes
-- each command may have: 'ok' or the SQLSTATEs the contract prescribes (all
-- of them where one command breaks several rules).  Readings of the contract
-- this file relies on, where it is not explicit:
--   * post_pending with an amount above the pending amount (or 0) is an
--     invalid command, ES009;
--   * posting an expired transfer may fail with ES010 (no longer pending) or
--     ES013 (past its timeout); voiding one fails with ES010;
--   * voiding a transfer past its timeout that is not yet released may fail
--     (ES010 / ES013) or release it (status voided or expired): any of these;
--   * a timed-out reservation may be released (status expired) by any command
--     that touches it or its accounts; es_expire_pending() releases the rest
--     and returns how many it released;
--   * es_transfers.from_account / to_account hold the account names (or
--     ids); posted_amount is 0 (or NULL) unless posted; a partial post has
--     status posted with posted_amount below amount; es_apply_each numbers
--     its rows ord = 1..n and gives sqlstate NULL (or 00000) for success.
--
-- After the workload: every outcome as the model said; a rejected command
-- writes nothing; a retry returns the first seq and writes nothing; the
-- events of every accepted command move exactly the money the model moves
-- (a reservation, a void and an expiry move none); es_accounts and
-- es_transfers equal the model row for row; for every account pending_out
-- (pending_in) is the sum of its open reservations in es_transfers and
-- available = balance - pending_out; money is conserved (sum of balances =
-- deposits - withdrawals); es_replay = es_accounts; replay as of instants
-- taken during the run (es_replay, es_accounts_at) gives the rows seen then,
-- pending amounts included; es_rebuild_projections changes nothing;
-- es_verify() all ok.  Last, a reservation past its timeout is released by
-- the next command on its account.
--
-- The seed is es_test.seed (as in invariants.sql; test/soak.sh runs many).
-- Expiry needs time to pass between transactions, so this file commits (the
-- workload is a procedure that COMMITs after each step, called outside a
-- transaction block, as in timetravel.sql).  So that a failure half way
-- leaves nothing behind for the other files, it works in a database of its
-- own, es_pending_tap, dropped at the end (and at the start, if a failed run
-- left it).

\set ON_ERROR_STOP 1
\set es_tap_db :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS es_pending_tap;
CREATE DATABASE es_pending_tap;
\c es_pending_tap
SET client_min_messages = warning;
CREATE EXTENSION pgtap;
CREATE EXTENSION es_ledger;
CREATE SCHEMA pt;

-- ---------------------------------------------------------------- the model
CREATE TABLE pt.m_acc (
	name      text PRIMARY KEY,
	currency  text NOT NULL,
	status    text NOT NULL DEFAULT 'open',
	balance   numeric NOT NULL DEFAULT 0,
	pout      numeric NOT NULL DEFAULT 0,
	pin       numeric NOT NULL DEFAULT 0,
	overdraft numeric NOT NULL DEFAULT 0,
	maxbal    numeric
);
CREATE TABLE pt.m_flow (
	currency    text PRIMARY KEY,
	deposits    numeric NOT NULL DEFAULT 0,
	withdrawals numeric NOT NULL DEFAULT 0
);
-- every transfer the ledger accepted, pending or not; id NULL: an immediate
-- transfer without an id (its transfer_id is generated)
CREATE TABLE pt.m_tr (
	k          serial PRIMARY KEY,
	id         text UNIQUE,
	src        text NOT NULL,
	dst        text NOT NULL,
	amount     numeric NOT NULL,
	pending    boolean NOT NULL,
	status     text NOT NULL,
	posted     numeric NOT NULL DEFAULT 0,
	timeout    int,
	created_at timestamptz NOT NULL,
	partial    boolean NOT NULL DEFAULT false
);
CREATE TABLE pt.m_ids (id text PRIMARY KEY, cmd jsonb NOT NULL, seq bigint NOT NULL);

-- One row per command sent.
CREATE TABLE pt.runlog (
	n          serial PRIMARY KEY,
	step       int NOT NULL,
	cmd        jsonb NOT NULL,
	via        text NOT NULL,       -- es_apply or es_apply_each
	acceptable text[],              -- 'ok' and/or SQLSTATEs the model allows
	got        text,                -- 'ok' or the SQLSTATE
	msg        text,
	ret        bigint,              -- the seq returned
	retry_seq  bigint,              -- model: a retry must return this seq
	lo         bigint,              -- the command's events are those in (lo, hi]
	hi         bigint,
	deltas     jsonb,               -- model: money moved per account
	amb        boolean NOT NULL DEFAULT false,
	resynced   boolean NOT NULL DEFAULT false
);
-- es_expire_pending() calls: how many the model expected, what it returned,
-- and what a second call right after returned
CREATE TABLE pt.expiries (phase int PRIMARY KEY, due bigint, got bigint, again bigint);
-- es_accounts as seen at instants during the run
CREATE TABLE pt.snap (k int NOT NULL, at timestamptz NOT NULL, r es_accounts NOT NULL);
-- es_apply_each ord values seen
CREATE TABLE pt.ords (n int, ords int[]);

CREATE FUNCTION pt.timed_out(t pt.m_tr) RETURNS boolean LANGUAGE sql AS $$
	SELECT t.timeout IS NOT NULL AND t.created_at + t.timeout * interval '1 second' <= now()
$$;

-- Every rule command c breaks in the model's current state.  amb: the only
-- thing against it is a void past the timeout, which the contract leaves open.
CREATE FUNCTION pt.m_check(c jsonb, OUT codes text[], OUT amb boolean) LANGUAGE plpgsql AS $$
DECLARE
	t text := c->>'type';
	f pt.m_acc;
	g pt.m_acc;
	p pt.m_tr;
	amt numeric;
BEGIN
	codes := '{}';
	amb := false;
	IF c ? 'amount' THEN amt := (c->>'amount')::numeric; END IF;
	CASE t
	WHEN 'transfer' THEN
		IF c->>'from' = c->>'to' THEN codes := codes || 'ES009'::text; END IF;
		IF c ? 'pending' THEN
			IF NOT c ? 'id' THEN codes := codes || 'ES009'::text; END IF;
			IF c ? 'timeout' AND NOT (CASE WHEN jsonb_typeof(c->'timeout') = 'number' THEN (c->>'timeout')::numeric > 0 ELSE false END) THEN
				codes := codes || 'ES009'::text;
			END IF;
		END IF;
		SELECT * INTO f FROM pt.m_acc WHERE name = c->>'from';
		SELECT * INTO g FROM pt.m_acc WHERE name = c->>'to';
		IF f.name IS NULL OR g.name IS NULL THEN
			codes := codes || 'ES003'::text;
			RETURN;
		END IF;
		IF f.name = g.name THEN RETURN; END IF;
		IF f.currency <> g.currency THEN codes := codes || 'ES006'::text; END IF;
		IF f.status <> 'open' OR g.status <> 'open' THEN codes := codes || 'ES005'::text; END IF;
		IF f.balance - f.pout - amt < -f.overdraft THEN codes := codes || 'ES001'::text; END IF;
		IF g.maxbal IS NOT NULL AND g.balance + g.pin + amt > g.maxbal THEN codes := codes || 'ES002'::text; END IF;
	WHEN 'deposit' THEN
		SELECT * INTO g FROM pt.m_acc WHERE name = c->>'account';
		IF g.name IS NULL THEN codes := codes || 'ES003'::text; RETURN; END IF;
		IF g.status <> 'open' THEN codes := codes || 'ES005'::text; END IF;
		IF g.maxbal IS NOT NULL AND g.balance + g.pin + amt > g.maxbal THEN codes := codes || 'ES002'::text; END IF;
	WHEN 'withdraw' THEN
		SELECT * INTO f FROM pt.m_acc WHERE name = c->>'account';
		IF f.name IS NULL THEN codes := codes || 'ES003'::text; RETURN; END IF;
		IF f.status <> 'open' THEN codes := codes || 'ES005'::text; END IF;
		IF f.balance - f.pout - amt < -f.overdraft THEN codes := codes || 'ES001'::text; END IF;
	WHEN 'close_account' THEN
		SELECT * INTO f FROM pt.m_acc WHERE name = c->>'account';
		IF f.name IS NULL THEN codes := codes || 'ES003'::text; RETURN; END IF;
		IF f.status <> 'open' THEN codes := codes || 'ES005'::text; END IF;
		IF f.balance <> 0 OR f.pout <> 0 OR f.pin <> 0 THEN codes := codes || 'ES014'::text; END IF;
	WHEN 'post_pending', 'void_pending' THEN
		SELECT * INTO p FROM pt.m_tr WHERE id = c->>'pending_id' AND pending;
		IF p.k IS NULL OR p.status <> 'pending' THEN
			codes := codes || 'ES010'::text;
			IF t = 'post_pending' AND p.status = 'expired' THEN codes := codes || 'ES013'::text; END IF;
		ELSIF pt.timed_out(p) THEN
			IF t = 'post_pending' THEN
				codes := codes || 'ES013'::text;
			ELSE
				codes := codes || '{ES010,ES013}'::text[];
				amb := true;
			END IF;
		END IF;
		IF t = 'post_pending' AND c ? 'amount' AND (amt <= 0 OR amt > p.amount) THEN
			codes := codes || 'ES009'::text;
			amb := false;
		END IF;
	END CASE;
END $$;

-- Apply an accepted command to the model; returns the money it moves per
-- account (non-zero entries only).
CREATE FUNCTION pt.m_mutate(c jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	t text := c->>'type';
	amt numeric;
	p pt.m_tr;
	cur text;
BEGIN
	IF c ? 'amount' THEN amt := (c->>'amount')::numeric; END IF;
	CASE t
	WHEN 'transfer' THEN
		IF c ? 'pending' THEN
			UPDATE pt.m_acc SET pout = pout + amt WHERE name = c->>'from';
			UPDATE pt.m_acc SET pin = pin + amt WHERE name = c->>'to';
			INSERT INTO pt.m_tr (id, src, dst, amount, pending, status, timeout, created_at)
			VALUES (c->>'id', c->>'from', c->>'to', amt, true, 'pending', (c->>'timeout')::int, now());
			RETURN '{}';
		END IF;
		UPDATE pt.m_acc SET balance = balance - amt WHERE name = c->>'from';
		UPDATE pt.m_acc SET balance = balance + amt WHERE name = c->>'to';
		INSERT INTO pt.m_tr (id, src, dst, amount, pending, status, posted, created_at)
		VALUES (c->>'id', c->>'from', c->>'to', amt, false, 'posted', amt, now());
		RETURN jsonb_build_object(c->>'from', -amt, c->>'to', amt);
	WHEN 'deposit' THEN
		UPDATE pt.m_acc SET balance = balance + amt WHERE name = c->>'account' RETURNING currency INTO cur;
		UPDATE pt.m_flow SET deposits = deposits + amt WHERE currency = cur;
		RETURN jsonb_build_object(c->>'account', amt);
	WHEN 'withdraw' THEN
		UPDATE pt.m_acc SET balance = balance - amt WHERE name = c->>'account' RETURNING currency INTO cur;
		UPDATE pt.m_flow SET withdrawals = withdrawals + amt WHERE currency = cur;
		RETURN jsonb_build_object(c->>'account', -amt);
	WHEN 'close_account' THEN
		UPDATE pt.m_acc SET status = 'closed' WHERE name = c->>'account';
		RETURN '{}';
	WHEN 'post_pending' THEN
		SELECT * INTO p FROM pt.m_tr WHERE id = c->>'pending_id' AND pending;
		amt := coalesce(amt, p.amount);
		UPDATE pt.m_acc SET balance = balance - amt, pout = pout - p.amount WHERE name = p.src;
		UPDATE pt.m_acc SET balance = balance + amt, pin = pin - p.amount WHERE name = p.dst;
		UPDATE pt.m_tr SET status = 'posted', posted = amt, partial = amt < p.amount WHERE k = p.k;
		RETURN jsonb_build_object(p.src, -amt, p.dst, amt);
	WHEN 'void_pending' THEN
		PERFORM pt.m_release((SELECT k FROM pt.m_tr WHERE id = c->>'pending_id' AND pending), 'voided');
		RETURN '{}';
	END CASE;
END $$;

-- Release reservation k in the model with the given final status.
CREATE FUNCTION pt.m_release(tk int, st text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE p pt.m_tr;
BEGIN
	SELECT * INTO p FROM pt.m_tr WHERE k = tk;
	UPDATE pt.m_acc SET pout = pout - p.amount WHERE name = p.src;
	UPDATE pt.m_acc SET pin = pin - p.amount WHERE name = p.dst;
	UPDATE pt.m_tr SET status = st WHERE k = tk;
END $$;

-- The model's verdict on one command.  When 'ok' is the only acceptable
-- outcome the model state has been updated; when the command is rejected it
-- raises MD001 with the acceptable SQLSTATEs.
CREATE FUNCTION pt.m_eval(c jsonb, OUT acceptable text[], OUT deltas jsonb, OUT retry_seq bigint, OUT amb boolean)
LANGUAGE plpgsql AS $$
DECLARE
	prev pt.m_ids;
	ck record;
	codes text[] := '{}';
BEGIN
	amb := false;
	deltas := '{}';
	IF c ? 'id' THEN
		SELECT * INTO prev FROM pt.m_ids WHERE id = c->>'id';
		IF prev.id IS NOT NULL THEN
			IF prev.cmd = c THEN
				acceptable := '{ok}';       -- a retry: the first seq, nothing written
				retry_seq := prev.seq;
				RETURN;
			END IF;
			codes := '{ES008}';
		END IF;
	END IF;
	ck := pt.m_check(c);
	codes := codes || ck.codes;
	IF cardinality(codes) = 0 THEN
		acceptable := '{ok}';
		deltas := pt.m_mutate(c);
	ELSIF ck.amb AND codes = ck.codes THEN
		acceptable := codes || '{ok}'::text[];      -- pt.reconcile follows the ledger
		amb := true;
	ELSE
		RAISE EXCEPTION USING ERRCODE = 'MD001', MESSAGE = array_to_string(codes, ',');
	END IF;
END $$;

-- A timed-out reservation the ledger released (lazily, or by a void past
-- the timeout): the model releases it too, with the ledger's status.
CREATE FUNCTION pt.reconcile() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	r record;
	n int := 0;
BEGIN
	FOR r IN SELECT m.k, t.status FROM pt.m_tr m JOIN es_transfers t ON t.transfer_id = m.id
	          WHERE m.pending AND m.status = 'pending' AND pt.timed_out(m)
	            AND t.status IN ('expired', 'voided') LOOP
		PERFORM pt.m_release(r.k, r.status);
		n := n + 1;
	END LOOP;
	RETURN n;
END $$;

-- ------------------------------------------------------------ the generator
CREATE FUNCTION pt.acct(i int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE i WHEN 11 THEN 'pt-sink' ELSE 'pt-' || lpad(i::text, 2, '0') END
$$;

CREATE FUNCTION pt.rnd(lo bigint, hi bigint) RETURNS bigint LANGUAGE sql AS $$
	SELECT lo + floor(random() * (hi - lo + 1))::bigint
$$;

-- 1-8 USD (5-6 may overdraw by 2000, 7-8 capped at 15000), 9-10 EUR, 11 the
-- sink (USD, only ever a target); now and then one that does not exist.
CREATE FUNCTION pt.pick() RETURNS text LANGUAGE plpgsql AS $$
DECLARE p float8 := random();
BEGIN
	IF p < 0.02 THEN RETURN 'pt-ghost'; END IF;
	IF p < 0.08 THEN RETURN pt.acct(pt.rnd(9, 10)::int); END IF;
	IF p < 0.13 THEN RETURN pt.acct(11); END IF;
	RETURN pt.acct(pt.rnd(1, 8)::int);
END $$;

CREATE FUNCTION pt.pick_src() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	IF random() < 0.03 THEN RETURN pt.acct(11); END IF;
	RETURN pt.acct(CASE WHEN random() < 0.07 THEN pt.rnd(9, 10) ELSE pt.rnd(1, 8) END::int);
END $$;

-- The id of a pending transfer to post or void: mostly an open one, else a
-- finished one, an immediate transfer's or an unknown one (ES010).
CREATE FUNCTION pt.pick_pending(n int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	p float8 := random();
	id text;
BEGIN
	IF p < 0.70 THEN
		SELECT m.id INTO id FROM pt.m_tr m WHERE m.pending AND m.status = 'pending' ORDER BY random() LIMIT 1;
	ELSIF p < 0.88 THEN
		SELECT m.id INTO id FROM pt.m_tr m WHERE m.pending AND m.status <> 'pending' ORDER BY random() LIMIT 1;
	ELSIF p < 0.94 THEN
		SELECT m.id INTO id FROM pt.m_tr m WHERE NOT m.pending AND m.id IS NOT NULL ORDER BY random() LIMIT 1;
	END IF;
	RETURN coalesce(id, 'pend-unknown-' || n);
END $$;

-- A pending transfer; timeout: NULL none, else seconds.
CREATE FUNCTION pt.gen_pending(n int, timeout int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE c jsonb;
BEGIN
	c := jsonb_build_object('type', 'transfer', 'pending', true, 'id', 'pend-' || n,
		'from', pt.pick_src(), 'to', pt.pick(), 'amount', pt.rnd(1, 3500));
	IF timeout IS NOT NULL THEN c := c || jsonb_build_object('timeout', timeout); END IF;
	RETURN c;
END $$;

-- The n-th command of a regular step.
CREATE FUNCTION pt.gen(n int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	p float8 := random();
	c jsonb;
	pid text;
	pamt numeric;
	r pt.m_ids;
BEGIN
	IF p < 0.04 THEN
		-- a client retrying an earlier accepted command
		SELECT * INTO r FROM pt.m_ids ORDER BY random() LIMIT 1;
		IF r.id IS NOT NULL THEN RETURN r.cmd; END IF;
	ELSIF p < 0.06 THEN
		-- an id already used by another command: ES008
		SELECT * INTO r FROM pt.m_ids ORDER BY random() LIMIT 1;
		IF r.id IS NOT NULL THEN
			RETURN jsonb_build_object('type', 'deposit', 'account', pt.acct(1), 'amount', pt.rnd(1, 100), 'id', r.id);
		END IF;
	END IF;
	p := random();
	IF p < 0.27 THEN
		RETURN pt.gen_pending(n, CASE WHEN random() < 0.5 THEN NULL ELSE 3600 + pt.rnd(0, 100)::int END);
	ELSIF p < 0.42 THEN
		pid := pt.pick_pending(n);
		c := jsonb_build_object('type', 'post_pending', 'pending_id', pid);
		SELECT amount INTO pamt FROM pt.m_tr WHERE id = pid;
		pamt := coalesce(pamt, 1000);
		p := random();
		IF p < 0.40 THEN c := c || jsonb_build_object('amount', pt.rnd(1, pamt::bigint));
		ELSIF p < 0.45 THEN c := c || jsonb_build_object('amount', pamt);
		ELSIF p < 0.49 THEN c := c || jsonb_build_object('amount', pamt + pt.rnd(1, 50));
		ELSIF p < 0.51 THEN c := c || jsonb_build_object('amount', 0);
		END IF;
		IF random() < 0.7 THEN c := c || jsonb_build_object('id', 'post-' || n); END IF;
		RETURN c;
	ELSIF p < 0.52 THEN
		c := jsonb_build_object('type', 'void_pending', 'pending_id', pt.pick_pending(n));
		IF random() < 0.7 THEN c := c || jsonb_build_object('id', 'void-' || n); END IF;
		RETURN c;
	ELSIF p < 0.76 THEN
		c := jsonb_build_object('type', 'transfer', 'from', pt.pick_src(), 'to', pt.pick(), 'amount', pt.rnd(1, 3000));
		IF random() < 0.5 THEN c := c || jsonb_build_object('id', 'tr-' || n); END IF;
		RETURN c;
	ELSIF p < 0.86 THEN
		c := jsonb_build_object('type', 'deposit', 'account', pt.pick(), 'amount', pt.rnd(1, 4000));
		IF random() < 0.3 THEN c := c || jsonb_build_object('id', 'dep-' || n); END IF;
		RETURN c;
	ELSIF p < 0.95 THEN
		RETURN jsonb_build_object('type', 'withdraw', 'account', pt.pick_src(), 'amount', pt.rnd(1, 3000));
	ELSIF p < 0.97 THEN
		-- a pending transfer without an id, or with a bad timeout: ES009
		c := pt.gen_pending(n, NULL);
		IF random() < 0.5 THEN RETURN c - 'id'; END IF;
		RETURN c || jsonb_build_object('timeout', CASE WHEN random() < 0.5 THEN to_jsonb(-5) ELSE to_jsonb('soon'::text) END);
	ELSE
		RETURN jsonb_build_object('type', 'close_account', 'account', pt.acct(11));
	END IF;
END $$;

-- ------------------------------------------------------------- the driver
-- Judge one command whose outcome is known; log it; keep the model in step.
CREATE FUNCTION pt.judge(step int, c jsonb, via text, got text, msg text, ret bigint, lo bigint, hi bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	ev record;
	acc text[];
	dl jsonb := '{}';
	rseq bigint;
	isamb boolean := false;
	resync boolean;
BEGIN
	BEGIN
		SELECT * INTO ev FROM pt.m_eval(c);
		acc := ev.acceptable;
		dl := ev.deltas;
		rseq := ev.retry_seq;
		isamb := ev.amb;
		IF got <> 'ok' THEN
			RAISE EXCEPTION USING ERRCODE = 'MD002', MESSAGE = 'undo';
		END IF;
	EXCEPTION
		WHEN SQLSTATE 'MD001' THEN acc := string_to_array(SQLERRM, ','); dl := '{}';
		WHEN SQLSTATE 'MD002' THEN dl := '{}';
	END;
	IF isamb THEN
		PERFORM pt.reconcile();
	END IF;
	resync := NOT (got = ANY (acc));
	IF resync THEN
		-- the ledger disagreed with the model (reported at the end); follow
		-- the ledger's accounts so that one disagreement does not cascade
		UPDATE pt.m_acc m SET balance = a.balance, pout = a.pending_out, pin = a.pending_in, status = a.status
		  FROM es_accounts a WHERE a.account = m.name;
		UPDATE pt.m_tr m SET status = t.status, posted = t.posted FROM pt.tr t WHERE t.transfer_id = m.id;
		IF got = 'ok' AND c->>'type' = 'transfer' AND c ? 'id' AND NOT EXISTS (SELECT 1 FROM pt.m_tr WHERE id = c->>'id') THEN
			-- an accepted transfer the model refused: take the ledger's row
			INSERT INTO pt.m_tr (id, src, dst, amount, pending, status, posted, timeout, created_at)
			SELECT t.transfer_id, t.src, t.dst, t.amount, c ? 'pending', t.status, t.posted,
			       (c->>'timeout')::int, t.created_at
			  FROM pt.tr t WHERE t.transfer_id = c->>'id';
		END IF;
	END IF;
	IF c ? 'id' AND got = 'ok' THEN
		INSERT INTO pt.m_ids VALUES (c->>'id', c, ret) ON CONFLICT DO NOTHING;
	END IF;
	INSERT INTO pt.runlog (step, cmd, via, acceptable, got, msg, ret, retry_seq, lo, hi, deltas, amb, resynced)
	VALUES (step, c, via, acc, got, msg, ret, rseq, lo, hi, dl, isamb, resync);
END $$;

-- Send one command through es_apply and judge it.
CREATE FUNCTION pt.exec(step int, c jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	got text;
	msg text;
	ret bigint;
	lo bigint;
	hi bigint;
BEGIN
	SELECT coalesce(max(seq), 0) INTO lo FROM es_events;
	BEGIN
		ret := es_apply(c);
		got := 'ok';
	EXCEPTION WHEN OTHERS THEN
		got := SQLSTATE;
		msg := SQLERRM;
	END;
	SELECT coalesce(max(seq), lo) INTO hi FROM es_events;
	PERFORM pt.judge(step, c, 'es_apply', got, msg, ret, lo, hi);
	RETURN got;
END $$;

-- Send an array through es_apply_each; judge each element in order.  The
-- events of an accepted element are those after the previous accepted one.
CREATE FUNCTION pt.exec_each(step int, cs jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	lo bigint;
	hi bigint;
	got text;
	o int[];
	seqs bigint[];
	sts text[];
	msgs text[];
BEGIN
	SELECT coalesce(max(seq), 0) INTO lo FROM es_events;
	SELECT array_agg(e.o ORDER BY e.o), array_agg(e.s ORDER BY e.o), array_agg(e.st ORDER BY e.o), array_agg(e.m ORDER BY e.o)
	  INTO o, seqs, sts, msgs
	  FROM es_apply_each(cs) AS e(o, s, st, m);
	INSERT INTO pt.ords VALUES (jsonb_array_length(cs), o);
	FOR i IN 1 .. least(jsonb_array_length(cs), cardinality(o)) LOOP
		got := CASE WHEN sts[i] IS NULL OR sts[i] = '00000' THEN 'ok' ELSE sts[i] END;
		IF got = 'ok' AND seqs[i] > lo THEN hi := seqs[i]; ELSE hi := lo; END IF;
		PERFORM pt.judge(step, cs->(i - 1), 'es_apply_each', got, msgs[i], seqs[i], lo, hi);
		lo := hi;
	END LOOP;
END $$;

-- Expiry phase: step k creates reservations with a timeout of 1 second;
-- after a pause, step k + 1 posts one (ES013), voids another (open), calls
-- es_expire_pending() (it must release every one still open), calls it
-- again (0), then posts and voids an expired one.
CREATE PROCEDURE pt.expiry_phase(ph int) LANGUAGE plpgsql AS $$
DECLARE
	ids text[];
	due bigint;
	got bigint;
	again bigint;
BEGIN
	FOR j IN 1 .. 8 LOOP
		PERFORM pt.exec(ph, pt.gen_pending(ph * 100 + j, 1));
	END LOOP;
	COMMIT;
	PERFORM pg_sleep(1.3);
	COMMIT;
	SELECT array_agg(m.id ORDER BY m.k) INTO ids FROM pt.m_tr m WHERE m.pending AND m.status = 'pending' AND m.timeout = 1;
	IF cardinality(ids) >= 1 THEN
		PERFORM pt.exec(ph + 1, jsonb_build_object('type', 'post_pending', 'pending_id', ids[1], 'id', 'post-late-' || ph));
		PERFORM pt.reconcile();
	END IF;
	IF cardinality(ids) >= 2 THEN
		PERFORM pt.exec(ph + 1, jsonb_build_object('type', 'void_pending', 'pending_id', ids[2], 'id', 'void-late-' || ph));
		PERFORM pt.reconcile();
	END IF;
	SELECT count(*) INTO due FROM pt.m_tr m WHERE m.pending AND m.status = 'pending' AND pt.timed_out(m);
	got := es_expire_pending();
	again := es_expire_pending();
	INSERT INTO pt.expiries VALUES (ph, due, got, again);
	PERFORM pt.m_release(m.k, 'expired') FROM pt.m_tr m
	  WHERE m.pending AND m.status = 'pending' AND pt.timed_out(m);
	IF cardinality(ids) >= 3 THEN
		PERFORM pt.exec(ph + 1, jsonb_build_object('type', 'post_pending', 'pending_id', ids[3]));
		PERFORM pt.exec(ph + 1, jsonb_build_object('type', 'void_pending', 'pending_id', ids[3], 'id', 'void-expired-' || ph));
	END IF;
	COMMIT;
END $$;

-- The workload: step 1 opens and funds the accounts; then nsteps steps of
-- per commands, each its own transaction; every 10th step is an expiry
-- phase.  es_accounts is copied every 4th step.
CREATE PROCEDURE pt.run(nsteps int, per int) LANGUAGE plpgsql AS $$
DECLARE
	c jsonb;
	n int := 0;
	batch jsonb;
	each_ok boolean := to_regprocedure('es_apply_each(jsonb)') IS NOT NULL;
BEGIN
	PERFORM setseed(coalesce(nullif(current_setting('es_test.seed', true), '')::float8, 0.4242));
	FOR i IN 1 .. 11 LOOP
		c := jsonb_build_object('type', 'open_account', 'account', pt.acct(i),
			'currency', CASE WHEN i IN (9, 10) THEN 'EUR' ELSE 'USD' END,
			'overdraft_limit', CASE WHEN i IN (5, 6) THEN 2000 ELSE 0 END,
			'max_balance', CASE WHEN i IN (7, 8) THEN 15000 END);
		PERFORM es_apply(c);
		INSERT INTO pt.m_acc (name, currency, overdraft, maxbal)
		VALUES (c->>'account', c->>'currency', (c->>'overdraft_limit')::numeric, (c->>'max_balance')::numeric);
		INSERT INTO pt.m_flow (currency) VALUES (c->>'currency') ON CONFLICT DO NOTHING;
		PERFORM pt.exec(1, jsonb_build_object('type', 'deposit', 'account', pt.acct(i),
			'amount', CASE WHEN i <= 10 THEN pt.rnd(6000, 12000) ELSE 100 END));
	END LOOP;
	COMMIT;
	FOR k IN 2 .. nsteps LOOP
		IF k % 10 = 5 THEN
			CALL pt.expiry_phase(k * 10);
			CONTINUE;
		END IF;
		FOR j IN 1 .. per LOOP
			n := n + 1;
			IF each_ok AND random() < 0.03 THEN
				batch := '[]';
				FOR b IN 1 .. pt.rnd(2, 4) LOOP
					n := n + 1;
					batch := batch || jsonb_build_array(pt.gen(n));
				END LOOP;
				PERFORM pt.exec_each(k, batch);
			ELSE
				PERFORM pt.exec(k, pt.gen(n));
			END IF;
		END LOOP;
		IF k % 4 = 0 THEN
			INSERT INTO pt.snap SELECT k, clock_timestamp(), a FROM es_accounts a;
		END IF;
		COMMIT;
	END LOOP;
END $$;

-- Where the ledger's row differs from the model's (NULL: nowhere).
CREATE VIEW pt.acc_diff AS
	SELECT m.name, row(m.currency, m.status, m.balance, m.pout, m.pin, m.balance - m.pout)::text AS model,
	       row(a.currency, a.status, a.balance, a.pending_out, a.pending_in, a.available)::text AS ledger
	  FROM pt.m_acc m LEFT JOIN es_accounts a ON a.account = m.name
	 WHERE row(a.currency, a.status, a.balance::numeric, a.pending_out::numeric, a.pending_in::numeric, a.available::numeric)
	       IS DISTINCT FROM row(m.currency, m.status, m.balance, m.pout, m.pin, m.balance - m.pout);

-- es_transfers with account names (from_account / to_account may hold ids)
CREATE VIEW pt.tr AS
	SELECT t.transfer_id, coalesce(fa.account, t.from_account::text) AS src, coalesce(ta.account, t.to_account::text) AS dst,
	       t.amount::numeric AS amount, coalesce(t.posted_amount, 0)::numeric AS posted, t.status,
	       t.created_at, t.expires_at, t.updated_at
	  FROM es_transfers t
	  LEFT JOIN es_accounts fa ON t.from_account::text IN (fa.account, fa.account_id::text)
	  LEFT JOIN es_accounts ta ON t.to_account::text IN (ta.account, ta.account_id::text);

CREATE VIEW pt.tr_diff AS
	SELECT m.id, row(m.src, m.dst, m.amount, m.posted, m.status)::text AS model,
	       row(t.src, t.dst, t.amount, t.posted, t.status)::text AS ledger
	  FROM pt.m_tr m LEFT JOIN pt.tr t ON t.transfer_id = m.id
	 WHERE m.id IS NOT NULL
	   AND row(t.src, t.dst, t.amount, t.posted, t.status) IS DISTINCT FROM row(m.src, m.dst, m.amount, m.posted, m.status);

-- Money moved per account by the events in (lo, hi], non-zero entries.
CREATE FUNCTION pt.moved(lo bigint, hi bigint) RETURNS jsonb LANGUAGE sql AS $$
	SELECT coalesce(jsonb_object_agg(account, s), '{}') FROM (
		SELECT a.account, sum(e.amount)::numeric s FROM es_events e JOIN es_accounts a USING (account_id)
		 WHERE e.seq > lo AND e.seq <= hi GROUP BY a.account HAVING sum(e.amount) <> 0) x
$$;

SELECT plan(42);

-- ================================================================ the run
SELECT has_table('es_transfers');
SELECT has_function('es_expire_pending', '{}'::name[]);
SELECT has_function('es_apply_each', ARRAY['jsonb']::name[]);

CALL pt.run(46, 30);

SELECT diag('outcomes: ' || string_agg(got || '=' || cnt, ' ' ORDER BY got))
  FROM (SELECT got, count(*) cnt FROM pt.runlog GROUP BY got) s;
SELECT diag('transfers: ' || string_agg(st || '=' || cnt, ' ' ORDER BY st))
  FROM (SELECT CASE WHEN NOT pending THEN 'immediate' WHEN partial THEN 'partially posted' ELSE status END st,
               count(*) cnt FROM pt.m_tr GROUP BY 1) s;

-- 1. the workload
SELECT is((SELECT array_agg(x ORDER BY x) FROM unnest('{ok,ES001,ES002,ES003,ES006,ES008,ES009,ES010,ES013,ES014}'::text[]) x
	  WHERE x NOT IN (SELECT got FROM pt.runlog)),
	NULL, 'the workload exercised ok, ES001-ES003, ES006, ES008-ES010, ES013, ES014');
SELECT ok((SELECT count(*) FILTER (WHERE pending AND status = 'posted' AND NOT partial) >= 20
              AND count(*) FILTER (WHERE partial) >= 20
              AND count(*) FILTER (WHERE status = 'voided') >= 20
              AND count(*) FILTER (WHERE status = 'expired') >= 10
              AND count(*) FILTER (WHERE status = 'pending') >= 5
              AND count(*) FILTER (WHERE NOT pending) >= 100
	     FROM pt.m_tr),
	'the workload left at least 20 full posts, 20 partial posts, 20 voids, 10 expiries, 5 open reservations, 100 immediate transfers');
SELECT ok((SELECT count(*) FROM pt.runlog WHERE via = 'es_apply_each') >= 30,
	'more than 30 commands went through es_apply_each');

-- 2. every outcome
SELECT diag(format('command %s %s via %s: expected %s, got %s (%s)', n, cmd, via, acceptable, got, msg))
  FROM (SELECT * FROM pt.runlog WHERE NOT (got = ANY (acceptable)) ORDER BY n LIMIT 25) s;
SELECT is((SELECT count(*) FROM pt.runlog WHERE NOT (got = ANY (acceptable))), 0::bigint,
	'every command was accepted or rejected (with the SQLSTATE) as the model says');
SELECT is((SELECT count(*) FROM pt.runlog WHERE cmd->>'type' = 'post_pending' AND cmd->>'id' LIKE 'post-late-%' AND got <> 'ES013'),
	0::bigint, 'posting a reservation past its timeout fails with ES013');
SELECT is((SELECT count(*) FROM pt.runlog WHERE got <> 'ok' AND hi <> lo), 0::bigint,
	'a rejected command writes nothing');
SELECT cmp_ok((SELECT count(*) FROM pt.runlog WHERE retry_seq IS NOT NULL AND cmd->>'type' IN ('post_pending', 'void_pending')),
	'>=', 5::bigint, 'the workload retried at least 5 posts and voids');
SELECT diag(format('retry %s %s: got %s ret %s (expected %s), wrote %s', n, cmd, got, ret, retry_seq, hi - lo))
  FROM (SELECT * FROM pt.runlog WHERE retry_seq IS NOT NULL AND (ret IS DISTINCT FROM retry_seq OR hi <> lo) ORDER BY n LIMIT 10) s;
SELECT is((SELECT count(*) FROM pt.runlog WHERE retry_seq IS NOT NULL AND (ret IS DISTINCT FROM retry_seq OR hi <> lo)), 0::bigint,
	'a retry (pending transfer, post, void, ...) returns the first seq and writes nothing');
SELECT is((SELECT count(*) FROM pt.runlog WHERE got = 'ok' AND retry_seq IS NULL AND NOT amb AND (ret IS DISTINCT FROM hi OR hi <= lo)), 0::bigint,
	'an accepted command writes events and returns the seq of the last');
SELECT diag(format('command %s %s: moved %s, model %s', n, cmd, pt.moved(lo, hi), deltas))
  FROM (SELECT * FROM pt.runlog WHERE got = 'ok' AND retry_seq IS NULL AND NOT amb AND NOT resynced
           AND pt.moved(lo, hi) <> deltas ORDER BY n LIMIT 10) s;
SELECT is((SELECT count(*) FROM pt.runlog WHERE got = 'ok' AND retry_seq IS NULL AND NOT amb AND NOT resynced
            AND pt.moved(lo, hi) <> deltas), 0::bigint,
	'the events of every accepted command move the money the model moves (a reservation or a void moves none)');
SELECT is((SELECT count(*) FROM pt.ords WHERE ords IS DISTINCT FROM (SELECT array_agg(i) FROM generate_series(1, n) i)), 0::bigint,
	'es_apply_each returns one row per command, ord 1..n');

-- 3. expiry
SELECT diag(format('expiry phase %s: due %s, es_expire_pending() returned %s, then %s', phase, due, got, again))
  FROM pt.expiries WHERE due IS DISTINCT FROM got OR again <> 0;
SELECT ok((SELECT count(*) >= 4 AND sum(due) >= 10 FROM pt.expiries), 'at least 4 expiry phases released at least 10 reservations');
SELECT is((SELECT count(*) FROM pt.expiries WHERE due IS DISTINCT FROM got), 0::bigint,
	'es_expire_pending() released every reservation past its timeout and returned how many');
SELECT is((SELECT count(*) FROM pt.expiries WHERE again IS DISTINCT FROM 0::bigint), 0::bigint,
	'es_expire_pending() called again right after returns 0');

-- 4. es_accounts = model
SELECT diag(format('account %s: model %s, ledger %s', name, model, ledger)) FROM pt.acc_diff;
SELECT is((SELECT count(*) FROM pt.acc_diff), 0::bigint,
	'es_accounts (currency, status, balance, pending_out, pending_in, available) equals the model');
SELECT is((SELECT count(*) FROM es_accounts WHERE available IS DISTINCT FROM balance - pending_out), 0::bigint,
	'available = balance - pending_out for every account');
SELECT ok((SELECT count(*) FROM es_accounts WHERE pending_out > 0) >= 2 AND (SELECT count(*) FROM es_accounts WHERE pending_in > 0) >= 2,
	'reservations are open at the end (pending_out and pending_in on at least 2 accounts each)');

-- 5. es_transfers = model
SELECT diag(format('transfer %s: model %s, ledger %s', id, model, ledger)) FROM (SELECT * FROM pt.tr_diff LIMIT 20) s;
SELECT is((SELECT count(*) FROM pt.tr_diff), 0::bigint,
	'es_transfers has the model''s row for every transfer with an id (from, to, amount, posted_amount, status)');
SELECT is((SELECT count(*) FROM es_transfers), (SELECT count(*) FROM pt.m_tr),
	'es_transfers has one row per transfer, pending or immediate, and no other');
SELECT is((SELECT array_agg(row(src, dst, amount)::text ORDER BY row(src, dst, amount)::text) FROM pt.tr t
	    WHERE NOT EXISTS (SELECT 1 FROM pt.m_tr m WHERE m.id = t.transfer_id) AND t.status = 'posted' AND t.posted = t.amount),
	(SELECT array_agg(row(src, dst, amount)::text ORDER BY row(src, dst, amount)::text) FROM pt.m_tr WHERE id IS NULL),
	'immediate transfers without an id are in es_transfers (posted in full) under a generated transfer_id');
SELECT is((SELECT count(DISTINCT transfer_id) FROM es_transfers WHERE transfer_id IS NOT NULL), (SELECT count(*) FROM es_transfers),
	'transfer_id is unique and never NULL');
SELECT is((SELECT count(*) FROM pt.m_tr m JOIN pt.tr t ON t.transfer_id = m.id
	 WHERE t.created_at IS DISTINCT FROM m.created_at
	    OR t.expires_at IS DISTINCT FROM m.created_at + m.timeout * interval '1 second'), 0::bigint,
	'created_at is the creating transaction''s time; expires_at = created_at + timeout (NULL without one)');
SELECT is((SELECT count(*) FROM pt.tr WHERE updated_at < created_at OR (status = 'pending' AND updated_at <> created_at)), 0::bigint,
	'updated_at is created_at while pending, not before it after');

-- 6. reservations = es_transfers, money conserved
SELECT is((SELECT count(*) FROM es_accounts a
	 WHERE a.pending_out::numeric IS DISTINCT FROM (SELECT coalesce(sum(amount), 0) FROM pt.tr t WHERE t.src = a.account AND t.status = 'pending')
	    OR a.pending_in::numeric IS DISTINCT FROM (SELECT coalesce(sum(amount), 0) FROM pt.tr t WHERE t.dst = a.account AND t.status = 'pending')),
	0::bigint, 'for every account pending_out (pending_in) = the sum of its open reservations out (in) in es_transfers');
SELECT is((SELECT count(*) FROM pt.m_flow f LEFT JOIN (
		SELECT currency, sum(balance::numeric) s, sum(pending_out::numeric) po, sum(pending_in::numeric) pi
		  FROM es_accounts GROUP BY currency) a USING (currency)
	 WHERE a.s IS DISTINCT FROM f.deposits - f.withdrawals OR a.po IS DISTINCT FROM a.pi), 0::bigint,
	'money is conserved per currency: sum of balances = deposits - withdrawals; reservations out = reservations in');
SELECT is((SELECT count(*) FROM es_accounts a LEFT JOIN (
		SELECT account_id, sum(amount) s, count(*) c, max(seq) m FROM es_events GROUP BY account_id) e USING (account_id)
	 WHERE a.balance IS DISTINCT FROM e.s::bigint OR a.version IS DISTINCT FROM e.c OR a.last_seq IS DISTINCT FROM e.m), 0::bigint,
	'balance = sum(amount) of the account''s events (reservations move none), version = their count, last_seq = the last');

-- 7. replay
SELECT diag(format('account %s: es_accounts %s, es_replay %s', a.account, a, es_replay(a.account)))
  FROM es_accounts a WHERE row(a.*) IS DISTINCT FROM es_replay(a.account);
SELECT is((SELECT count(*) FROM es_accounts a WHERE row(a.*) IS DISTINCT FROM es_replay(a.account)), 0::bigint,
	'es_replay(account) equals the es_accounts row, pending amounts included');
SELECT cmp_ok((SELECT count(*) FROM pt.snap s WHERE (s.r).pending_out <> 0 OR (s.r).pending_in <> 0), '>', 10::bigint,
	'rows copied during the run had reservations open');
SELECT diag(format('as of %s: es_replay %s, seen %s', s.at, es_replay((s.r).account, s.at), s.r))
  FROM (SELECT * FROM pt.snap s WHERE es_replay((s.r).account, s.at) IS DISTINCT FROM s.r LIMIT 5) s;
SELECT is((SELECT count(*) FROM pt.snap s WHERE es_replay((s.r).account, s.at) IS DISTINCT FROM s.r), 0::bigint,
	'es_replay(account, instant) gives the row seen at that instant during the run, pending amounts included');
SELECT is((SELECT count(*) FROM (SELECT DISTINCT k, at FROM pt.snap) i
	 WHERE (SELECT array_agg(x::text ORDER BY x.account_id) FROM es_accounts_at(i.at) x)
	       IS DISTINCT FROM (SELECT array_agg(s.r::text ORDER BY (s.r).account_id) FROM pt.snap s WHERE s.k = i.k)), 0::bigint,
	'es_accounts_at(instant) gives the rows seen at that instant, pending amounts included');

-- 8. rebuild and verify
CREATE TABLE pt.before_acc AS SELECT * FROM es_accounts;
CREATE TABLE pt.before_tr AS SELECT * FROM es_transfers;
SELECT cmp_ok(es_rebuild_projections(), '>', 0::bigint, 'es_rebuild_projections() reads the log');
SELECT is((SELECT count(*) FROM ((SELECT * FROM es_accounts EXCEPT ALL SELECT * FROM pt.before_acc)
	  UNION ALL (SELECT * FROM pt.before_acc EXCEPT ALL SELECT * FROM es_accounts)) d), 0::bigint,
	'es_rebuild_projections() leaves es_accounts as it was');
SELECT is((SELECT count(*) FROM ((SELECT * FROM es_transfers EXCEPT ALL SELECT * FROM pt.before_tr)
	  UNION ALL (SELECT * FROM pt.before_tr EXCEPT ALL SELECT * FROM es_transfers)) d), 0::bigint,
	'es_rebuild_projections() leaves es_transfers as it was (rebuilt from the log)');
SELECT is((SELECT coalesce(string_agg(check_name || ': ' || coalesce(detail, ''), '; '), 'all ok') FROM es_verify() WHERE NOT ok),
	'all ok', 'es_verify() all ok');

-- 9. a reservation past its timeout is released by the next command on its
-- account: lz-1 reserves all it has for lz-2 (capped at 1000) for 1 second
DO $$
BEGIN
	PERFORM es_open_account('lz-1', 'USD');
	PERFORM es_open_account('lz-2', 'USD', 0, 1000);
	PERFORM es_deposit('lz-1', 1000);
	PERFORM es_apply('{"type": "transfer", "pending": true, "id": "lz-p", "from": "lz-1", "to": "lz-2", "amount": 1000, "timeout": 1}');
END $$;
DO $$ BEGIN PERFORM pg_sleep(1.3); END $$;
SELECT lives_ok($$SELECT es_withdraw('lz-1', 1000)$$,
	'after the timeout the reserved money is available again to the next command on the account');
SELECT is((SELECT status FROM es_transfers WHERE transfer_id = 'lz-p'), 'expired',
	'that command released the reservation: status expired');
SELECT lives_ok($$SELECT es_deposit('lz-2', 1000)$$,
	'the credit account''s cap no longer counts the released reservation');
SELECT is((SELECT string_agg(account || ' ' || balance || ' ' || pending_out || ' ' || pending_in, ', ' ORDER BY account)
	     FROM es_accounts WHERE account LIKE 'lz-%'), 'lz-1 0 0 0, lz-2 1000 0 0',
	'lz-1 and lz-2: balances and pending amounts after the expiry');
SELECT is((SELECT coalesce(string_agg(check_name || ': ' || coalesce(detail, ''), '; '), 'all ok') FROM es_verify() WHERE NOT ok),
	'all ok', 'es_verify() all ok after the lazy expiry');

SELECT * FROM finish();

\c :es_tap_db
DROP DATABASE es_pending_tap;
