-- idempotency: a command id is applied once; a retry returns the first seq.
SELECT es_open_account('i-a', 'USD', id => 'open-i-a') AS open_seq \gset
SELECT es_open_account('i-b', 'USD') > 0 AS ok;
SELECT es_apply('{"type": "deposit", "account": "i-a", "amount": 1000, "id": "dep-1"}') AS dep_seq \gset
CREATE TEMP TABLE before AS SELECT count(*) AS n FROM es_events;

-- same command again, keys reordered, white space changed, amount as text:
-- same seq, nothing written
SELECT es_apply('{"id":"dep-1","amount":1000,"account":"i-a","type":"deposit"}') = :dep_seq AS same_seq;
SELECT es_apply('{"type": "deposit", "account": "i-a", "amount": "1000", "id": "dep-1"}') = :dep_seq AS same_seq;
-- the shorthand is the same command
SELECT es_deposit('i-a', 1000, 'dep-1') = :dep_seq AS same_seq;
SELECT es_open_account('i-a', 'USD', id => 'open-i-a') = :open_seq AS same_seq;
SELECT count(*) - (SELECT n FROM before) AS written FROM es_events;
SELECT balance FROM es_accounts WHERE account = 'i-a';

-- a different command with a used id: ES008
SELECT try($$SELECT es_apply('{"type": "deposit", "account": "i-a", "amount": 999, "id": "dep-1"}')$$);
SELECT try($$SELECT es_withdraw('i-a', 1000, 'dep-1')$$);
SELECT try($$SELECT es_apply('{"type": "deposit", "account": "i-a", "amount": 1000, "id": "dep-1", "metadata": {"x": 1}}')$$);
-- ids are ledger-wide: another account, same id
SELECT try($$SELECT es_deposit('i-b', 1000, 'dep-1')$$);

-- a repeated command is answered even when it would now be refused
SELECT es_apply('{"type": "withdraw", "account": "i-a", "amount": 600, "id": "wd-1"}') AS wd_seq \gset
SELECT es_apply('{"type": "withdraw", "account": "i-a", "amount": 600, "id": "wd-1"}') = :wd_seq AS same_seq;
SELECT balance FROM es_accounts WHERE account = 'i-a';

-- a command that failed left no trace: its id can be used again
SELECT try($$SELECT es_withdraw('i-a', 5000, 'wd-2')$$);
SELECT es_withdraw('i-a', 100, 'wd-2') > 0 AS ok;

-- transfers carry the id as command_id on both events, and as transfer_id
SELECT es_transfer('i-a', 'i-b', 50, 'tr-1') AS tr_seq \gset
SELECT es_transfer('i-a', 'i-b', 50, 'tr-1') = :tr_seq AS same_seq;
SELECT type, amount, command_id, data ->> 'transfer_id' AS transfer_id
  FROM es_events WHERE command_id = 'tr-1' ORDER BY seq;

-- the id is checked: 1 to 200 characters
SELECT try($$SELECT es_deposit('i-a', 1, '')$$);
SELECT try(format($f$SELECT es_deposit('i-a', 1, %L)$f$, repeat('x', 201)));
SELECT es_deposit('i-a', 1, repeat('é', 200)) > 0 AS ok_200_chars;
SELECT balance FROM es_accounts WHERE account = 'i-a';
