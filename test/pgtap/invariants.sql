-- test/pgtap/invariants.sql
--
-- A seeded, randomised workload of a few thousand es_apply commands, checked
-- against an INDEPENDENT model of the ledger's rules (doc/reference.md sections
-- 4-7) written here in plpgsql.  For every command the model decides, before
-- looking at what es_apply did, which outcomes are acceptable: 'ok' or the
-- SQLSTATEs the contract prescribes.  Where the contract names several
-- failing rules for one command and does not fix their precedence (e.g. a
-- frozen account that also lacks the funds), every one of those SQLSTATEs is
-- accepted; where the contract leaves a case open (set_limits / close on a
-- frozen account) both 'ok' and ES005 are accepted and the model follows.
--
-- After the workload the log and the projections are checked against the
-- model and against each other: balances, versions, replay, seq order,
-- conservation per currency, limits, idempotency, events written.
--
-- Everything runs in one transaction that is rolled back at the end.

BEGIN;
SET LOCAL client_min_messages = warning;
CREATE EXTENSION es_ledger;
SELECT plan(34);

CREATE SCHEMA es_t;

-- ---------------------------------------------------------------- the model
CREATE TABLE es_t.m_acc (
	name      text PRIMARY KEY,
	currency  text NOT NULL,
	status    text NOT NULL,
	balance   numeric NOT NULL,
	overdraft numeric NOT NULL,
	maxbal    numeric,
	version   bigint NOT NULL,
	limits_changed boolean NOT NULL DEFAULT false
);
CREATE TABLE es_t.m_flow (
	currency    text PRIMARY KEY,
	deposits    numeric NOT NULL DEFAULT 0,
	withdrawals numeric NOT NULL DEFAULT 0
);
CREATE TABLE es_t.m_ids (id text PRIMARY KEY, cmd jsonb NOT NULL, seq bigint NOT NULL);
CREATE TABLE es_t.m_failed_ids (id text PRIMARY KEY);

-- One row per command sent to es_apply.
CREATE TABLE es_t.runlog (
	n          int PRIMARY KEY,
	cmd        jsonb NOT NULL,
	acceptable text[],          -- 'ok' and/or SQLSTATEs the model allows
	got        text,            -- 'ok' or the SQLSTATE es_apply raised
	msg        text,
	ret        bigint,          -- what es_apply returned
	retry_seq  bigint,          -- model: a retry must return this seq
	nev        int,             -- model: events this command must write
	before_max bigint,          -- max(seq) before the command
	new_cnt    bigint,          -- events with seq > before_max afterwards
	new_max    bigint,
	via        text,            -- es_apply or the typed shorthand
	rolled     boolean NOT NULL DEFAULT false,  -- accepted, then rolled back on purpose
	resynced   boolean NOT NULL DEFAULT false
);

-- A credit of amt: ES002 above max_balance (pending_in is always 0 here),
-- 22003 beyond bigint.
CREATE FUNCTION es_t.m_credit(a es_t.m_acc, amt numeric) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE r text[] := '{}';
BEGIN
	IF a.maxbal IS NOT NULL AND a.balance + amt > a.maxbal THEN r := r || 'ES002'::text; END IF;
	IF a.balance + amt > 9223372036854775807 THEN r := r || '22003'::text; END IF;
	RETURN r;
END $$;

-- A debit of amt: ES001 below -overdraft_limit, 22003 beyond bigint.
CREATE FUNCTION es_t.m_debit(a es_t.m_acc, amt numeric) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE r text[] := '{}';
BEGIN
	IF a.balance - amt < -a.overdraft THEN r := r || 'ES001'::text; END IF;
	IF a.balance - amt < -9223372036854775808 THEN r := r || '22003'::text; END IF;
	RETURN r;
END $$;

-- Every rule a single (well-shaped) command breaks, without touching state.
-- amb: the contract leaves open whether the command is accepted (the only
-- reason against it is that the account is frozen): 'ok' is acceptable too.
CREATE FUNCTION es_t.m_check(c jsonb, OUT codes text[], OUT amb boolean)
LANGUAGE plpgsql AS $$
DECLARE
	t text := c->>'type';
	a es_t.m_acc;
	f es_t.m_acc;
	g es_t.m_acc;
	amt numeric;
BEGIN
	codes := '{}';
	amb := false;
	IF c ? 'amount' THEN amt := (c->>'amount')::numeric; END IF;

	IF t = 'transfer' THEN
		SELECT * INTO f FROM es_t.m_acc WHERE name = c->>'from';
		SELECT * INTO g FROM es_t.m_acc WHERE name = c->>'to';
		IF c->>'from' = c->>'to' THEN codes := codes || 'ES009'::text; END IF;
		IF f.name IS NULL OR g.name IS NULL THEN
			codes := codes || 'ES003'::text;
			RETURN;
		END IF;
		IF c->>'from' = c->>'to' THEN
			IF f.status <> 'open' THEN codes := codes || 'ES005'::text; END IF;
			RETURN;
		END IF;
		IF f.currency <> g.currency THEN codes := codes || 'ES006'::text; END IF;
		IF f.status <> 'open' OR g.status <> 'open' THEN codes := codes || 'ES005'::text; END IF;
		codes := codes || es_t.m_debit(f, amt) || es_t.m_credit(g, amt);
		RETURN;
	END IF;

	SELECT * INTO a FROM es_t.m_acc WHERE name = c->>'account';
	IF t = 'open_account' THEN
		IF a.name IS NOT NULL THEN codes := codes || 'ES004'::text; END IF;
		RETURN;
	END IF;
	IF (c->>'expected_version')::bigint < 0 THEN
		codes := codes || 'ES009'::text;       -- not a version at all
	END IF;
	IF a.name IS NULL THEN
		codes := codes || 'ES003'::text;
		RETURN;
	END IF;
	IF c ? 'expected_version' AND (c->>'expected_version')::bigint <> a.version THEN
		codes := codes || 'ES007'::text;
	END IF;
	CASE t
	WHEN 'deposit' THEN
		IF a.status <> 'open' THEN codes := codes || 'ES005'::text; END IF;
		codes := codes || es_t.m_credit(a, amt);
	WHEN 'withdraw' THEN
		IF a.status <> 'open' THEN codes := codes || 'ES005'::text; END IF;
		codes := codes || es_t.m_debit(a, amt);
	WHEN 'freeze_account' THEN
		IF a.status <> 'open' THEN codes := codes || 'ES005'::text; END IF;
	WHEN 'unfreeze_account' THEN
		IF a.status <> 'frozen' THEN codes := codes || 'ES005'::text; END IF;
	WHEN 'set_limits' THEN
		IF a.status = 'closed' THEN codes := codes || 'ES005'::text;
		ELSIF a.status = 'frozen' THEN codes := codes || 'ES005'::text; amb := true;
		END IF;
	WHEN 'close_account' THEN
		IF a.status = 'closed' THEN codes := codes || 'ES005'::text;
		ELSIF a.status = 'frozen' THEN codes := codes || 'ES005'::text; amb := true;
		END IF;
		IF a.balance <> 0 THEN codes := codes || 'ES014'::text; END IF;
	END CASE;
	IF amb AND codes <> '{ES005}' THEN amb := false; END IF;
END $$;

-- Apply a single command to the model; returns the number of events it writes.
CREATE FUNCTION es_t.m_mutate(c jsonb) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
	t text := c->>'type';
	amt numeric;
	cur text;
BEGIN
	IF c ? 'amount' THEN amt := (c->>'amount')::numeric; END IF;
	CASE t
	WHEN 'open_account' THEN
		INSERT INTO es_t.m_acc (name, currency, status, balance, overdraft, maxbal, version)
		VALUES (c->>'account', c->>'currency', 'open', 0,
		        coalesce((c->>'overdraft_limit')::numeric, 0), (c->>'max_balance')::numeric, 1);
		INSERT INTO es_t.m_flow (currency) VALUES (c->>'currency') ON CONFLICT DO NOTHING;
		RETURN 1;
	WHEN 'deposit' THEN
		UPDATE es_t.m_acc SET balance = balance + amt, version = version + 1
		 WHERE name = c->>'account' RETURNING currency INTO cur;
		UPDATE es_t.m_flow SET deposits = deposits + amt WHERE currency = cur;
		RETURN 1;
	WHEN 'withdraw' THEN
		UPDATE es_t.m_acc SET balance = balance - amt, version = version + 1
		 WHERE name = c->>'account' RETURNING currency INTO cur;
		UPDATE es_t.m_flow SET withdrawals = withdrawals + amt WHERE currency = cur;
		RETURN 1;
	WHEN 'transfer' THEN
		UPDATE es_t.m_acc SET balance = balance - amt, version = version + 1 WHERE name = c->>'from';
		UPDATE es_t.m_acc SET balance = balance + amt, version = version + 1 WHERE name = c->>'to';
		RETURN 2;
	WHEN 'freeze_account' THEN
		UPDATE es_t.m_acc SET status = 'frozen', version = version + 1 WHERE name = c->>'account';
		RETURN 1;
	WHEN 'unfreeze_account' THEN
		UPDATE es_t.m_acc SET status = 'open', version = version + 1 WHERE name = c->>'account';
		RETURN 1;
	WHEN 'close_account' THEN
		UPDATE es_t.m_acc SET status = 'closed', version = version + 1 WHERE name = c->>'account';
		RETURN 1;
	WHEN 'set_limits' THEN
		UPDATE es_t.m_acc SET
			overdraft = CASE WHEN c ? 'overdraft_limit' THEN (c->>'overdraft_limit')::numeric ELSE overdraft END,
			maxbal    = CASE WHEN c ? 'max_balance' THEN (c->>'max_balance')::numeric ELSE maxbal END,
			limits_changed = true,
			version = version + 1
		 WHERE name = c->>'account';
		RETURN 1;
	END CASE;
END $$;

-- The model's verdict on a command (single or batch).  When 'ok' is among
-- the acceptable outcomes the model state has been updated; otherwise it
-- raises MD001 with the acceptable SQLSTATEs so that the caller's
-- sub-transaction undoes any partial (batch) update.
CREATE FUNCTION es_t.m_eval(c jsonb, OUT acceptable text[], OUT nevents int, OUT retry_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
	ck record;
	prev es_t.m_ids;
	e jsonb;
	shape text[] := '{}';
BEGIN
	nevents := 0;
	IF jsonb_typeof(c) = 'array' THEN
		-- atomic batch: all or nothing, in order, each sees the previous ones.
		-- A badly shaped element (ES009) may be reported before the state
		-- checks of the elements ahead of it.
		IF EXISTS (SELECT 1 FROM jsonb_array_elements(c) x
		            WHERE x->>'from' = x->>'to' OR (x->>'expected_version')::bigint < 0) THEN
			shape := '{ES009}';
		END IF;
		FOR e IN SELECT value FROM jsonb_array_elements(c) LOOP
			ck := es_t.m_check(e);
			IF cardinality(ck.codes) > 0 THEN
				RAISE EXCEPTION USING ERRCODE = 'MD001', MESSAGE = array_to_string(ck.codes || shape, ',');
			END IF;
			nevents := nevents + es_t.m_mutate(e);
		END LOOP;
		acceptable := '{ok}';
		RETURN;
	END IF;

	IF c ? 'id' THEN
		SELECT * INTO prev FROM es_t.m_ids WHERE id = c->>'id';
		IF prev.id IS NOT NULL THEN
			IF prev.cmd = c THEN
				acceptable := '{ok}';      -- a retry: same seq, nothing written
				retry_seq := prev.seq;
				RETURN;
			END IF;
			ck := es_t.m_check(c);
			RAISE EXCEPTION USING ERRCODE = 'MD001',
				MESSAGE = array_to_string('{ES008}'::text[] || ck.codes, ',');
		END IF;
	END IF;

	ck := es_t.m_check(c);
	IF cardinality(ck.codes) = 0 THEN
		acceptable := '{ok}';
	ELSIF ck.amb THEN
		acceptable := ck.codes || '{ok}'::text[];
	ELSE
		RAISE EXCEPTION USING ERRCODE = 'MD001', MESSAGE = array_to_string(ck.codes, ',');
	END IF;
	nevents := es_t.m_mutate(c);
END $$;

-- ------------------------------------------------------------ the generator
CREATE FUNCTION es_t.acct(k int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE k
		WHEN 1 THEN repeat('L', 195) || '-0001'       -- 200 characters
		WHEN 2 THEN 'Konto Müller €'
		ELSE 'acct-' || k END
$$;

CREATE FUNCTION es_t.rnd(lo bigint, hi bigint) RETURNS bigint LANGUAGE sql AS $$
	SELECT lo + floor(random() * (hi - lo + 1))::bigint
$$;

-- Mostly existing accounts 1..40 (26..40 are opened later, if at all),
-- now and then one that never exists.
CREATE FUNCTION es_t.pick_acct() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	IF random() < 0.02 THEN RETURN 'ghost-' || es_t.rnd(1, 5); END IF;
	IF random() < 0.85 THEN RETURN es_t.acct(es_t.rnd(1, 25)::int); END IF;
	RETURN es_t.acct(es_t.rnd(1, 40)::int);
END $$;

CREATE FUNCTION es_t.gen_amount() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p float8 := random();
BEGIN
	IF p < 0.84 THEN RETURN to_jsonb(es_t.rnd(1, 3000)); END IF;
	IF p < 0.90 THEN RETURN to_jsonb(es_t.rnd(1, 3000)::text); END IF;      -- string of digits
	IF p < 0.95 THEN RETURN to_jsonb(es_t.rnd(1, 1000000000000)); END IF;
	IF p < 0.985 THEN RETURN to_jsonb(9223372036854775807 - es_t.rnd(0, 1000)); END IF;
	RETURN to_jsonb('9223372036854775807'::text);
END $$;

CREATE FUNCTION es_t.gen_overdraft() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p float8 := random();
BEGIN
	IF p < 0.55 THEN RETURN to_jsonb(0); END IF;
	IF p < 0.90 THEN RETURN to_jsonb(es_t.rnd(1, 5000)); END IF;
	IF p < 0.95 THEN RETURN to_jsonb(1000000000000::bigint); END IF;
	RETURN to_jsonb(9223372036854775807);
END $$;

CREATE FUNCTION es_t.gen_maxbal() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p float8 := random();
BEGIN
	IF p < 0.35 THEN RETURN 'null'::jsonb; END IF;
	IF p < 0.93 THEN RETURN to_jsonb(es_t.rnd(2000, 60000)); END IF;
	IF p < 0.96 THEN RETURN to_jsonb(0); END IF;
	RETURN to_jsonb(9223372036854775807);
END $$;

CREATE FUNCTION es_t.gen_open(name text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	c jsonb;
	p float8 := random();
BEGIN
	c := jsonb_build_object('type', 'open_account', 'account', name, 'currency',
		CASE WHEN p < 0.6 THEN 'USD' WHEN p < 0.9 THEN 'EUR' ELSE 'JPY' END);
	IF random() < 0.75 THEN c := c || jsonb_build_object('overdraft_limit', es_t.gen_overdraft()); END IF;
	IF random() < 0.65 THEN c := c || jsonb_build_object('max_balance', es_t.gen_maxbal()); END IF;
	RETURN c;
END $$;

-- One well-shaped command (no id).  In a batch only money moves and
-- freeze/unfreeze (their outcome is never left open by the contract).
CREATE FUNCTION es_t.gen_single(in_batch boolean) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	r float8 := random();
	c jsonb;
	a text;
	b text;
	v bigint;
	amt numeric;
BEGIN
	IF in_batch THEN r := r * 0.86; END IF;
	IF r < 0.26 THEN
		c := jsonb_build_object('type', 'deposit', 'account', es_t.pick_acct(), 'amount', es_t.gen_amount());
	ELSIF r < 0.43 THEN
		c := jsonb_build_object('type', 'withdraw', 'account', es_t.pick_acct(), 'amount', es_t.gen_amount());
	ELSIF r < 0.79 THEN
		a := es_t.pick_acct();
		-- often involve account 3, a hot one; mostly within one currency
		b := CASE WHEN random() < 0.03 THEN a WHEN random() < 0.3 THEN es_t.acct(3) ELSE es_t.pick_acct() END;
		IF random() < 0.75 THEN
			SELECT name INTO b FROM es_t.m_acc
			 WHERE currency = (SELECT currency FROM es_t.m_acc WHERE name = a) AND name <> a AND status <> 'closed'
			 ORDER BY name LIMIT 1
			OFFSET (SELECT floor(random() * greatest(count(*), 1)) FROM es_t.m_acc
			         WHERE currency = (SELECT currency FROM es_t.m_acc WHERE name = a) AND name <> a AND status <> 'closed');
			b := coalesce(b, es_t.pick_acct());
		END IF;
		IF random() < 0.5 THEN
			c := jsonb_build_object('type', 'transfer', 'from', a, 'to', b, 'amount', es_t.gen_amount());
		ELSE
			c := jsonb_build_object('type', 'transfer', 'from', b, 'to', a, 'amount', es_t.gen_amount());
		END IF;
	ELSIF r < 0.82 THEN
		c := jsonb_build_object('type', 'freeze_account', 'account', es_t.pick_acct());
	ELSIF r < 0.86 THEN
		SELECT name INTO a FROM es_t.m_acc WHERE status = 'frozen' ORDER BY name LIMIT 1
			OFFSET (SELECT floor(random() * greatest(count(*), 1)) FROM es_t.m_acc WHERE status = 'frozen');
		IF a IS NULL OR random() < 0.25 THEN a := es_t.pick_acct(); END IF;
		c := jsonb_build_object('type', 'unfreeze_account', 'account', a);
	ELSIF r < 0.93 THEN
		r := random();
		c := jsonb_build_object('type', 'set_limits', 'account', es_t.pick_acct());
		IF r < 0.7 THEN c := c || jsonb_build_object('overdraft_limit', es_t.gen_overdraft()); END IF;
		IF r >= 0.4 THEN c := c || jsonb_build_object('max_balance', es_t.gen_maxbal()); END IF;
	ELSIF r < 0.96 THEN
		-- closing empties the pool: close the late accounts (26..40) when empty,
		-- try the others (mostly ES014)
		SELECT name INTO a FROM es_t.m_acc WHERE balance = 0 AND status <> 'closed'
		   AND name NOT IN (SELECT es_t.acct(i) FROM generate_series(1, 25) i) ORDER BY name LIMIT 1
			OFFSET (SELECT floor(random() * greatest(count(*), 1)) FROM es_t.m_acc WHERE balance = 0 AND status <> 'closed'
			           AND name NOT IN (SELECT es_t.acct(i) FROM generate_series(1, 25) i));
		IF a IS NULL OR random() < 0.5 THEN a := es_t.pick_acct(); END IF;
		c := jsonb_build_object('type', 'close_account', 'account', a);
	ELSE
		c := es_t.gen_open(es_t.acct(es_t.rnd(20, 40)::int));
	END IF;

	-- one money move in six goes right to a limit, or one past it
	IF c->>'type' IN ('deposit', 'withdraw', 'transfer') AND random() < 0.17 THEN
		v := es_t.rnd(-1, 1);
		SELECT CASE
			WHEN c->>'type' = 'deposit' THEN (SELECT maxbal - balance FROM es_t.m_acc WHERE name = c->>'account')
			WHEN c->>'type' = 'withdraw' THEN (SELECT balance + overdraft FROM es_t.m_acc WHERE name = c->>'account')
			WHEN random() < 0.5 THEN (SELECT balance + overdraft FROM es_t.m_acc WHERE name = c->>'from')
			ELSE (SELECT maxbal - balance FROM es_t.m_acc WHERE name = c->>'to') END + v
		  INTO amt;
		IF amt BETWEEN 1 AND 9223372036854775807 THEN
			c := c || jsonb_build_object('amount', amt);
		END IF;
	END IF;

	-- optional fields every command may carry
	IF c->>'type' <> 'transfer' AND c->>'type' <> 'open_account' AND random() < 0.06 THEN
		SELECT version INTO v FROM es_t.m_acc WHERE name = c->>'account';
		v := coalesce(v, 1);
		IF random() < 0.4 THEN v := v + es_t.rnd(-3, 3); END IF;
		c := c || jsonb_build_object('expected_version', v);
	END IF;
	IF random() < 0.05 THEN
		c := c || jsonb_build_object('effective_at',
			to_char(timestamptz '2020-01-01 00:00:00+00' + es_t.rnd(0, 2000) * interval '1 hour',
			        'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
	END IF;
	IF random() < 0.05 THEN
		c := c || jsonb_build_object('metadata', jsonb_build_object('note', 'meta-' || es_t.rnd(1, 1000000000)));
	END IF;
	RETURN c;
END $$;

-- The n-th command of the workload.
CREATE FUNCTION es_t.gen(n int, prev jsonb, prev_ok boolean) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	p float8 := random();
	c jsonb;
	i int;
	r es_t.m_ids;
	fid text;
BEGIN
	-- a client retrying its last command (same id)
	IF prev_ok AND prev ? 'id' AND p < 0.04 THEN RETURN prev; END IF;
	p := random();
	IF p < 0.06 THEN
		-- an atomic batch of 2..4 commands
		c := '[]';
		FOR i IN 1 .. es_t.rnd(2, 4) LOOP
			c := c || jsonb_build_array(es_t.gen_single(true));
		END LOOP;
		RETURN c;
	END IF;
	p := random();
	IF p < 0.06 THEN
		-- retry of an older successful command
		SELECT * INTO r FROM es_t.m_ids ORDER BY id LIMIT 1
			OFFSET (SELECT floor(random() * greatest(count(*), 1)) FROM es_t.m_ids);
		IF r.id IS NOT NULL THEN RETURN r.cmd; END IF;
	END IF;
	c := es_t.gen_single(false);
	p := random();
	IF p < 0.28 THEN
		c := c || jsonb_build_object('id', CASE WHEN random() < 0.1 THEN lpad(n::text, 200, 'k') ELSE 'cmd-' || n END);
	ELSIF p < 0.33 THEN
		-- an id already used by another successful command: ES008
		SELECT * INTO r FROM es_t.m_ids ORDER BY id LIMIT 1
			OFFSET (SELECT floor(random() * greatest(count(*), 1)) FROM es_t.m_ids);
		IF r.id IS NOT NULL THEN c := c || jsonb_build_object('id', r.id); END IF;
	ELSIF p < 0.36 THEN
		-- the id of a failed command may be used again
		SELECT id INTO fid FROM es_t.m_failed_ids ORDER BY id LIMIT 1
			OFFSET (SELECT floor(random() * greatest(count(*), 1)) FROM es_t.m_failed_ids);
		IF fid IS NOT NULL THEN c := c || jsonb_build_object('id', fid); END IF;
	END IF;
	RETURN c;
END $$;

-- ------------------------------------------------------------- the driver
CREATE FUNCTION es_t.run(ncmd int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	n int := 0;
	k int;
	c jsonb;
	prev jsonb;
	prev_ok boolean := false;
	got text;
	msg text;
	ret bigint;
	bmax bigint;
	ncnt bigint;
	nmax bigint;
	acc text[];
	nev int;
	rseq bigint;
	ev record;
	resync boolean;
	via text;
	rb boolean;
	rolled boolean;
BEGIN
	PERFORM setseed(coalesce(nullif(current_setting('es_test.seed', true), '')::float8, 0.4242));
	FOR i IN 1 .. ncmd LOOP
		n := n + 1;
		IF i <= 25 THEN
			c := es_t.gen_open(es_t.acct(i));       -- the initial accounts
			IF i = 3 THEN c := c || '{"max_balance": null, "overdraft_limit": 2000}'; END IF;
		ELSIF i <= 60 THEN
			-- fund them
			c := jsonb_build_object('type', 'deposit', 'account', es_t.acct((i - 26) % 25 + 1),
			                        'amount', es_t.rnd(1000, 20000));
		ELSE
			c := es_t.gen(i, prev, prev_ok);
		END IF;

		SELECT coalesce(max(seq), 0) INTO bmax FROM es_events;
		got := NULL; msg := NULL; ret := NULL;
		-- a third of the plain money moves and opens go through the shorthands,
		-- which must be the same as the matching es_apply call (retries of
		-- them may come through es_apply and vice versa)
		via := 'es_apply';
		IF jsonb_typeof(c) = 'object' AND c->>'type' IN ('deposit', 'withdraw', 'transfer')
		   AND jsonb_typeof(c->'amount') = 'number'
		   AND NOT EXISTS (SELECT 1 FROM jsonb_object_keys(c) ok_key WHERE ok_key NOT IN ('type', 'account', 'from', 'to', 'amount', 'id'))
		   AND random() < 0.35 THEN
			via := 'es_' || (c->>'type');
		ELSIF jsonb_typeof(c) = 'object' AND c->>'type' = 'open_account'
		   AND NOT EXISTS (SELECT 1 FROM jsonb_object_keys(c) ok_key WHERE ok_key NOT IN ('type', 'account', 'currency', 'overdraft_limit', 'max_balance'))
		   AND random() < 0.35 THEN
			via := 'es_open_account';
		END IF;
		-- now and then an accepted command is rolled back (to a savepoint):
		-- it must leave no trace, its id is free again
		rb := random() < 0.03;
		rolled := false;
		BEGIN
			ret := CASE via
				WHEN 'es_apply' THEN es_apply(c)
				WHEN 'es_deposit' THEN es_deposit(c->>'account', (c->>'amount')::bigint, c->>'id')
				WHEN 'es_withdraw' THEN es_withdraw(c->>'account', (c->>'amount')::bigint, c->>'id')
				WHEN 'es_transfer' THEN es_transfer(c->>'from', c->>'to', (c->>'amount')::bigint, c->>'id')
				WHEN 'es_open_account' THEN es_open_account(c->>'account', c->>'currency',
					coalesce((c->>'overdraft_limit')::bigint, 0), (c->>'max_balance')::bigint)
			END;
			got := 'ok';
			IF rb THEN
				RAISE EXCEPTION USING ERRCODE = 'RB001', MESSAGE = 'rolled back on purpose';
			END IF;
		EXCEPTION
			WHEN SQLSTATE 'RB001' THEN
				rolled := true;
			WHEN OTHERS THEN
				got := SQLSTATE;
				msg := SQLERRM;
		END;
		SELECT count(*), max(seq) INTO ncnt, nmax FROM es_events WHERE seq > bmax;

		acc := NULL; nev := 0; rseq := NULL;
		BEGIN
			SELECT * INTO ev FROM es_t.m_eval(c);
			acc := ev.acceptable;
			nev := ev.nevents;
			rseq := ev.retry_seq;
			IF got <> 'ok' OR rolled THEN
				-- undo the model's update (rolled back, or the contract left the outcome open)
				RAISE EXCEPTION USING ERRCODE = 'MD002', MESSAGE = 'undo';
			END IF;
		EXCEPTION
			WHEN SQLSTATE 'MD001' THEN acc := string_to_array(SQLERRM, ','); nev := 0;
			WHEN SQLSTATE 'MD002' THEN nev := 0;
		END;

		resync := NOT (got = ANY (acc));
		IF resync THEN
			-- the extension disagreed with the model (reported below); follow
			-- the extension so that one disagreement does not cascade
			DELETE FROM es_t.m_acc;
			INSERT INTO es_t.m_acc (name, currency, status, balance, overdraft, maxbal, version, limits_changed)
			SELECT account, currency, status, balance, overdraft_limit, max_balance, version, true FROM es_accounts;
		END IF;

		IF jsonb_typeof(c) = 'object' AND c ? 'id' THEN
			IF got = 'ok' AND NOT rolled THEN
				INSERT INTO es_t.m_ids VALUES (c->>'id', c, ret) ON CONFLICT DO NOTHING;
				DELETE FROM es_t.m_failed_ids WHERE id = c->>'id';
			ELSIF NOT EXISTS (SELECT 1 FROM es_t.m_ids WHERE id = c->>'id') THEN
				INSERT INTO es_t.m_failed_ids VALUES (c->>'id') ON CONFLICT DO NOTHING;
			END IF;
		END IF;

		INSERT INTO es_t.runlog (n, cmd, acceptable, got, msg, ret, retry_seq, nev, before_max, new_cnt, new_max, via, rolled, resynced)
		VALUES (n, c, acc, got, msg, ret, rseq, nev, bmax, ncnt, nmax, via, rolled, resync);
		prev := c;
		prev_ok := (got = 'ok' AND NOT rolled);
	END LOOP;
	RETURN n;
END $$;

-- Events a command (single or batch) must write, as sorted
-- [account, type, amount, effective_at or 'default'] rows.
CREATE FUNCTION es_t.expected_events(c jsonb) RETURNS SETOF jsonb LANGUAGE plpgsql AS $$
DECLARE
	e jsonb;
	amt numeric;
	eff text;
BEGIN
	IF jsonb_typeof(c) = 'array' THEN
		FOR e IN SELECT value FROM jsonb_array_elements(c) LOOP
			RETURN QUERY SELECT * FROM es_t.expected_events(e);
		END LOOP;
		RETURN;
	END IF;
	amt := (c->>'amount')::numeric;
	eff := coalesce((c->>'effective_at')::timestamptz::text, 'default');
	CASE c->>'type'
	WHEN 'deposit' THEN RETURN NEXT jsonb_build_array(c->>'account', 'Deposited', amt, eff);
	WHEN 'withdraw' THEN RETURN NEXT jsonb_build_array(c->>'account', 'Withdrawn', -amt, eff);
	WHEN 'transfer' THEN
		RETURN NEXT jsonb_build_array(c->>'from', 'TransferSent', -amt, eff);
		RETURN NEXT jsonb_build_array(c->>'to', 'TransferReceived', amt, eff);
	WHEN 'open_account' THEN RETURN NEXT jsonb_build_array(c->>'account', 'AccountOpened', 0, eff);
	WHEN 'freeze_account' THEN RETURN NEXT jsonb_build_array(c->>'account', 'AccountFrozen', 0, eff);
	WHEN 'unfreeze_account' THEN RETURN NEXT jsonb_build_array(c->>'account', 'AccountUnfrozen', 0, eff);
	WHEN 'close_account' THEN RETURN NEXT jsonb_build_array(c->>'account', 'AccountClosed', 0, eff);
	WHEN 'set_limits' THEN RETURN NEXT jsonb_build_array(c->>'account', 'LimitsChanged', 0, eff);
	END CASE;
END $$;

-- NULL when the events in (lo, hi] are what command c must write, else why not.
CREATE FUNCTION es_t.check_events(c jsonb, lo bigint, hi bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	want jsonb;
	have jsonb;
	bad text;
BEGIN
	SELECT jsonb_agg(x ORDER BY x) INTO want FROM es_t.expected_events(c) x;
	SELECT jsonb_agg(x ORDER BY x) INTO have FROM (
		SELECT jsonb_build_array(a.account, e.type, e.amount,
		       CASE WHEN e.effective_at = e.recorded_at THEN 'default' ELSE e.effective_at::text END) x
		  FROM es_events e LEFT JOIN es_accounts a USING (account_id)
		 WHERE e.seq > lo AND e.seq <= hi) s;
	IF have IS DISTINCT FROM want THEN
		RETURN format('events written %s, expected %s', have, want);
	END IF;
	SELECT string_agg(DISTINCT coalesce(command_id, '<null>'), ',') INTO bad FROM es_events
	 WHERE seq > lo AND seq <= hi
	   AND command_id IS DISTINCT FROM (CASE WHEN jsonb_typeof(c) = 'object' THEN c->>'id' END);
	IF bad IS NOT NULL THEN RETURN format('command_id %s, expected %s', bad, c->>'id'); END IF;
	IF EXISTS (SELECT 1 FROM es_events WHERE seq > lo AND seq <= hi
	            AND NOT (recorded_at BETWEEN now() AND clock_timestamp())) THEN
		RETURN 'recorded_at is not the transaction time';
	END IF;
	IF jsonb_typeof(c) = 'object' AND c ? 'metadata' AND EXISTS (
		SELECT 1 FROM es_events WHERE seq > lo AND seq <= hi
		   AND NOT jsonb_path_exists(data, '$.** ? (@ == $v)', jsonb_build_object('v', c->'metadata'->'note'))) THEN
		RETURN 'metadata not kept in data of every event';
	END IF;
	RETURN NULL;
END $$;

-- Fold every account's events in version order, with the limits in force
-- from AccountOpened / LimitsChanged data: every debit must leave the
-- balance >= -overdraft_limit, every credit <= max_balance.
CREATE FUNCTION es_t.limit_violations() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	a record;
	e record;
	bal numeric;
	od numeric;
	mx numeric;
BEGIN
	FOR a IN SELECT account_id, account FROM es_accounts ORDER BY account_id LOOP
		bal := 0; od := 0; mx := NULL;
		FOR e IN SELECT * FROM es_events WHERE account_id = a.account_id ORDER BY version LOOP
			IF e.type = 'AccountOpened' THEN
				od := coalesce((e.data->>'overdraft_limit')::numeric, 0);
				mx := (e.data->>'max_balance')::numeric;
			ELSIF e.type = 'LimitsChanged' THEN
				IF e.data ? 'overdraft_limit' THEN od := (e.data->>'overdraft_limit')::numeric; END IF;
				IF e.data ? 'max_balance' THEN mx := (e.data->>'max_balance')::numeric; END IF;
			END IF;
			bal := bal + e.amount;
			IF e.amount < 0 AND bal < -od THEN
				RETURN NEXT format('%s seq %s: balance %s below -overdraft_limit %s', a.account, e.seq, bal, od);
			END IF;
			IF e.amount > 0 AND mx IS NOT NULL AND bal > mx THEN
				RETURN NEXT format('%s seq %s: balance %s above max_balance %s', a.account, e.seq, bal, mx);
			END IF;
		END LOOP;
	END LOOP;
END $$;

-- ================================================================ the run
SELECT is(es_t.run(4000), 4000, 'the workload ran 4000 commands');

SELECT diag('outcomes: ' || string_agg(got || '=' || cnt, ' ' ORDER BY got))
  FROM (SELECT got, count(*) cnt FROM es_t.runlog GROUP BY got) s;

SELECT is(
	(SELECT array_agg(x ORDER BY x) FROM unnest('{ok,ES001,ES002,ES003,ES004,ES005,ES006,ES007,ES008,ES009,ES014,22003}'::text[]) x
	  WHERE x NOT IN (SELECT got FROM es_t.runlog)),
	NULL,
	'the workload exercised every outcome (ok, ES001-ES009, ES014, 22003)');

SELECT cmp_ok((SELECT count(*) FROM es_t.runlog WHERE got = 'ok' AND NOT rolled AND retry_seq IS NULL), '>', 1000::bigint,
	'more than 1000 commands were accepted');
SELECT diag('calls: ' || string_agg(via || '=' || cnt, ' ' ORDER BY via))
  FROM (SELECT via, count(*) cnt FROM es_t.runlog GROUP BY via) s;
SELECT cmp_ok((SELECT count(*) FROM es_t.runlog WHERE via <> 'es_apply' AND got = 'ok' AND retry_seq IS NOT NULL), '>', 5::bigint,
	'some retries went through a shorthand');

-- 1. outcome of every command
SELECT diag(format('command %s %s: expected %s, got %s (%s)', n, cmd, acceptable, got, msg))
  FROM (SELECT * FROM es_t.runlog WHERE NOT (got = ANY (acceptable)) ORDER BY n LIMIT 25) s;
SELECT is((SELECT count(*) FROM es_t.runlog WHERE NOT (got = ANY (acceptable))), 0::bigint,
	'every command was accepted or rejected (with the SQLSTATE) as the rules say');

-- 2. what each command wrote
SELECT is((SELECT count(*) FROM es_t.runlog WHERE got <> 'ok' AND new_cnt <> 0), 0::bigint,
	'a rejected command writes nothing');
SELECT cmp_ok((SELECT count(*) FROM es_t.runlog WHERE rolled AND retry_seq IS NULL), '>', 20::bigint,
	'more than 20 accepted commands were rolled back to a savepoint');
SELECT is((SELECT count(*) FROM es_t.runlog WHERE rolled AND new_cnt <> 0), 0::bigint,
	'a command rolled back leaves no event');
SELECT diag(format('command %s %s: wrote %s events, expected %s', n, cmd, new_cnt, nev))
  FROM (SELECT * FROM es_t.runlog WHERE got = 'ok' AND NOT rolled AND retry_seq IS NULL AND NOT resynced AND new_cnt <> nev ORDER BY n LIMIT 10) s;
SELECT is((SELECT count(*) FROM es_t.runlog WHERE got = 'ok' AND NOT rolled AND retry_seq IS NULL AND NOT resynced AND new_cnt <> nev), 0::bigint,
	'an accepted command writes one event per account it touches');
SELECT is((SELECT count(*) FROM es_t.runlog WHERE got = 'ok' AND NOT rolled AND retry_seq IS NULL AND ret IS DISTINCT FROM new_max), 0::bigint,
	'es_apply returns the seq of the last event it wrote');
SELECT diag(format('command %s %s: %s', n, cmd, es_t.check_events(cmd, before_max, new_max)))
  FROM (SELECT * FROM es_t.runlog WHERE got = 'ok' AND NOT rolled AND retry_seq IS NULL AND NOT resynced
           AND es_t.check_events(cmd, before_max, new_max) IS NOT NULL ORDER BY n LIMIT 10) s;
SELECT is((SELECT count(*) FROM es_t.runlog WHERE got = 'ok' AND NOT rolled AND retry_seq IS NULL AND NOT resynced
            AND es_t.check_events(cmd, before_max, new_max) IS NOT NULL), 0::bigint,
	'events have the right accounts, types, signed amounts, command_id, effective_at, recorded_at, metadata');

-- 3. idempotency
SELECT cmp_ok((SELECT count(*) FROM es_t.runlog WHERE retry_seq IS NOT NULL), '>', 50::bigint,
	'the workload retried more than 50 commands');
SELECT diag(format('retry %s %s: got %s ret %s (expected %s), wrote %s', n, cmd, got, ret, retry_seq, new_cnt))
  FROM (SELECT * FROM es_t.runlog WHERE retry_seq IS NOT NULL AND (got <> 'ok' OR ret <> retry_seq OR new_cnt <> 0) ORDER BY n LIMIT 10) s;
SELECT is((SELECT count(*) FROM es_t.runlog WHERE retry_seq IS NOT NULL AND (ret IS DISTINCT FROM retry_seq OR new_cnt <> 0)), 0::bigint,
	'a retry with the same id returns the original seq and writes nothing');
SELECT cmp_ok((SELECT count(*) FROM es_t.runlog WHERE got = 'ES008'), '>', 20::bigint,
	'the workload reused ids for different commands (ES008) more than 20 times');

-- 4. the log
SELECT is((SELECT count(*) FROM es_events), (SELECT sum(new_cnt) FROM es_t.runlog)::bigint,
	'every event was written above the previous max(seq) (seq increases in insertion order)');
SELECT is((SELECT count(DISTINCT seq) FROM es_events), (SELECT count(*) FROM es_events),
	'seq is unique');
SELECT is((SELECT count(*) FROM (
		SELECT ret, lag(ret) OVER (ORDER BY n) AS p FROM es_t.runlog WHERE got = 'ok' AND NOT rolled AND retry_seq IS NULL) s
	 WHERE ret <= p), 0::bigint,
	'the seq returned by successive commands increases');
SELECT is((SELECT count(*) FROM (
		SELECT account_id FROM es_events GROUP BY account_id
		HAVING min(version) <> 1 OR max(version) <> count(*) OR count(DISTINCT version) <> count(*)) s), 0::bigint,
	'every account''s versions are 1..n without gaps');
SELECT is((SELECT count(*) FROM es_events WHERE
		(type = 'Deposited' AND amount <= 0) OR (type = 'Withdrawn' AND amount >= 0) OR
		(type = 'TransferSent' AND amount >= 0) OR (type = 'TransferReceived' AND amount <= 0) OR
		(type NOT IN ('Deposited', 'Withdrawn', 'TransferSent', 'TransferReceived') AND amount <> 0)), 0::bigint,
	'amounts are signed by type (credit +, debit -, 0 where none)');

-- 5. projection = log = replay = model
SELECT is((SELECT count(*) FROM es_accounts), (SELECT count(*) FROM es_t.m_acc),
	'es_accounts has a row per account the model opened');
SELECT diag(format('account %s: es_accounts %s, model %s', m.name,
		row(a.currency, a.status, a.balance, a.overdraft_limit, a.max_balance, a.version),
		row(m.currency, m.status, m.balance, m.overdraft, m.maxbal, m.version)))
  FROM es_t.m_acc m LEFT JOIN es_accounts a ON a.account = m.name
 WHERE row(a.currency, a.status, a.balance::numeric, a.overdraft_limit::numeric, a.max_balance::numeric, a.version)
       IS DISTINCT FROM row(m.currency, m.status, m.balance, m.overdraft, m.maxbal, m.version);
SELECT is((SELECT count(*) FROM es_t.m_acc m LEFT JOIN es_accounts a ON a.account = m.name
	 WHERE row(a.currency, a.status, a.balance::numeric, a.overdraft_limit::numeric, a.max_balance::numeric, a.version)
	       IS DISTINCT FROM row(m.currency, m.status, m.balance, m.overdraft, m.maxbal, m.version)), 0::bigint,
	'es_accounts (currency, status, balance, limits, version) equals the model');
SELECT is((SELECT count(*) FROM es_accounts WHERE pending_out <> 0 OR pending_in <> 0 OR available <> balance), 0::bigint,
	'no pending amounts; available = balance');
SELECT is((SELECT count(*) FROM es_accounts a LEFT JOIN (
		SELECT account_id, sum(amount) s, count(*) c, max(version) v, max(seq) m FROM es_events GROUP BY account_id) e
		USING (account_id)
	 WHERE a.balance IS DISTINCT FROM e.s::bigint OR a.version IS DISTINCT FROM e.c OR a.version IS DISTINCT FROM e.v
	    OR a.last_seq IS DISTINCT FROM e.m), 0::bigint,
	'es_accounts balance = sum(amount), version = count = max(version), last_seq = max(seq) of its events');
SELECT is((SELECT count(DISTINCT account_id) FROM es_events), (SELECT count(*) FROM es_accounts),
	'every stream in es_events has a row in es_accounts');
SELECT diag(format('account %s: es_accounts %s, es_replay %s', a.account, a, es_replay(a.account)))
  FROM es_accounts a WHERE row(a.*) IS DISTINCT FROM es_replay(a.account);
SELECT is((SELECT count(*) FROM es_accounts a WHERE row(a.*) IS DISTINCT FROM es_replay(a.account)), 0::bigint,
	'es_replay(account) equals the es_accounts row, every column');
SELECT is((SELECT count(*) FROM es_t.m_acc m
	 WHERE ((es_replay(m.name)).balance::numeric, (es_replay(m.name)).version) IS DISTINCT FROM (m.balance, m.version)), 0::bigint,
	'es_replay(account) balance and version equal the model');

SELECT is((SELECT count(*) FROM es_events WHERE hash IS NULL OR length(hash) <> 32), 0::bigint,
	'every event has a 32-byte (SHA-256) hash');
SELECT is((SELECT count(DISTINCT hash) FROM es_events), (SELECT count(*) FROM es_events),
	'hashes are all different (each links a different chain position)');
SELECT is((SELECT count(*) FROM es_accounts a JOIN es_events e ON e.seq = a.last_seq
	 WHERE e.account_id <> a.account_id OR e.version <> a.version OR e.hash <> a.last_hash), 0::bigint,
	'es_accounts.last_seq / last_hash point at the account''s last event');

-- 6. money
SELECT is((SELECT count(*) FROM es_t.m_flow f LEFT JOIN (
		SELECT currency, sum(balance::numeric) s FROM es_accounts GROUP BY currency) a USING (currency)
	 WHERE coalesce(a.s, 0) <> f.deposits - f.withdrawals), 0::bigint,
	'money is conserved per currency: sum of balances = deposits - withdrawals (model tallies)');
SELECT is((SELECT count(*) FROM (
		SELECT a.currency,
		       sum(e.amount::numeric) FILTER (WHERE e.type IN ('Deposited', 'Withdrawn')) dw,
		       coalesce(sum(e.amount::numeric) FILTER (WHERE e.type IN ('TransferSent', 'TransferReceived')), 0) tr,
		       sum(e.amount::numeric) total
		  FROM es_events e JOIN es_accounts a USING (account_id) GROUP BY a.currency) s
	 WHERE tr <> 0 OR total <> coalesce(dw, 0)
	    OR total <> (SELECT sum(balance::numeric) FROM es_accounts x WHERE x.currency = s.currency)), 0::bigint,
	'money is conserved per currency in the log: transfers sum to 0, balances = deposits - withdrawals');

SELECT is((SELECT count(*) FROM (
		SELECT type, amount, sum(CASE type WHEN 'AccountFrozen' THEN 1 WHEN 'AccountUnfrozen' THEN -1 ELSE 0 END)
		         OVER (PARTITION BY account_id ORDER BY version) frozen,
		       count(*) FILTER (WHERE type = 'AccountClosed')
		         OVER (PARTITION BY account_id ORDER BY version ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) closed_before
		  FROM es_events) s
	 WHERE frozen NOT IN (0, 1) OR (frozen = 1 AND amount <> 0) OR closed_before > 0), 0::bigint,
	'in the log: no money moves while frozen, freezes and unfreezes alternate, nothing follows AccountClosed');

-- 7. limits
SELECT diag(v) FROM (SELECT v FROM es_t.limit_violations() v LIMIT 10) s;
SELECT is((SELECT count(*) FROM es_t.limit_violations()), 0::bigint,
	'no debit took an account below -overdraft_limit, no credit above max_balance (limits in force at the time)');
SELECT is((SELECT count(*) FROM es_accounts a JOIN es_t.m_acc m ON m.name = a.account
	 WHERE NOT m.limits_changed
	   AND (a.available < -a.overdraft_limit OR a.balance > a.max_balance)), 0::bigint,
	'accounts whose limits never changed are within them');

SELECT * FROM finish();
ROLLBACK;
