-- batches: a JSON array is applied in order, atomically; the result is the last seq.
SELECT es_apply('[
  {"type": "open_account", "account": "b-a", "currency": "USD"},
  {"type": "open_account", "account": "b-b", "currency": "USD"},
  {"type": "deposit", "account": "b-a", "amount": 100},
  {"type": "transfer", "from": "b-a", "to": "b-b", "amount": 40}
]') AS s \gset
SELECT (SELECT max(seq) FROM es_events) = :s AS returns_last_seq;
SELECT account, balance, version FROM es_accounts WHERE account LIKE 'b-%' ORDER BY 1;

-- one failing command undoes the whole batch
CREATE TEMP TABLE before AS SELECT count(*) AS n FROM es_events;
SELECT try($$SELECT es_apply('[
  {"type": "deposit", "account": "b-a", "amount": 1000},
  {"type": "open_account", "account": "b-c", "currency": "USD"},
  {"type": "withdraw", "account": "b-b", "amount": 41}
]')$$);
SELECT try($$SELECT es_apply('[
  {"type": "deposit", "account": "b-a", "amount": 1000},
  {"type": "deposit", "account": "b-a", "amount": 0}
]')$$);
SELECT try($$SELECT es_apply('[{"type": "deposit", "account": "b-a", "amount": 1}, 42]')$$);
SELECT count(*) - (SELECT n FROM before) AS written FROM es_events;
SELECT count(*) AS b_c_exists FROM es_accounts WHERE account = 'b-c';
SELECT account, balance, version FROM es_accounts WHERE account LIKE 'b-%' ORDER BY 1;

-- an account touched many times in one batch: versions stay gap-free
SELECT es_apply(jsonb_agg(jsonb_build_object('type', 'deposit', 'account', 'b-b', 'amount', i)))
       > 0 AS ok FROM generate_series(1, 50) i;
SELECT balance, version FROM es_accounts WHERE account = 'b-b';
SELECT count(*) = max(e.version) AND min(e.version) = 1 AS gap_free
  FROM es_events e JOIN es_accounts a USING (account_id) WHERE a.account = 'b-b';

-- ids inside a batch are idempotent one by one
SELECT es_apply('[{"type": "deposit", "account": "b-a", "amount": 5, "id": "b-1"},
                  {"type": "deposit", "account": "b-a", "amount": 6, "id": "b-2"}]') AS s \gset
SELECT es_apply('[{"type": "deposit", "account": "b-a", "amount": 5, "id": "b-1"},
                  {"type": "deposit", "account": "b-a", "amount": 6, "id": "b-2"}]') = :s AS same_seq;
SELECT try($$SELECT es_apply('[{"type": "deposit", "account": "b-a", "amount": 5, "id": "b-1"},
                  {"type": "deposit", "account": "b-a", "amount": 7, "id": "b-2"}]')$$);
SELECT balance FROM es_accounts WHERE account = 'b-a';

-- the empty batch is not a command
SELECT try($$SELECT es_apply('[]')$$);

-- a batch inside the caller's transaction rolls back with it
BEGIN;
SELECT es_apply('[{"type": "deposit", "account": "b-a", "amount": 1000}]') > 0 AS ok;
SELECT balance FROM es_accounts WHERE account = 'b-a';
ROLLBACK;
SELECT balance FROM es_accounts WHERE account = 'b-a';
-- and a savepoint undoes a failed command only
BEGIN;
SELECT es_deposit('b-a', 1) > 0 AS ok;
SAVEPOINT s;
SELECT es_withdraw('b-a', 1000000);
ROLLBACK TO SAVEPOINT s;
SELECT es_deposit('b-a', 1) > 0 AS ok;
COMMIT;
SELECT balance, version FROM es_accounts WHERE account = 'b-a';
SELECT a.balance = r.balance AND a.version = r.version AS replay_matches
  FROM es_accounts a, es_replay('b-a') r WHERE a.account = 'b-a';

-- a read-only transaction cannot apply commands
BEGIN TRANSACTION READ ONLY;
SELECT es_deposit('b-a', 1);
ROLLBACK;
SELECT balance, version FROM es_accounts WHERE account = 'b-a';

-- a transaction that touches an account again and again: savepoints rolled
-- back, errors caught in plpgsql, many calls in one statement
BEGIN;
SELECT es_deposit('b-a', 10) > 0 AS ok;
SAVEPOINT s1;
SELECT es_deposit('b-a', 100) > 0 AS ok;
SELECT es_transfer('b-a', 'b-b', 5) > 0 AS ok;
ROLLBACK TO SAVEPOINT s1;
SELECT es_deposit('b-a', 1) > 0 AS ok;
SAVEPOINT s2;
SELECT es_deposit('b-a', 1000) > 0 AS ok;
RELEASE SAVEPOINT s2;
DO $$
BEGIN
	PERFORM es_deposit('b-a', 7);
	PERFORM es_withdraw('b-a', 100000000);
EXCEPTION WHEN SQLSTATE 'ES001' THEN
	RAISE NOTICE 'caught %', SQLSTATE;
END $$;
SELECT count(es_deposit('b-a', 1)) FROM generate_series(1, 500);
SELECT count(es_transfer('b-a', 'b-b', 1)) FROM generate_series(1, 200);
COMMIT;
SELECT account, balance, version FROM es_accounts WHERE account IN ('b-a', 'b-b') ORDER BY 1;
SELECT a.account, (a.balance, a.version, a.last_hash, a.last_seq)
       = (r.balance, r.version, r.last_hash, r.last_seq) AS replay_matches
  FROM es_accounts a, LATERAL es_replay(a.account) r WHERE a.account IN ('b-a', 'b-b') ORDER BY 1;
SELECT a.account, a.balance = sum(e.amount) AND a.version = count(*) AND a.version = max(e.version) AS log_matches
  FROM es_accounts a JOIN es_events e USING (account_id)
 WHERE a.account IN ('b-a', 'b-b') GROUP BY a.account, a.balance, a.version ORDER BY 1;
-- the same, under REPEATABLE READ
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT es_deposit('b-a', 3) > 0 AS ok;
SAVEPOINT s;
SELECT es_deposit('b-a', 30) > 0 AS ok;
ROLLBACK TO SAVEPOINT s;
SELECT es_transfer('b-b', 'b-a', 2) > 0 AS ok;
COMMIT;
SELECT a.account, (a.balance, a.version) = (r.balance, r.version) AS replay_matches
  FROM es_accounts a, LATERAL es_replay(a.account) r WHERE a.account IN ('b-a', 'b-b') ORDER BY 1;
-- A batch writes each account's row once, at its end (deferred updates):
-- many commands on one account in one call, a batch that fails after
-- changing accounts inside a savepoint, then more commands on the same
-- accounts in the same transaction: the rows equal the log's fold.
BEGIN;
SELECT es_apply(jsonb_agg(jsonb_build_object('type', 'deposit', 'account', 'b-a', 'amount', 1)))
	   > 0 AS ok FROM generate_series(1, 300);
SAVEPOINT d;
SELECT es_apply('[{"type":"deposit","account":"b-a","amount":5},
                  {"type":"transfer","from":"b-a","to":"b-b","amount":7},
                  {"type":"withdraw","account":"b-b","amount":100000000}]');
ROLLBACK TO SAVEPOINT d;
SELECT es_apply('[{"type":"transfer","from":"b-a","to":"b-b","amount":11},
                  {"type":"transfer","from":"b-b","to":"b-a","amount":4},
                  {"type":"deposit","account":"b-b","amount":1}]') > 0 AS ok;
SELECT es_deposit('b-a', 2) > 0 AS ok;
-- read inside the transaction, after the batches: the rows are written
SELECT a.account, (a.balance, a.version, a.last_hash, a.last_seq)
       = (r.balance, r.version, r.last_hash, r.last_seq) AS replay_matches
  FROM es_accounts a, LATERAL es_replay(a.account) r WHERE a.account IN ('b-a', 'b-b') ORDER BY 1;
COMMIT;
SELECT a.account, a.balance = sum(e.amount) AND a.version = count(*) AS log_matches
  FROM es_accounts a JOIN es_events e USING (account_id)
 WHERE a.account IN ('b-a', 'b-b') GROUP BY a.account, a.balance, a.version ORDER BY 1;
SELECT check_name, ok FROM es_verify() WHERE check_name IN ('projection', 'versions') ORDER BY 1;
-- es_accounts' index entries of updated rows are written without the
-- unique check (the keys never change, the row is locked): after an account
-- updated many times in one transaction, one call per command, the indexes
-- hold every heap tuple (amcheck, heapallindexed) and still refuse a
-- duplicate key
BEGIN;
SELECT count(es_deposit('b-a', 1)) FROM generate_series(1, 400);
SELECT count(es_transfer('b-a', 'b-b', 1)) FROM generate_series(1, 200);
COMMIT;
CREATE EXTENSION IF NOT EXISTS amcheck;
-- (bt_index_check raises an error on a heap tuple missing from the index)
SELECT count(*) AS indexes_checked
  FROM (SELECT bt_index_check(i, true) FROM (VALUES ('es_accounts_pkey'::regclass),
			   ('es_accounts_account_key'::regclass)) v(i)) c;
SELECT count(*) FILTER (WHERE account = 'b-a') AS one_row_b_a FROM es_accounts;
SELECT try($$SELECT es_open_account('b-a', 'USD')$$);
SELECT a.account, (a.balance, a.version) = (r.balance, r.version) AS replay_matches
  FROM es_accounts a, LATERAL es_replay(a.account) r WHERE a.account IN ('b-a', 'b-b') ORDER BY 1;
DROP EXTENSION amcheck;
