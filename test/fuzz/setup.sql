-- test/fuzz/setup.sql: the ledger and the mutators of the parser fuzzer
-- (test/fuzz.sh).  Run once in a fresh database; test/fuzz/run.sql then
-- sends a chunk of mutated inputs per call.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION es_ledger;
CREATE SCHEMA fz;

-- accounts the seeds name, so that mutated commands reach the decide step
SELECT es_open_account('fa', 'USD', 1000000), es_open_account('fb', 'USD', 0, 1000000000),
	   es_open_account('fe', 'EUR'), es_open_account('fz', 'USD'), es_open_account('fc', 'USD');
SELECT es_deposit('fa', 500000, 'seed-dep'), es_transfer('fa', 'fb', 10, 'seed-tr');
SELECT es_apply('{"type": "freeze_account", "account": "fz"}');
SELECT es_apply('{"type": "transfer", "from": "fa", "to": "fb", "amount": 5, "pending": true, "id": "seed-p1", "timeout": 100000}');

-- What a parser may answer: success or one of the documented SQLSTATEs
-- (README, Errors; doc/reference.md section 11), plus those of PostgreSQL's
-- own input functions that turn the mutated text into jsonb, bytea,
-- timestamptz or bigint before our code sees it.  Never XX000 (internal
-- error, an elog) nor a crash.
CREATE TABLE fz.allowed (sqlstate text PRIMARY KEY, why text NOT NULL);
INSERT INTO fz.allowed VALUES
	('ES001', 'insufficient funds'), ('ES002', 'balance limit'), ('ES003', 'account not found'),
	('ES004', 'account exists'), ('ES005', 'account not open'), ('ES006', 'currency mismatch'),
	('ES007', 'version conflict'), ('ES008', 'idempotency conflict'), ('ES009', 'invalid command'),
	('ES010', 'pending transfer not found'), ('ES013', 'pending expired'), ('ES014', 'account not empty'),
	('22003', 'number out of range'), ('22023', 'malformed cursor, max_count, projection name'),
	('55000', 'cursor of another ledger'), ('42704', 'unknown projection'), ('22004', 'NULL argument'),
	('22P02', 'PostgreSQL input syntax (jsonb, bytea, bigint casts)'),
	('22007', 'PostgreSQL datetime format'), ('22008', 'PostgreSQL datetime out of range'),
	('22P05', 'jsonb cannot hold \u0000'), ('22021', 'invalid byte sequence'),
	('54001', 'PostgreSQL json nesting past max_stack_depth'),
	('42501', 'command outside the role (superuser: none expected)');

-- Known findings: outcomes outside fz.allowed that are reported (test/fuzz.sh
-- prints them) but do not fail the run until they are fixed.  Remove a row
-- with its fix.
-- (None open.  Fixed: ES012 from es_replay(account, NULL, effective_until)
-- when a post or void was dated before its reservation: es_apply refuses
-- that since, ES009.)
CREATE TABLE fz.known (target text, sqlstate text, message_like text, why text);

CREATE TABLE fz.results (target text, sqlstate text, n bigint, PRIMARY KEY (target, sqlstate));
CREATE TABLE fz.bad (target text, sqlstate text, message text, input text);

CREATE FUNCTION fz.pick(a text[]) RETURNS text LANGUAGE sql VOLATILE AS
	'SELECT a[1 + floor(random() * cardinality(a))::int]';

-- an object nested d deep
CREATE FUNCTION fz.nest(d int) RETURNS jsonb LANGUAGE sql AS
	$$SELECT (repeat('{"a": ', d) || '1' || repeat('}', d))::jsonb$$;

-- interesting JSON values
CREATE FUNCTION fz.value() RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE r int := floor(random() * 40)::int;
BEGIN
	RETURN CASE r
		WHEN 0 THEN '0' WHEN 1 THEN '-1' WHEN 2 THEN '9223372036854775807'
		WHEN 3 THEN '9223372036854775808' WHEN 4 THEN '-9223372036854775808'
		WHEN 5 THEN '1e308' WHEN 6 THEN '1.5' WHEN 7 THEN '1e3' WHEN 8 THEN '"100"'
		WHEN 9 THEN '"007"' WHEN 10 THEN '"+1"' WHEN 11 THEN '" 1"' WHEN 12 THEN '"-3"'
		WHEN 13 THEN '""' WHEN 14 THEN '"99999999999999999999999999999"' WHEN 15 THEN '1e-5'
		WHEN 16 THEN 'null' WHEN 17 THEN 'true' WHEN 18 THEN '[]' WHEN 19 THEN '{}'
		WHEN 20 THEN '[1, "a", null]' WHEN 21 THEN to_jsonb(repeat('x', 200))
		WHEN 22 THEN to_jsonb(repeat('x', 201)) WHEN 23 THEN to_jsonb(repeat('é', 100000))
		WHEN 24 THEN to_jsonb(fz.name()) WHEN 25 THEN to_jsonb(fz.name())
		WHEN 26 THEN to_jsonb(fz.ts()) WHEN 27 THEN to_jsonb(fz.ts())
		WHEN 28 THEN fz.nest(1 + floor(random() * 20)::int)
		WHEN 29 THEN fz.nest(floor(random() * 3000)::int)
		WHEN 30 THEN to_jsonb(floor(random() * 2e18)::bigint) WHEN 31 THEN to_jsonb(-floor(random() * 1000)::int)
		WHEN 32 THEN to_jsonb(fz.pick(ARRAY['fa', 'fb', 'fe', 'fz', 'fc', 'nope', 'seed-p1', 'seed-tr', 'seed-dep']))
		WHEN 33 THEN to_jsonb(fz.pick(ARRAY['USD', 'EUR', 'usd', '', 'US D']))
		WHEN 34 THEN jsonb_build_object('reason', fz.name(), 'n', random())
		WHEN 35 THEN to_jsonb(fz.pick(ARRAY['deposit', 'withdraw', 'transfer', 'open_account', 'post_pending',
			'void_pending', 'freeze_account', 'unfreeze_account', 'close_account', 'set_limits', 'Deposit', '']))
		WHEN 36 THEN to_jsonb(floor(random() * 10)::int)
		WHEN 37 THEN to_jsonb(floor(random() * 1000000)::int)
		ELSE to_jsonb(random())
	END;
EXCEPTION WHEN OTHERS THEN
	RETURN 'null';		-- a value PostgreSQL refused to build (depth): use null
END $$;

-- names: valid ones, and strings of tricky characters
CREATE FUNCTION fz.name() RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	chars text[] := ARRAY['a', 'Z', '0', ' ', '-', '_', 'é', E'e\u0301', E'\u200b', E'\ufeff', E'\u00ad',
		E'\u2028', E'\t', E'\n', E'\u202e', E'\u034f', E'\ufe0f', E'\u3000', E'\u00a0', E'\u2800',
		E'\u3164', E'\U0001F600', E'\u0001', E'\u007f', E'\u0085', '"', '\', '''', '%', E'\U000E0001'];
	n int := floor(random() * 12)::int;
	s text := '';
BEGIN
	IF random() < 0.2 THEN
		RETURN fz.pick(ARRAY['fa', 'fb', 'fe', 'fz', 'fc', 'new-' || floor(random() * 1e6)::text, '', ' fa', 'fa ',
			repeat('n', 200), repeat('n', 201), repeat('é', 200)]);
	END IF;
	FOR i IN 1 .. n LOOP
		s := s || fz.pick(chars);
	END LOOP;
	RETURN s;
END $$;

-- timestamp texts
CREATE FUNCTION fz.ts() RETURNS text LANGUAGE sql VOLATILE AS $$
	SELECT fz.pick(ARRAY['2026-01-01', '2026-01-01 00:00:00+00', 'infinity', '-infinity', 'epoch', 'now',
		'today', 'allballs', '294276-12-31 23:59:59+00', '294277-01-01', '4713-01-01 BC', '4714-11-24 BC',
		'', 'garbage', '2026-13-45', '1e10', '2026-02-29', '2000-01-01T00:00:00.123456789Z', '12:00',
		'J2451187', '1999-01-08 04:05:06 -8:00', (now() + random() * interval '100 years')::text,
		(now() - random() * interval '100 years')::text])
$$;

-- a valid command of each type, as seeds
CREATE TABLE fz.seeds (cmd jsonb);
INSERT INTO fz.seeds VALUES
	('{"type": "deposit", "account": "fa", "amount": 1}'),
	('{"type": "withdraw", "account": "fa", "amount": 1, "metadata": {"r": "x"}}'),
	('{"type": "transfer", "from": "fa", "to": "fb", "amount": 1, "id": "t1"}'),
	('{"type": "transfer", "from": "fa", "to": "fb", "amount": 1, "pending": true, "id": "p1", "timeout": 60}'),
	('{"type": "post_pending", "pending_id": "seed-p1", "amount": 1, "id": "pp1"}'),
	('{"type": "void_pending", "pending_id": "seed-p1", "id": "vp1"}'),
	('{"type": "open_account", "account": "n1", "currency": "USD", "overdraft_limit": 5, "max_balance": 100}'),
	('{"type": "freeze_account", "account": "fc"}'),
	('{"type": "unfreeze_account", "account": "fz"}'),
	('{"type": "close_account", "account": "fe"}'),
	('{"type": "set_limits", "account": "fb", "overdraft_limit": 0, "max_balance": null}'),
	('{"type": "deposit", "account": "fb", "amount": "10", "effective_at": "2026-01-01", "expected_version": 3}');

-- one mutated command
CREATE FUNCTION fz.command() RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	c jsonb := (SELECT cmd FROM fz.seeds OFFSET floor(random() * 12)::int LIMIT 1);
	keys text[];
	k text;
	t text;
	pos int;
BEGIN
	FOR i IN 0 .. floor(random() * 3)::int LOOP
		IF jsonb_typeof(c) <> 'object' THEN
			EXIT;
		END IF;
		keys := ARRAY(SELECT jsonb_object_keys(c));
		IF cardinality(keys) = 0 THEN
			keys := ARRAY['type'];
		END IF;
		CASE floor(random() * 6)::int
			WHEN 0 THEN		-- replace a field's value
				c := jsonb_set(c, ARRAY[fz.pick(keys)], fz.value());
			WHEN 1 THEN		-- drop a field
				c := c - fz.pick(keys);
			WHEN 2 THEN		-- add a known or unknown field
				c := c || jsonb_build_object(fz.pick(ARRAY['id', 'amount', 'account', 'from', 'to', 'metadata',
					'effective_at', 'expected_version', 'pending', 'timeout', 'pending_id', 'currency',
					'overdraft_limit', 'max_balance', 'type', 'bogus', '']), fz.value());
			WHEN 3 THEN		-- effective_at
				c := c || jsonb_build_object('effective_at', fz.ts());
			WHEN 4 THEN		-- a text-level mutation, kept if it still parses
				t := c::text;
				pos := 1 + floor(random() * length(t))::int;
				t := overlay(t PLACING fz.pick(ARRAY['', '"', '1', '-', '0', '9', ',', '}', '{', ':', 'e', '.',
					'\u0000', '\ud800', 'é', ' ']) FROM pos FOR floor(random() * 3)::int);
				BEGIN
					c := t::jsonb;
				EXCEPTION WHEN OTHERS THEN
					NULL;
				END;
			ELSE			-- the whole command replaced by a value
				IF random() < 0.2 THEN c := fz.value(); END IF;
		END CASE;
	END LOOP;
	RETURN coalesce(c, 'null');
END $$;
