-- malformed: bad input fails with ES009 (or 22003 when out of range), writes
-- nothing and never takes the backend down.
SELECT es_open_account('f-a', 'USD') > 0 AS ok;
CREATE TEMP TABLE before AS SELECT count(*) AS n FROM es_events;
CREATE TEMP TABLE cases (n serial, cmd text);
INSERT INTO cases (cmd) VALUES
  ('null'), ('42'), ('"deposit"'), ('true'), ('[]'), ('[[]]'), ('[1, 2]'), ('[null]'), ('{}'),
  ('{"type": null}'), ('{"type": 7}'), ('{"type": ["deposit"]}'), ('{"type": ""}'), ('{"type": "Deposit"}'),
  ('{"type": "explode", "account": "f-a"}'),
  ('{"type": "deposit"}'), ('{"type": "deposit", "account": "f-a"}'), ('{"type": "deposit", "amount": 1}'),
  ('{"type": "deposit", "account": 5, "amount": 1}'), ('{"type": "deposit", "account": null, "amount": 1}'),
  ('{"type": "deposit", "account": {"a": 1}, "amount": 1}'), ('{"type": "deposit", "account": "", "amount": 1}'),
  ('{"type": "deposit", "account": "f-a", "amount": 0}'), ('{"type": "deposit", "account": "f-a", "amount": -1}'),
  ('{"type": "deposit", "account": "f-a", "amount": 1.5}'), ('{"type": "deposit", "account": "f-a", "amount": 1.0}'),
  ('{"type": "deposit", "account": "f-a", "amount": "12.5"}'), ('{"type": "deposit", "account": "f-a", "amount": " 12"}'),
  ('{"type": "deposit", "account": "f-a", "amount": "-3"}'), ('{"type": "deposit", "account": "f-a", "amount": ""}'),
  ('{"type": "deposit", "account": "f-a", "amount": "1e3"}'), ('{"type": "deposit", "account": "f-a", "amount": true}'),
  ('{"type": "deposit", "account": "f-a", "amount": null}'), ('{"type": "deposit", "account": "f-a", "amount": [1]}'),
  ('{"type": "deposit", "account": "f-a", "amount": 1e30}'), ('{"type": "deposit", "account": "f-a", "amount": 9223372036854775808}'),
  ('{"type": "deposit", "account": "f-a", "amount": "99999999999999999999999999"}'),
  ('{"type": "deposit", "account": "f-a", "amount": 1, "amont": 1}'), ('{"type": "deposit", "account": "f-a", "amount": 1, "to": "x"}'),
  ('{"type": "deposit", "account": "f-a", "amount": 1, "id": ""}'), ('{"type": "deposit", "account": "f-a", "amount": 1, "id": 5}'),
  ('{"type": "deposit", "account": "f-a", "amount": 1, "metadata": [1]}'), ('{"type": "deposit", "account": "f-a", "amount": 1, "metadata": "x"}'),
  ('{"type": "deposit", "account": "f-a", "amount": 1, "effective_at": "yesterday-ish"}'),
  ('{"type": "deposit", "account": "f-a", "amount": 1, "effective_at": "infinity"}'),
  ('{"type": "deposit", "account": "f-a", "amount": 1, "effective_at": "2026-13-45"}'),
  ('{"type": "deposit", "account": "f-a", "amount": 1, "effective_at": "2026-01-01 Mars/Olympus"}'),
  ('{"type": "deposit", "account": "f-a", "amount": 1, "effective_at": 20260101}'),
  ('{"type": "deposit", "account": "f-a", "amount": 1, "effective_at": "294277-01-01"}'),
  ('{"type": "deposit", "account": "f-a", "amount": 1, "expected_version": -1}'),
  ('{"type": "deposit", "account": "f-a", "amount": 1, "expected_version": "one"}'),
  ('{"type": "transfer", "from": "f-a", "amount": 1}'), ('{"type": "transfer", "from": "f-a", "to": "f-a", "amount": 1}'),
  ('{"type": "transfer", "from": "f-a", "to": "f-b", "amount": 1, "pending": "yes"}'),
  ('{"type": "open_account", "account": "f-x"}'), ('{"type": "open_account", "currency": "USD"}'),
  ('{"type": "open_account", "account": "f-x", "currency": 840}'), ('{"type": "open_account", "account": "f-x", "currency": ""}'),
  ('{"type": "open_account", "account": "f-x", "currency": "USD", "overdraft_limit": -5}'),
  ('{"type": "open_account", "account": "f-x", "currency": "USD", "max_balance": 1.25}'),
  ('{"type": "open_account", "account": "f-x", "currency": "USD", "amount": 5}'),
  ('{"type": "set_limits", "account": "f-a"}'), ('{"type": "freeze_account"}'), ('{"type": "close_account", "account": ["f-a"]}'),
  ('[{"type": "deposit", "account": "f-a", "amount": 1}, {"type": "deposit", "account": "f-a", "amount": 0}]'),
  ('[{"type": "deposit", "account": "f-a", "amount": 1}, "x"]');
-- long strings
INSERT INTO cases (cmd) SELECT jsonb_build_object('type', 'deposit', 'account', repeat('a', 201), 'amount', 1)::text;
INSERT INTO cases (cmd) SELECT jsonb_build_object('type', 'deposit', 'account', repeat('a', 10000), 'amount', 1)::text;
INSERT INTO cases (cmd) SELECT jsonb_build_object('type', repeat('t', 10000))::text;
INSERT INTO cases (cmd) SELECT jsonb_build_object('type', 'deposit', 'account', 'f-a', 'amount', 1, 'id', repeat('i', 201))::text;
INSERT INTO cases (cmd) SELECT jsonb_build_object('type', 'deposit', 'account', 'f-a', 'amount', repeat('9', 100000))::text;
-- deep nesting, at the top and in an unknown field
INSERT INTO cases (cmd) SELECT repeat('[', 5000) || repeat(']', 5000);
INSERT INTO cases (cmd) SELECT '{"type": "deposit", "account": "f-a", "amount": 1, "x": ' || repeat('{"a":', 3000) || '1' || repeat('}', 3000) || '}';

SELECT n, left(cmd, 70) AS command, left(try(format('SELECT es_apply(%L)', cmd)), 110) AS result
  FROM cases ORDER BY n;
-- every case failed with ES009 or 22003
SELECT count(*) AS cases, count(*) FILTER (WHERE r ~ '^(ES009|22003): ') AS rejected_as_expected
  FROM (SELECT try(format('SELECT es_apply(%L)', cmd)) AS r FROM cases) s;
SELECT count(*) - (SELECT n FROM before) AS written FROM es_events;
-- metadata is data, kept whole, up to es_ledger.max_metadata_depth (8) levels
-- and max_metadata_bytes; deeper is refused (input_limits)
SELECT es_apply(('{"type": "deposit", "account": "f-a", "amount": 1, "metadata": ' || repeat('{"a":', 8) || '1' || repeat('}', 8) || '}')::jsonb) > 0 AS ok;
SELECT try(format('SELECT es_apply(%L)', '{"type": "deposit", "account": "f-a", "amount": 1, "metadata": ' || repeat('{"a":', 1000) || '1' || repeat('}', 1000) || '}'));
SELECT balance FROM es_accounts WHERE account = 'f-a';
