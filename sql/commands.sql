-- commands: every command type through es_apply, and the events it writes.
SELECT es_apply('{"type": "open_account", "account": "c-alice", "currency": "USD"}') > 0 AS opened;
SELECT es_apply('{"type": "open_account", "account": "c-bob", "currency": "USD", "overdraft_limit": 500, "max_balance": 100000}') > 0 AS opened;
SELECT * FROM acct WHERE account LIKE 'c-%' ORDER BY account;

-- deposit, withdraw, transfer
SELECT es_apply('{"type": "deposit", "account": "c-alice", "amount": 10000}') > 0 AS ok;
SELECT es_apply('{"type": "withdraw", "account": "c-alice", "amount": "2500"}') > 0 AS ok;
SELECT es_apply('{"type": "transfer", "from": "c-alice", "to": "c-bob", "amount": 3000}') > 0 AS ok;
SELECT es_apply('{"type": "withdraw", "account": "c-bob", "amount": 3400}') > 0 AS ok;  -- uses the overdraft
SELECT * FROM acct WHERE account LIKE 'c-%' ORDER BY account;

-- the returned seq is the last event's, and equals last_seq
SELECT es_apply('{"type": "deposit", "account": "c-bob", "amount": 1}') AS s \gset
SELECT last_seq = :s AS returns_last_seq, (SELECT max(seq) FROM es_events) = :s AS is_max
  FROM es_accounts WHERE account = 'c-bob';

-- freeze, unfreeze, set_limits, close
SELECT es_apply('{"type": "freeze_account", "account": "c-bob"}') > 0 AS ok;
SELECT status FROM es_accounts WHERE account = 'c-bob';
SELECT es_apply('{"type": "unfreeze_account", "account": "c-bob"}') > 0 AS ok;
SELECT status FROM es_accounts WHERE account = 'c-bob';
SELECT es_apply('{"type": "set_limits", "account": "c-bob", "overdraft_limit": 0, "max_balance": null}') > 0 AS ok;
SELECT overdraft_limit, max_balance FROM es_accounts WHERE account = 'c-bob';
SELECT es_apply('{"type": "set_limits", "account": "c-bob", "max_balance": 7000}') > 0 AS ok;
SELECT overdraft_limit, max_balance FROM es_accounts WHERE account = 'c-bob';
SELECT es_apply('{"type": "open_account", "account": "c-carol", "currency": "EUR"}') > 0 AS ok;
SELECT es_apply('{"type": "close_account", "account": "c-carol"}') > 0 AS ok;
SELECT * FROM acct WHERE account LIKE 'c-%' ORDER BY account;

-- the log: versions 1..n per account, signed amounts, data
SELECT * FROM events('c-alice');
SELECT * FROM events('c-bob');
SELECT * FROM events('c-carol');

-- metadata is kept with the events; effective_at sets valid time
SELECT es_apply('{"type": "deposit", "account": "c-alice", "amount": 5, "metadata": {"channel": "atm", "tags": [1, 2]}, "effective_at": "2026-01-02 03:04:05+00"}') > 0 AS ok;
SELECT type, amount, data, effective_at AT TIME ZONE 'UTC' AS effective_utc, effective_at < recorded_at AS in_the_past
  FROM es_events WHERE seq = (SELECT last_seq FROM es_accounts WHERE account = 'c-alice');
-- without effective_at, valid time is the transaction time
SELECT bool_and(effective_at = recorded_at) FROM es_events WHERE data = '{}';

-- every event carries a checksum and a 32-byte hash link
SELECT count(*) AS events, count(DISTINCT hash) AS distinct_hashes,
       bool_and(length(hash) = 32) AS sha256, bool_and(checksum BETWEEN 0 AND 4294967295) AS crc32c
  FROM es_events;
-- last_hash in the projection is the hash of the account's last event
SELECT bool_and(a.last_hash = e.hash) FROM es_accounts a JOIN es_events e ON e.seq = a.last_seq;
-- seq increases with version in every account
SELECT bool_and(ok) FROM (
  SELECT seq > lag(seq) OVER w OR lag(seq) OVER w IS NULL AS ok
    FROM es_events WINDOW w AS (PARTITION BY account_id ORDER BY version)) s;

-- available = balance - pending_out; projection equals the fold of the log
SELECT bool_and(available = balance - pending_out) FROM es_accounts;
SELECT a.account, a.balance = r.balance AND a.version = r.version AND a.status = r.status
       AND a.last_hash = r.last_hash AND a.last_seq = r.last_seq AS replay_matches
  FROM es_accounts a, LATERAL es_replay(a.account) r
 WHERE a.account LIKE 'c-%' ORDER BY 1;
SELECT a.account, a.balance = s.total AS sum_matches
  FROM es_accounts a JOIN (SELECT account_id, sum(amount) AS total FROM es_events GROUP BY 1) s USING (account_id)
 WHERE a.account LIKE 'c-%' ORDER BY 1;
