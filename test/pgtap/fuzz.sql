-- test/pgtap/fuzz.sql
--
-- es_apply fed malformed commands: a fixed list of known-bad shapes and a
-- seeded random generator that breaks otherwise valid commands.  Every one
-- must fail with ES009 (invalid command) -- or 22003 where a number is out
-- of range -- never with another error, write nothing, and leave the
-- session working.
--
-- The valid part of every command refers to accounts that exist, are open
-- (or frozen for unfreeze_account) and have plenty of room, so that the
-- malformation is the only thing wrong with it.

BEGIN;
SET LOCAL client_min_messages = warning;
CREATE EXTENSION es_ledger;
SELECT plan(36);

CREATE SCHEMA fz;

-- The ledger the commands refer to.
DO $$
BEGIN
	PERFORM es_open_account('fa', 'USD', 1000000, NULL);
	PERFORM es_open_account('fb', 'USD', 0, 1000000000);
	PERFORM es_open_account('fe', 'EUR');
	PERFORM es_open_account('fz', 'USD');
	PERFORM es_open_account('fc', 'USD');
	PERFORM es_deposit('fa', 500000);
	PERFORM es_apply('{"type": "freeze_account", "account": "fz"}');
END $$;

CREATE FUNCTION fz.deep_object(depth int) RETURNS jsonb LANGUAGE sql AS $$
	SELECT (repeat('{"a": ', depth) || '1' || repeat('}', depth))::jsonb
$$;

CREATE TABLE fz.cases (
	n            serial PRIMARY KEY,
	label        text NOT NULL,
	input        jsonb,
	may_overflow boolean NOT NULL DEFAULT false,   -- 22003 acceptable as well as ES009
	random_case  boolean NOT NULL DEFAULT false,
	got          text,
	msg          text,
	wrote        bigint
);

-- ------------------------------------------------------------ fixed list
CREATE FUNCTION fz.add(label text, input text, may_overflow boolean DEFAULT false) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO fz.cases (label, input, may_overflow) VALUES (label, input::jsonb, may_overflow)
$$;

-- top level
SELECT fz.add('json null', 'null');
SELECT fz.add('true', 'true');
SELECT fz.add('false', 'false');
SELECT fz.add('number', '42');
SELECT fz.add('negative number', '-1');
SELECT fz.add('string', '"deposit"');
SELECT fz.add('empty string', '""');
SELECT fz.add('empty object', '{}');
SELECT fz.add('empty array', '[]');
SELECT fz.add('array of null', '[null]');
SELECT fz.add('array of scalars', '[1, "two", true, null]');
SELECT fz.add('array of empty objects', '[{}, {}]');
SELECT fz.add('nested arrays', '[[{"type": "deposit", "account": "fa", "amount": 1}]]');
SELECT fz.add('batch with one bad command (valid one first)',
	'[{"type": "deposit", "account": "fa", "amount": 1}, {"type": "deposit", "account": "fa", "amount": -1}]');
SELECT fz.add('batch with one bad command (valid one last)',
	'[{"type": "deposit", "account": "fa", "amount": "x"}, {"type": "deposit", "account": "fa", "amount": 1}]');
SELECT fz.add('batch with garbage', '[{"type": "deposit", "account": "fa", "amount": 1}, 7]');
SELECT fz.add('object of objects', '{"a": {"b": {"c": {}}}}');
SELECT fz.add('deep array at top level', repeat('[', 3000) || repeat(']', 3000));
SELECT fz.add('deep object at top level', repeat('{"type": ', 3000) || '"deposit"' || repeat('}', 3000));
SELECT fz.add('deep object as type', '{"type": ' || repeat('{"a": ', 2000) || '1' || repeat('}', 2000) || ', "account": "fa", "amount": 1}');
SELECT fz.add('deep array as metadata', '{"type": "deposit", "account": "fa", "amount": 1, "metadata": '
	|| repeat('[', 3000) || repeat(']', 3000) || '}');

-- type
SELECT fz.add('no type', '{"account": "fa", "amount": 1}');
SELECT fz.add('type null', '{"type": null, "account": "fa", "amount": 1}');
SELECT fz.add('type number', '{"type": 1, "account": "fa", "amount": 1}');
SELECT fz.add('type bool', '{"type": true, "account": "fa", "amount": 1}');
SELECT fz.add('type array', '{"type": ["deposit"], "account": "fa", "amount": 1}');
SELECT fz.add('type object', '{"type": {"deposit": 1}, "account": "fa", "amount": 1}');
SELECT fz.add('type empty', '{"type": "", "account": "fa", "amount": 1}');
SELECT fz.add('type unknown', '{"type": "steal", "account": "fa", "amount": 1}');
SELECT fz.add('type wrong case', '{"type": "Deposit", "account": "fa", "amount": 1}');
SELECT fz.add('type with blank', '{"type": "deposit ", "account": "fa", "amount": 1}');
SELECT fz.add('type is an event type', '{"type": "Deposited", "account": "fa", "amount": 1}');
SELECT fz.add('type 10000 chars', '{"type": "' || repeat('d', 10000) || '", "account": "fa", "amount": 1}');

-- amount
SELECT fz.add('amount missing', '{"type": "deposit", "account": "fa"}');
SELECT fz.add('amount null', '{"type": "deposit", "account": "fa", "amount": null}');
SELECT fz.add('amount zero', '{"type": "deposit", "account": "fa", "amount": 0}');
SELECT fz.add('amount "0"', '{"type": "deposit", "account": "fa", "amount": "0"}');
SELECT fz.add('amount negative', '{"type": "deposit", "account": "fa", "amount": -5}');
SELECT fz.add('amount "-5"', '{"type": "deposit", "account": "fa", "amount": "-5"}');
SELECT fz.add('withdraw negative', '{"type": "withdraw", "account": "fa", "amount": -5}');
SELECT fz.add('transfer negative', '{"type": "transfer", "from": "fa", "to": "fb", "amount": -5}');
SELECT fz.add('amount min bigint', '{"type": "deposit", "account": "fa", "amount": -9223372036854775808}');
SELECT fz.add('amount fraction', '{"type": "deposit", "account": "fa", "amount": 12.5}');
SELECT fz.add('amount tiny fraction', '{"type": "deposit", "account": "fa", "amount": 0.001}');
SELECT fz.add('amount "12.5"', '{"type": "deposit", "account": "fa", "amount": "12.5"}');
SELECT fz.add('amount 1e30', '{"type": "deposit", "account": "fa", "amount": 1e30}', true);
SELECT fz.add('amount 1e-5', '{"type": "deposit", "account": "fa", "amount": 1e-5}');
SELECT fz.add('amount 2^63', '{"type": "deposit", "account": "fa", "amount": 9223372036854775808}', true);
SELECT fz.add('amount "2^63"', '{"type": "deposit", "account": "fa", "amount": "9223372036854775808"}', true);
SELECT fz.add('amount 2^64', '{"type": "deposit", "account": "fa", "amount": 18446744073709551616}', true);
SELECT fz.add('withdraw 2^63', '{"type": "withdraw", "account": "fa", "amount": 9223372036854775808}', true);
SELECT fz.add('transfer 2^63', '{"type": "transfer", "from": "fa", "to": "fb", "amount": 9223372036854775808}', true);
SELECT fz.add('amount 10000 digits', '{"type": "deposit", "account": "fa", "amount": ' || repeat('9', 10000) || '}', true);
SELECT fz.add('amount "10000 digits"', '{"type": "deposit", "account": "fa", "amount": "' || repeat('9', 10000) || '"}', true);
SELECT fz.add('amount ""', '{"type": "deposit", "account": "fa", "amount": ""}');
SELECT fz.add('amount " 7"', '{"type": "deposit", "account": "fa", "amount": " 7"}');
SELECT fz.add('amount "7 "', '{"type": "deposit", "account": "fa", "amount": "7 "}');
SELECT fz.add('amount "+7"', '{"type": "deposit", "account": "fa", "amount": "+7"}');
SELECT fz.add('amount "1e3"', '{"type": "deposit", "account": "fa", "amount": "1e3"}');
SELECT fz.add('amount "0x1F"', '{"type": "deposit", "account": "fa", "amount": "0x1F"}');
SELECT fz.add('amount "seven"', '{"type": "deposit", "account": "fa", "amount": "seven"}');
SELECT fz.add('amount "NaN"', '{"type": "deposit", "account": "fa", "amount": "NaN"}');
SELECT fz.add('amount "Infinity"', '{"type": "deposit", "account": "fa", "amount": "Infinity"}');
SELECT fz.add('amount true', '{"type": "deposit", "account": "fa", "amount": true}');
SELECT fz.add('amount []', '{"type": "deposit", "account": "fa", "amount": []}');
SELECT fz.add('amount [5]', '{"type": "deposit", "account": "fa", "amount": [5]}');
SELECT fz.add('amount {}', '{"type": "deposit", "account": "fa", "amount": {}}');
SELECT fz.add('amount {"value":5}', '{"type": "deposit", "account": "fa", "amount": {"value": 5}}');

-- account names
SELECT fz.add('account missing', '{"type": "deposit", "amount": 1}');
SELECT fz.add('account null', '{"type": "deposit", "account": null, "amount": 1}');
SELECT fz.add('account number', '{"type": "deposit", "account": 5, "amount": 1}');
SELECT fz.add('account bool', '{"type": "deposit", "account": false, "amount": 1}');
SELECT fz.add('account array', '{"type": "deposit", "account": ["fa"], "amount": 1}');
SELECT fz.add('account object', '{"type": "deposit", "account": {"name": "fa"}, "amount": 1}');
SELECT fz.add('account empty', '{"type": "deposit", "account": "", "amount": 1}');
SELECT fz.add('account 201 chars', '{"type": "deposit", "account": "' || repeat('a', 201) || '", "amount": 1}');
SELECT fz.add('account 10000 chars', '{"type": "deposit", "account": "' || repeat('a', 10000) || '", "amount": 1}');
SELECT fz.add('open account empty name', '{"type": "open_account", "account": "", "currency": "USD"}');
SELECT fz.add('open account 201 chars', '{"type": "open_account", "account": "' || repeat('n', 201) || '", "currency": "USD"}');
SELECT fz.add('open account 10000 chars', '{"type": "open_account", "account": "' || repeat('n', 10000) || '", "currency": "USD"}');
SELECT fz.add('open account name number', '{"type": "open_account", "account": 12, "currency": "USD"}');
SELECT fz.add('open without currency', '{"type": "open_account", "account": "newacct"}');
SELECT fz.add('open currency null', '{"type": "open_account", "account": "newacct", "currency": null}');
SELECT fz.add('open currency number', '{"type": "open_account", "account": "newacct", "currency": 840}');
SELECT fz.add('open currency array', '{"type": "open_account", "account": "newacct", "currency": ["USD"]}');
SELECT fz.add('transfer to self', '{"type": "transfer", "from": "fa", "to": "fa", "amount": 1}');
SELECT fz.add('transfer without to', '{"type": "transfer", "from": "fa", "amount": 1}');
SELECT fz.add('transfer without from', '{"type": "transfer", "to": "fb", "amount": 1}');
SELECT fz.add('transfer with account', '{"type": "transfer", "account": "fa", "to": "fb", "amount": 1}');
SELECT fz.add('transfer from number', '{"type": "transfer", "from": 1, "to": "fb", "amount": 1}');
SELECT fz.add('transfer to object', '{"type": "transfer", "from": "fa", "to": {}, "amount": 1}');
SELECT fz.add('transfer to 201 chars', '{"type": "transfer", "from": "fa", "to": "' || repeat('t', 201) || '", "amount": 1}');
SELECT fz.add('transfer from ""', '{"type": "transfer", "from": "", "to": "fb", "amount": 1}');

-- limits
SELECT fz.add('open overdraft negative', '{"type": "open_account", "account": "newacct", "currency": "USD", "overdraft_limit": -1}');
SELECT fz.add('open overdraft fraction', '{"type": "open_account", "account": "newacct", "currency": "USD", "overdraft_limit": 1.5}');
SELECT fz.add('open overdraft string', '{"type": "open_account", "account": "newacct", "currency": "USD", "overdraft_limit": "lots"}');
SELECT fz.add('open overdraft bool', '{"type": "open_account", "account": "newacct", "currency": "USD", "overdraft_limit": true}');
SELECT fz.add('open overdraft object', '{"type": "open_account", "account": "newacct", "currency": "USD", "overdraft_limit": {}}');
SELECT fz.add('open overdraft 1e30', '{"type": "open_account", "account": "newacct", "currency": "USD", "overdraft_limit": 1e30}', true);
SELECT fz.add('open overdraft 2^63', '{"type": "open_account", "account": "newacct", "currency": "USD", "overdraft_limit": 9223372036854775808}', true);
SELECT fz.add('open max_balance negative', '{"type": "open_account", "account": "newacct", "currency": "USD", "max_balance": -1}');
SELECT fz.add('open max_balance fraction', '{"type": "open_account", "account": "newacct", "currency": "USD", "max_balance": 0.5}');
SELECT fz.add('open max_balance string', '{"type": "open_account", "account": "newacct", "currency": "USD", "max_balance": "none"}');
SELECT fz.add('open max_balance array', '{"type": "open_account", "account": "newacct", "currency": "USD", "max_balance": [1]}');
SELECT fz.add('open max_balance 2^63', '{"type": "open_account", "account": "newacct", "currency": "USD", "max_balance": 9223372036854775808}', true);
SELECT fz.add('set_limits nothing', '{"type": "set_limits", "account": "fa"}');
SELECT fz.add('set_limits overdraft negative', '{"type": "set_limits", "account": "fa", "overdraft_limit": -100}');
SELECT fz.add('set_limits overdraft string', '{"type": "set_limits", "account": "fa", "overdraft_limit": "100x"}');
SELECT fz.add('set_limits max_balance negative', '{"type": "set_limits", "account": "fa", "max_balance": -100}');
SELECT fz.add('set_limits max_balance bool', '{"type": "set_limits", "account": "fa", "max_balance": false}');
SELECT fz.add('set_limits max_balance 1e30', '{"type": "set_limits", "account": "fa", "max_balance": 1e30}', true);
SELECT fz.add('set_limits with amount', '{"type": "set_limits", "account": "fa", "overdraft_limit": 1, "amount": 5}');

-- common optional fields
SELECT fz.add('id empty', '{"type": "deposit", "account": "fa", "amount": 1, "id": ""}');
SELECT fz.add('id 201 chars', '{"type": "deposit", "account": "fa", "amount": 1, "id": "' || repeat('i', 201) || '"}');
SELECT fz.add('id 10000 chars', '{"type": "deposit", "account": "fa", "amount": 1, "id": "' || repeat('i', 10000) || '"}');
SELECT fz.add('id number', '{"type": "deposit", "account": "fa", "amount": 1, "id": 12345}');
SELECT fz.add('id bool', '{"type": "deposit", "account": "fa", "amount": 1, "id": true}');
SELECT fz.add('id array', '{"type": "deposit", "account": "fa", "amount": 1, "id": ["x"]}');
SELECT fz.add('id object', '{"type": "deposit", "account": "fa", "amount": 1, "id": {"x": 1}}');
SELECT fz.add('effective_at garbage', '{"type": "deposit", "account": "fa", "amount": 1, "effective_at": "not a date"}');
SELECT fz.add('effective_at bad month', '{"type": "deposit", "account": "fa", "amount": 1, "effective_at": "2020-13-45T00:00:00Z"}');
SELECT fz.add('effective_at bad hour', '{"type": "deposit", "account": "fa", "amount": 1, "effective_at": "2020-01-01T25:61:00Z"}');
SELECT fz.add('effective_at empty', '{"type": "deposit", "account": "fa", "amount": 1, "effective_at": ""}');
SELECT fz.add('effective_at number', '{"type": "deposit", "account": "fa", "amount": 1, "effective_at": 1700000000}');
SELECT fz.add('effective_at bool', '{"type": "deposit", "account": "fa", "amount": 1, "effective_at": true}');
SELECT fz.add('effective_at object', '{"type": "deposit", "account": "fa", "amount": 1, "effective_at": {"at": "2020-01-01"}}');
SELECT fz.add('effective_at 10000 chars', '{"type": "deposit", "account": "fa", "amount": 1, "effective_at": "' || repeat('2', 10000) || '"}');
SELECT fz.add('expected_version negative', '{"type": "deposit", "account": "fa", "amount": 1, "expected_version": -1}');
SELECT fz.add('expected_version fraction', '{"type": "deposit", "account": "fa", "amount": 1, "expected_version": 2.5}');
SELECT fz.add('expected_version string', '{"type": "deposit", "account": "fa", "amount": 1, "expected_version": "two"}');
SELECT fz.add('expected_version bool', '{"type": "deposit", "account": "fa", "amount": 1, "expected_version": true}');
SELECT fz.add('expected_version array', '{"type": "deposit", "account": "fa", "amount": 1, "expected_version": [2]}');
SELECT fz.add('expected_version 1e30', '{"type": "deposit", "account": "fa", "amount": 1, "expected_version": 1e30}', true);
SELECT fz.add('metadata array', '{"type": "deposit", "account": "fa", "amount": 1, "metadata": [1, 2]}');
SELECT fz.add('metadata string', '{"type": "deposit", "account": "fa", "amount": 1, "metadata": "note"}');
SELECT fz.add('metadata number', '{"type": "deposit", "account": "fa", "amount": 1, "metadata": 5}');
SELECT fz.add('metadata bool', '{"type": "deposit", "account": "fa", "amount": 1, "metadata": true}');

-- unknown fields
SELECT fz.add('unknown field', '{"type": "deposit", "account": "fa", "amount": 1, "color": "red"}');
SELECT fz.add('misspelt field', '{"type": "deposit", "account": "fa", "amonut": 1}');
SELECT fz.add('field wrong case', '{"type": "deposit", "Account": "fa", "amount": 1}');
SELECT fz.add('field of another command', '{"type": "deposit", "account": "fa", "amount": 1, "to": "fb"}');
SELECT fz.add('currency on deposit', '{"type": "deposit", "account": "fa", "amount": 1, "currency": "USD"}');
SELECT fz.add('amount on freeze', '{"type": "freeze_account", "account": "fa", "amount": 1}');
SELECT fz.add('amount on open', '{"type": "open_account", "account": "newacct", "currency": "USD", "amount": 1}');
SELECT fz.add('empty key', '{"type": "deposit", "account": "fa", "amount": 1, "": 1}');
SELECT fz.add('unknown field 10000 chars', '{"type": "deposit", "account": "fa", "amount": 1, "' || repeat('k', 10000) || '": 1}');
SELECT fz.add('freeze without account', '{"type": "freeze_account"}');
SELECT fz.add('unfreeze account null', '{"type": "unfreeze_account", "account": null}');
SELECT fz.add('close account number', '{"type": "close_account", "account": 3}');

-- ------------------------------------------------------- random generator
CREATE FUNCTION fz.rnd(lo bigint, hi bigint) RETURNS bigint LANGUAGE sql AS $$
	SELECT lo + floor(random() * (hi - lo + 1))::bigint
$$;

CREATE FUNCTION fz.pick(VARIADIC xs jsonb[]) RETURNS jsonb LANGUAGE sql AS $$
	SELECT xs[1 + floor(random() * cardinality(xs))::int]
$$;

-- Garbage of any JSON type (never an object that could pass for a command).
CREATE FUNCTION fz.garbage(depth int DEFAULT 0) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p float8 := random(); r jsonb;
BEGIN
	IF p < 0.12 THEN RETURN 'null'; END IF;
	IF p < 0.22 THEN RETURN to_jsonb(random() < 0.5); END IF;
	IF p < 0.35 THEN RETURN to_jsonb(fz.rnd(-1000000, 1000000)); END IF;
	IF p < 0.42 THEN RETURN to_jsonb(random() * 1000 - 500); END IF;
	IF p < 0.55 THEN RETURN to_jsonb(repeat(chr(fz.rnd(33, 126)::int), fz.rnd(0, 30)::int)); END IF;
	IF p < 0.62 THEN RETURN to_jsonb(repeat('x', fz.rnd(150, 10000)::int)); END IF;
	IF p < 0.80 OR depth > 3 THEN
		r := '[]';
		FOR i IN 1 .. fz.rnd(0, 4) LOOP
			r := r || jsonb_build_array(CASE WHEN depth > 3 THEN to_jsonb(i) ELSE fz.garbage(depth + 1) END);
		END LOOP;
		RETURN r;
	END IF;
	r := '{}';
	FOR i IN 1 .. fz.rnd(0, 3) LOOP
		r := r || jsonb_build_object('g' || fz.rnd(1, 99), fz.garbage(depth + 1));
	END LOOP;
	RETURN r;
END $$;

-- A bad value for a field: returns [value, may_overflow].
CREATE FUNCTION fz.bad_value(field text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	p float8 := random();
	-- of a JSON type no value of the field may have (numbers only for text fields)
	wrong_type jsonb := fz.pick('true', 'false', '{}', '[]', '[1]', '{"a": "b"}', '[["x"]]');
	wrong_text jsonb := fz.pick('true', 'false', '{}', '[]', '[1]', '{"a": "b"}', '[["x"]]',
	                            to_jsonb(fz.rnd(-99, 99)), to_jsonb(random()));
BEGIN
	CASE
	WHEN field IN ('account', 'from', 'to', 'id') THEN
		IF p < 0.5 THEN RETURN jsonb_build_array(wrong_text, false); END IF;
		IF p < 0.6 AND field <> 'id' THEN RETURN jsonb_build_array('null'::jsonb, false); END IF;
		RETURN jsonb_build_array(fz.pick('""', to_jsonb(repeat('z', 201)), to_jsonb(repeat('y', fz.rnd(202, 10000)::int))), false);
	WHEN field = 'currency' THEN
		IF p < 0.8 THEN RETURN jsonb_build_array(wrong_text, false); END IF;
		RETURN jsonb_build_array('null'::jsonb, false);
	WHEN field = 'type' THEN
		IF p < 0.4 THEN RETURN jsonb_build_array(wrong_text, false); END IF;
		IF p < 0.5 THEN RETURN jsonb_build_array('null'::jsonb, false); END IF;
		RETURN jsonb_build_array(fz.pick('""', '"Deposit"', '"WITHDRAW"', '"transfer "', '" deposit"', '"Transferred"',
		                                 '"open"', '"close"', '"freeze"', '"drop_table"', '"set-limits"',
		                                 to_jsonb('t' || fz.rnd(1, 1000000)), to_jsonb(repeat('q', 10000))), false);
	WHEN field = 'amount' THEN
		IF p < 0.15 THEN RETURN jsonb_build_array(wrong_type, false); END IF;
		IF p < 0.20 THEN RETURN jsonb_build_array('null'::jsonb, false); END IF;
		IF p < 0.30 THEN RETURN jsonb_build_array(to_jsonb(-fz.rnd(0, 1000000000000)), false); END IF;
		IF p < 0.40 THEN RETURN jsonb_build_array(to_jsonb((fz.rnd(0, 100000) + fz.rnd(1, 99) / 100.0)), false); END IF;
		IF p < 0.55 THEN RETURN jsonb_build_array(fz.pick('"12.5"', '"-5"', '""', '" 7"', '"7 "', '"+7"', '"1e3"', '"0x10"',
		                                                  '"seven"', '"0"', '"1,000"', '"7.0"', '"٣"', '"NaN"'), false); END IF;
		IF p < 0.65 THEN RETURN jsonb_build_array(to_jsonb((fz.rnd(0, 1000000)::numeric * 1e-3)::text || 'x'), false); END IF;
		IF p < 0.75 THEN RETURN jsonb_build_array(to_jsonb(9223372036854775808::numeric + fz.rnd(0, 1000000000000)), true); END IF;
		IF p < 0.85 THEN RETURN jsonb_build_array(to_jsonb((9223372036854775808::numeric + fz.rnd(0, 1000000))::text), true); END IF;
		IF p < 0.92 THEN RETURN jsonb_build_array(('1e' || fz.rnd(19, 300))::jsonb, true); END IF;
		RETURN jsonb_build_array(to_jsonb(0), false);
	WHEN field IN ('overdraft_limit', 'max_balance', 'expected_version') THEN
		IF p < 0.4 THEN RETURN jsonb_build_array(wrong_type, false); END IF;
		IF p < 0.55 THEN RETURN jsonb_build_array(to_jsonb(-fz.rnd(1, 1000000)), false); END IF;
		IF p < 0.7 THEN RETURN jsonb_build_array(to_jsonb(fz.rnd(0, 1000) + 0.5), false); END IF;
		IF p < 0.85 THEN RETURN jsonb_build_array(fz.pick('"lots"', '""', '"1.5"', '"-1"', '"none"'), false); END IF;
		RETURN jsonb_build_array(to_jsonb(9223372036854775808::numeric * fz.rnd(1, 1000)), true);
	WHEN field = 'effective_at' THEN
		IF p < 0.4 THEN RETURN jsonb_build_array(wrong_text, false); END IF;
		RETURN jsonb_build_array(fz.pick('"not a date"', '""', '"2020-13-45T00:00:00Z"', '"2020-01-01T25:61:00Z"',
		                                 '"2020-02-30"', '"yesterday-ish"', '"12:00"', to_jsonb(repeat('9', fz.rnd(30, 5000)::int))), false);
	WHEN field = 'metadata' THEN
		RETURN jsonb_build_array(fz.pick('[]', '[1, 2]', '"note"', '5', 'true', 'false', '[{"a": 1}]',
		                                 to_jsonb(repeat('m', fz.rnd(1, 10000)::int))), false);
	ELSE
		RAISE EXCEPTION 'bad_value: no rule for field %', field;
	END CASE;
END $$;

-- A valid command (if only it were not broken afterwards), with optional fields.
CREATE FUNCTION fz.base(n int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE p float8 := random(); c jsonb;
BEGIN
	c := CASE
		WHEN p < 0.12 THEN jsonb_build_object('type', 'open_account', 'account', 'new-' || n, 'currency', 'USD',
		                                      'overdraft_limit', fz.rnd(0, 100), 'max_balance', fz.rnd(1000, 100000))
		WHEN p < 0.35 THEN jsonb_build_object('type', 'deposit', 'account', 'fa', 'amount', fz.rnd(1, 1000))
		WHEN p < 0.55 THEN jsonb_build_object('type', 'withdraw', 'account', 'fa', 'amount', fz.rnd(1, 1000))
		WHEN p < 0.80 THEN jsonb_build_object('type', 'transfer', 'from', 'fa', 'to', 'fb', 'amount', fz.rnd(1, 1000))
		WHEN p < 0.85 THEN jsonb_build_object('type', 'freeze_account', 'account', 'fa')
		WHEN p < 0.90 THEN jsonb_build_object('type', 'unfreeze_account', 'account', 'fz')
		WHEN p < 0.93 THEN jsonb_build_object('type', 'close_account', 'account', 'fc')
		ELSE jsonb_build_object('type', 'set_limits', 'account', 'fa', 'overdraft_limit', fz.rnd(0, 100000))
	END;
	IF random() < 0.3 THEN c := c || jsonb_build_object('id', 'fuzz-' || n); END IF;
	IF random() < 0.2 THEN c := c || '{"effective_at": "2021-06-01T12:00:00Z"}'; END IF;
	IF random() < 0.2 THEN c := c || jsonb_build_object('metadata', jsonb_build_object('n', n, 'deep', fz.garbage())); END IF;
	RETURN c;
END $$;

-- One malformed command: returns [command, may_overflow].
CREATE FUNCTION fz.malformed(n int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	c jsonb := fz.base(n);
	ok_c jsonb := c;
	p float8;
	k text;
	keys text[];
	required text[];
	bv jsonb;
	d int;
	ovf boolean := false;
BEGIN
	required := CASE c->>'type'
		WHEN 'open_account' THEN '{type,account,currency}'
		WHEN 'transfer' THEN '{type,from,to,amount}'
		WHEN 'deposit' THEN '{type,account,amount}'
		WHEN 'withdraw' THEN '{type,account,amount}'
		ELSE '{type,account}' END;
	-- 1 to 3 breakages, each enough to make the command invalid
	FOR i IN 1 .. fz.rnd(1, 3) LOOP
		p := random();
		SELECT array_agg(x ORDER BY x) INTO keys FROM jsonb_object_keys(c) x
		 WHERE x IN ('type', 'account', 'from', 'to', 'currency', 'amount', 'overdraft_limit', 'max_balance',
		             'id', 'effective_at', 'metadata');
		IF keys IS NULL THEN                     -- nothing left to break: add an unknown field
			c := c || jsonb_build_object('x' || i, fz.garbage());
		ELSIF p < 0.60 THEN                      -- a bad value for a field it has
			k := keys[1 + floor(random() * cardinality(keys))::int];
			IF k = 'max_balance' AND random() < 0.5 THEN k := 'type'; END IF;
			bv := fz.bad_value(k);
			c := jsonb_set(c, ARRAY[k], bv->0);
			ovf := ovf OR (bv->>1)::boolean;
		ELSIF p < 0.72 THEN                      -- a required field missing
			c := c - required[1 + floor(random() * cardinality(required))::int];
		ELSIF p < 0.84 THEN                      -- an unknown field
			c := c || jsonb_build_object(fz.pick('"x"', '"colour"', '"amount_"', '"Type"', '"ACCOUNT"', '"from "',
			                                     '"_id"', '"memo"', to_jsonb('f' || fz.rnd(1, 100000))) #>> '{}', fz.garbage());
		ELSIF p < 0.90 THEN                      -- expected_version that is not a version
			bv := fz.bad_value('expected_version');
			c := c || jsonb_build_object('expected_version', bv->0);
			ovf := ovf OR (bv->>1)::boolean;
		ELSIF p < 0.95 THEN                      -- a deep object where no object belongs (metadata may be one)
			k := keys[1 + floor(random() * cardinality(keys))::int];
			IF k = 'metadata' THEN k := 'amount'; END IF;
			c := jsonb_set(c, ARRAY[k], fz.deep_object(fz.rnd(20, 1500)::int), true);
		ELSE                                     -- a transfer to itself
			c := jsonb_build_object('type', 'transfer', 'from', 'fb', 'to', 'fb', 'amount', fz.rnd(1, 100));
		END IF;
	END LOOP;

	p := random();
	IF p < 0.08 THEN                             -- inside a batch, next to a valid command
		RETURN jsonb_build_array(
			CASE WHEN random() < 0.5 THEN jsonb_build_array(ok_c - 'id', c) ELSE jsonb_build_array(c, ok_c - 'id') END,
			ovf);
	ELSIF p < 0.12 THEN                          -- deeply nested at top level
		d := fz.rnd(50, 2000)::int;
		RETURN jsonb_build_array((repeat('[', d) || c::text || repeat(']', d))::jsonb, ovf);
	ELSIF p < 0.18 THEN                          -- top-level garbage
		RETURN jsonb_build_array(fz.garbage(), false);
	END IF;
	RETURN jsonb_build_array(c, ovf);
END $$;

-- ------------------------------------------------------------- the driver
CREATE FUNCTION fz.run(nrandom int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	r record;
	m jsonb;
	bmax bigint;
	v_got text;
	v_msg text;
BEGIN
	PERFORM setseed(coalesce(nullif(current_setting('es_test.seed', true), '')::float8, 0.2718));
	FOR i IN 1 .. nrandom LOOP
		m := fz.malformed(i);
		INSERT INTO fz.cases (label, input, may_overflow, random_case)
		VALUES ('random ' || i, m->0, (m->>1)::boolean, true);
	END LOOP;
	FOR r IN SELECT n, input FROM fz.cases ORDER BY n LOOP
		SELECT coalesce(max(seq), 0) INTO bmax FROM es_events;
		BEGIN
			PERFORM es_apply(r.input);
			v_got := 'ok';
			v_msg := NULL;
		EXCEPTION WHEN OTHERS THEN
			v_got := SQLSTATE;
			v_msg := SQLERRM;
		END;
		UPDATE fz.cases c SET got = v_got, msg = v_msg,
		       wrote = (SELECT count(*) FROM es_events WHERE seq > bmax)
		 WHERE c.n = r.n;
	END LOOP;
	RETURN (SELECT count(*) FROM fz.cases);
END $$;

CREATE TABLE fz.before AS
	SELECT (SELECT count(*) FROM es_events) AS events,
	       (SELECT coalesce(max(seq), 0) FROM es_events) AS max_seq,
	       (SELECT md5(string_agg(a::text, ',' ORDER BY account_id)) FROM es_accounts a) AS accounts;

-- ================================================================ the run
SELECT cmp_ok(fz.run(3000), '>', 3100::bigint, 'fed es_apply the fixed list and 3000 random malformed commands');

SELECT diag('outcomes: ' || string_agg(coalesce(got, '?') || '=' || cnt, ' ' ORDER BY got))
  FROM (SELECT got, count(*) cnt FROM fz.cases GROUP BY got) s;

SELECT diag(format('%s: %s -> %s (%s)', label, left(input::text, 300), got, msg))
  FROM (SELECT * FROM fz.cases WHERE NOT random_case AND got IS DISTINCT FROM 'ES009'
          AND NOT (may_overflow AND got = '22003') ORDER BY n) s;
SELECT is((SELECT count(*) FROM fz.cases WHERE NOT random_case AND got NOT IN ('ES009', '22003')), 0::bigint,
	'every fixed malformed command fails with ES009 or 22003');
SELECT is((SELECT count(*) FROM fz.cases WHERE NOT random_case AND NOT may_overflow AND got IS DISTINCT FROM 'ES009'), 0::bigint,
	'fixed malformed commands without an out-of-range number fail with ES009 exactly');

SELECT diag(format('%s: %s -> %s (%s)', label, left(input::text, 300), got, msg))
  FROM (SELECT * FROM fz.cases WHERE random_case AND got IS DISTINCT FROM 'ES009'
          AND NOT (may_overflow AND got = '22003') ORDER BY n LIMIT 25) s;
SELECT is((SELECT count(*) FROM fz.cases WHERE random_case AND got NOT IN ('ES009', '22003')), 0::bigint,
	'every random malformed command fails with ES009 or 22003');
SELECT is((SELECT count(*) FROM fz.cases WHERE random_case AND NOT may_overflow AND got IS DISTINCT FROM 'ES009'), 0::bigint,
	'random malformed commands without an out-of-range number fail with ES009 exactly');

SELECT is((SELECT count(*) FROM fz.cases WHERE wrote <> 0), 0::bigint, 'no malformed command wrote an event');
SELECT is((SELECT count(*) FROM es_events), (SELECT events FROM fz.before), 'es_events count unchanged');
SELECT is((SELECT md5(string_agg(a::text, ',' ORDER BY account_id)) FROM es_accounts a), (SELECT accounts FROM fz.before),
	'es_accounts unchanged');
SELECT is((SELECT count(*) FROM fz.cases WHERE got <> 'ok' AND (msg IS NULL OR msg ~ '^[A-Z]')), 0::bigint,
	'every rejection has a message that starts in lower case');

-- single cases, spelled out
SELECT throws_ok($$SELECT es_apply('{"type": "transfer", "from": "fa", "to": "fa", "amount": 1}')$$, 'ES009', NULL,
	'transfer to the same account: ES009');
SELECT throws_ok($$SELECT es_apply('[]')$$, 'ES009', NULL, 'empty batch: ES009');
SELECT throws_ok($$SELECT es_apply('null')$$, 'ES009', NULL, 'JSON null: ES009');
SELECT throws_ok($$SELECT es_apply('"deposit"')$$, 'ES009', NULL, 'JSON string: ES009');
SELECT throws_ok($$SELECT es_apply('{"type": "embezzle", "account": "fa", "amount": 1}')$$, 'ES009', NULL, 'unknown type: ES009');
SELECT throws_ok($$SELECT es_apply('{"type": "deposit", "account": "fa", "amount": 1, "colour": "red"}')$$, 'ES009', NULL, 'unknown field: ES009');
SELECT throws_ok($$SELECT es_apply('{"type": "deposit", "account": "fa", "amount": "12.5"}')$$, 'ES009', NULL, 'amount "12.5": ES009');
SELECT throws_ok($$SELECT es_apply('{"type": "deposit", "account": "fa", "amount": 0}')$$, 'ES009', NULL, 'amount 0: ES009');
SELECT throws_ok($$SELECT es_apply('{"type": "withdraw", "account": "fa", "amount": -1}')$$, 'ES009', NULL, 'amount -1: ES009');
SELECT throws_ok($$SELECT es_apply(jsonb_build_object('type', 'open_account', 'account', repeat('a', 201), 'currency', 'USD'))$$,
	'ES009', NULL, 'account name of 201 characters: ES009');
SELECT throws_ok($$SELECT es_apply(jsonb_build_object('type', 'deposit', 'account', 'fa', 'amount', 1, 'id', repeat('i', 201)))$$,
	'ES009', NULL, 'id of 201 characters: ES009');
SELECT throws_ok($$SELECT es_deposit('fa', 0)$$, 'ES009', NULL, 'es_deposit(account, 0): ES009');
SELECT throws_ok($$SELECT es_withdraw('fa', -7)$$, 'ES009', NULL, 'es_withdraw(account, -7): ES009');
SELECT throws_ok($$SELECT es_transfer('fa', 'fa', 7)$$, 'ES009', NULL, 'es_transfer(a, a, 7): ES009');

-- SQL NULL: no error other than ES009, nothing written
CREATE FUNCTION fz.try(c jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r bigint;
BEGIN
	r := es_apply(c);
	RETURN coalesce(r::text, 'null');
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
SELECT ok(fz.try(NULL) IN ('null', 'ES009'), 'es_apply(NULL) returns NULL or fails with ES009');
SELECT is((SELECT count(*) FROM es_events), (SELECT events FROM fz.before), 'es_apply(NULL) wrote nothing');

-- a deeply nested but well-formed metadata object is kept or refused as
-- ES009, nothing else (no crash, no stack overflow error)
SELECT ok(fz.try(jsonb_build_object('type', 'deposit', 'account', 'fe', 'amount', 3, 'metadata', fz.deep_object(2000)))
          ~ '^([0-9]+|ES009)$',
	'a deposit with metadata nested 2000 deep is applied or refused with ES009');

-- the session still works
SELECT is((SELECT balance FROM es_accounts WHERE account = 'fa'), 500000::bigint, 'balance of fa unchanged by the fuzzing');
SELECT lives_ok($$SELECT es_deposit('fa', 25, 'after-fuzz')$$, 'a valid deposit works after the fuzzing');
SELECT is((SELECT balance FROM es_accounts WHERE account = 'fa'), 500025::bigint, 'and is applied');
SELECT lives_ok($$SELECT es_transfer('fa', 'fb', 5)$$, 'a valid transfer works after the fuzzing');
SELECT is((SELECT array_agg(balance ORDER BY account) FROM es_accounts WHERE account IN ('fa', 'fb')),
	'{500020,5}'::bigint[], 'and is applied');

-- the limits on names and ids count characters, not bytes; amounts may be
-- strings of digits
SELECT lives_ok($$SELECT es_open_account(repeat('é', 200), 'USD')$$,
	'an account name of 200 two-byte characters is accepted');
SELECT lives_ok($$SELECT es_apply(jsonb_build_object('type', 'deposit', 'account', repeat('é', 200), 'amount', '007',
                                                     'id', repeat('€', 200)))$$,
	'an id of 200 three-byte characters and the amount "007" are accepted');
SELECT is((SELECT balance FROM es_accounts WHERE account = repeat('é', 200)), 7::bigint, 'and the amount is 7');
SELECT throws_ok($$SELECT es_open_account(repeat('é', 201), 'USD')$$, 'ES009', NULL,
	'an account name of 201 two-byte characters: ES009');
SELECT throws_ok($$SELECT es_deposit(repeat('é', 200), 1, repeat('€', 201))$$, 'ES009', NULL,
	'an id of 201 three-byte characters: ES009');

SELECT * FROM finish();
ROLLBACK;
