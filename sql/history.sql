-- history: es_history, es_balance_at and es_accounts_at read the log as of
-- a time (transaction time, recorded_at), from the log alone.  Each step is
-- a transaction of its own; now() inside it is the recorded_at of the
-- events it writes, kept in h_t.  Times and seqs vary from run to run, so
-- only comparisons are printed.
CREATE TEMP TABLE h_t (step text PRIMARY KEY, t timestamptz NOT NULL);

BEGIN;
SELECT es_open_account('h-a', 'USD') > 0 AS ok, es_open_account('h-b', 'USD') > 0 AS ok;
INSERT INTO h_t VALUES ('open', now());
COMMIT;
BEGIN;
SELECT es_deposit('h-a', 1000, 'h-dep1') > 0 AS ok;
INSERT INTO h_t VALUES ('dep1', now());
COMMIT;
BEGIN;
SELECT es_transfer('h-a', 'h-b', 300) > 0 AS ok;
INSERT INTO h_t VALUES ('xfer', now());
COMMIT;
-- a deposit backdated in valid time: effective_at long before the account
-- existed, recorded now
BEGIN;
SELECT es_apply('{"type": "deposit", "account": "h-a", "amount": 50, "id": "h-back",
                  "effective_at": "2000-01-01 00:00:00+00"}') > 0 AS ok;
INSERT INTO h_t VALUES ('back', now());
COMMIT;
-- the whole projection as it is at this moment
BEGIN;
CREATE TEMP TABLE h_mid AS SELECT * FROM es_accounts;
INSERT INTO h_t VALUES ('mid', now());
COMMIT;
BEGIN;
SELECT es_withdraw('h-b', 300) > 0 AS ok;
INSERT INTO h_t VALUES ('wd', now());
COMMIT;
BEGIN;
SELECT es_apply('{"type": "close_account", "account": "h-b"}') > 0 AS ok;
INSERT INTO h_t VALUES ('close', now());
COMMIT;
BEGIN;
SELECT es_open_account('h-c', 'EUR', 10) > 0 AS ok, es_withdraw('h-c', 4) > 0 AS ok;
SELECT es_apply('{"type": "freeze_account", "account": "h-a"}') > 0 AS ok;
INSERT INTO h_t VALUES ('late', now());
COMMIT;
SELECT max(t) FILTER (WHERE step = 'open') AS open, max(t) FILTER (WHERE step = 'dep1') AS dep1,
       max(t) FILTER (WHERE step = 'xfer') AS xfer, max(t) FILTER (WHERE step = 'back') AS back,
       max(t) FILTER (WHERE step = 'mid') AS mid, max(t) FILTER (WHERE step = 'wd') AS wd,
       max(t) FILTER (WHERE step = 'close') AS close, max(t) FILTER (WHERE step = 'late') AS late
  FROM h_t \gset t_
SELECT (SELECT bool_and(a.t < b.t) FROM h_t a, h_t b
         WHERE (a.step, b.step) IN (('open', 'dep1'), ('dep1', 'xfer'), ('xfer', 'back'), ('back', 'mid'),
                                    ('mid', 'wd'), ('wd', 'close'), ('close', 'late'))) AS steps_in_order;

-- es_balance_at: before the account existed, exactly at an event's
-- recorded_at (included), just before it, after a close, and now
SELECT es_balance_at('h-a', :'t_open'::timestamptz - interval '1 microsecond') IS NULL AS before_open_is_null,
       es_balance_at('h-a', :'t_open') AS at_open,
       es_balance_at('h-a', :'t_dep1'::timestamptz - interval '1 microsecond') AS before_dep1,
       es_balance_at('h-a', :'t_dep1') AS at_dep1,
       es_balance_at('h-a', :'t_xfer') AS a_at_xfer,
       es_balance_at('h-b', :'t_xfer') AS b_at_xfer;
-- the backdated deposit counts from when it was recorded, not from its
-- effective_at: before the account was opened it is nowhere
SELECT es_balance_at('h-a', :'t_back'::timestamptz - interval '1 microsecond') AS before_back,
       es_balance_at('h-a', :'t_back') AS at_back,
       es_balance_at('h-a', '2000-06-01 00:00:00+00') IS NULL AS at_its_effective_time;
SELECT es_balance_at('h-b', :'t_wd'::timestamptz - interval '1 microsecond') AS b_before_wd,
       es_balance_at('h-b', :'t_close') AS b_at_close,
       es_balance_at('h-b', NULL) AS b_now,
       es_balance_at('h-c', :'t_close') IS NULL AS c_not_yet,
       es_balance_at('h-c', :'t_late') AS c_at_late;
-- as_of NULL is now: the projection's balance, for every account
SELECT bool_and(es_balance_at(account, NULL) = balance) AS now_equals_projection,
       bool_and(es_balance_at(account, now()) = balance) AS now_equals_projection_too
  FROM es_accounts;

-- es_history: every event in version order with the balance after it;
-- effective_at shown as it was given (valid time), recorded_at per step
SELECT h.version, h.type, h.amount, h.balance_after, h.command_id,
       h.data - 'to_account_id' - 'from_account_id' AS data,
       s.step AS recorded_in_step,
       CASE WHEN h.effective_at = h.recorded_at THEN 'recorded_at'
            ELSE to_char(h.effective_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') END AS effective
  FROM es_history('h-a') h LEFT JOIN h_t s ON s.t = h.recorded_at
 ORDER BY h.version;
SELECT h.version, h.type, h.amount, h.balance_after, s.step AS recorded_in_step
  FROM es_history('h-b') h LEFT JOIN h_t s ON s.t = h.recorded_at
 ORDER BY h.version;
-- the rows are the log's, in version order, and balance_after is the fold:
-- the running sum of the amounts, the projection's balance at the end, and
-- es_replay's balance as of each transaction's last event (the events of
-- one transaction share their recorded_at)
SELECT bool_and(h.ordinality = h.version) AS in_version_order,
       bool_and(h.seq = e.seq AND h.type = e.type AND h.amount = e.amount AND h.data = e.data
                AND h.recorded_at = e.recorded_at AND h.effective_at = e.effective_at
                AND h.command_id IS NOT DISTINCT FROM e.command_id) AS same_as_log,
       count(*) = (SELECT count(*) FROM es_events) AS every_event
  FROM es_accounts a CROSS JOIN LATERAL es_history(a.account) WITH ORDINALITY h
  JOIN es_events e ON e.account_id = a.account_id AND e.version = h.version;
SELECT bool_and(balance_after = running) AS running_sum,
       bool_and(balance_after = (es_replay(account, recorded_at)).balance)
         FILTER (WHERE last_of_its_transaction) AS replay_as_of
  FROM (SELECT a.account, h.balance_after, h.recorded_at,
               sum(h.amount) OVER (PARTITION BY a.account ORDER BY h.version) AS running,
               h.version = max(h.version) OVER (PARTITION BY a.account, h.recorded_at) AS last_of_its_transaction
          FROM es_accounts a, LATERAL es_history(a.account) h) x;
SELECT bool_and(a.balance = (SELECT h.balance_after FROM es_history(a.account) h
                              ORDER BY h.version DESC LIMIT 1)) AS last_is_balance
  FROM es_accounts a;
-- windows on recorded_at, inclusive; balance_after is still the fold's
SELECT version, type, balance_after FROM es_history('h-a', :'t_dep1', :'t_xfer') ORDER BY version;
SELECT version, type, balance_after FROM es_history('h-a', since => :'t_back') ORDER BY version;
SELECT version, type, balance_after FROM es_history('h-a', until => :'t_open') ORDER BY version;
SELECT version, type, balance_after FROM es_history('h-a', :'t_dep1', :'t_dep1') ORDER BY version;
SELECT count(*) AS empty_window FROM es_history('h-a', :'t_dep1'::timestamptz + interval '1 microsecond',
                                                :'t_xfer'::timestamptz - interval '1 microsecond');
SELECT count(*) AS since_after_until FROM es_history('h-a', :'t_xfer', :'t_dep1');
SELECT count(*) AS before_open FROM es_history('h-a', NULL, :'t_open'::timestamptz - interval '1 microsecond');

-- es_accounts_at(NULL) is es_accounts, every column, in account_id order
SELECT count(*) AS only_at_null FROM (SELECT * FROM es_accounts_at(NULL) EXCEPT SELECT * FROM es_accounts) x;
SELECT count(*) AS only_projection FROM (SELECT * FROM es_accounts EXCEPT SELECT * FROM es_accounts_at(NULL)) x;
SELECT (SELECT count(*) FROM es_accounts_at(NULL)) = (SELECT count(*) FROM es_accounts) AS same_count;
SELECT bool_and(n = rn) AS by_account_id
  FROM (SELECT n, row_number() OVER (ORDER BY account_id) AS rn
          FROM es_accounts_at(NULL) WITH ORDINALITY AS x(account_id, account, currency, status, balance,
               pending_out, pending_in, available, overdraft_limit, max_balance, version, last_seq,
               opened_at, updated_at, last_hash, n)) y;
-- es_accounts_at(mid) is the projection as it was at mid, every column
SELECT count(*) AS only_at_mid FROM (SELECT * FROM es_accounts_at(:'t_mid') EXCEPT SELECT * FROM h_mid) x;
SELECT count(*) AS only_mid FROM (SELECT * FROM h_mid EXCEPT SELECT * FROM es_accounts_at(:'t_mid')) x;
SELECT (SELECT count(*) FROM es_accounts_at(:'t_mid')) = (SELECT count(*) FROM h_mid) AS same_count,
       (SELECT count(*) FROM h_mid) < (SELECT count(*) FROM es_accounts) AS fewer_than_now;
-- the ledger's h- accounts at each step: not there before they were
-- opened, closed after the close, frozen only at the end
SELECT s.step, x.account, x.status, x.balance, x.available, x.version
  FROM h_t s, LATERAL es_accounts_at(s.t) x
 WHERE x.account LIKE 'h-%'
 ORDER BY s.t, x.account;
SELECT count(*) AS h_before_open FROM es_accounts_at(:'t_open'::timestamptz - interval '1 microsecond')
 WHERE account LIKE 'h-%';
-- each row is es_replay of its account as of the same time
SELECT count(*) AS differs_from_replay
  FROM h_t s, LATERAL es_accounts_at(s.t) x
 WHERE row(x.*) IS DISTINCT FROM es_replay(x.account, s.t);

-- errors
SELECT try($$SELECT count(*)::text FROM es_history(NULL)$$);
SELECT try($$SELECT count(*)::text FROM es_history('h-nobody')$$);
SELECT try($$SELECT es_balance_at(NULL, now())::text$$);
SELECT try($$SELECT es_balance_at('h-nobody', NULL)::text$$);
SELECT try($$SELECT es_balance_at('h-nobody', '2000-01-01')::text$$);

-- a damaged row of the log is ES012 for all three
SELECT seq AS h_seq FROM es_history('h-a') WHERE version = 2 \gset
BEGIN;
UPDATE pg_class SET relam = (SELECT oid FROM pg_am WHERE amname = 'heap')
 WHERE oid = 'es_events'::regclass;
UPDATE es_events SET hash = '\x0102' WHERE seq = :h_seq;
SELECT regexp_replace(try($$SELECT count(*)::text FROM es_history('h-a')$$), 'seq [0-9]+', 'seq N') AS history;
SELECT regexp_replace(try($$SELECT es_balance_at('h-a', NULL)::text$$), 'seq [0-9]+', 'seq N') AS balance_at;
SELECT regexp_replace(try($$SELECT count(*)::text FROM es_accounts_at(NULL)$$), 'seq [0-9]+', 'seq N') AS accounts_at;
ROLLBACK;

-- as_of => 'infinity': the warning says the answer includes events yet to
-- come (0.3.0 said "a transaction that began at infinity is still open")
SELECT es_balance_at('h-a', 'infinity') = (SELECT balance FROM es_accounts WHERE account = 'h-a') AS now_balance;

-- readers may call them; a role without grants may not
CREATE ROLE h_reader IN ROLE es_ledger_reader;
CREATE ROLE h_nobody;
SET ROLE h_reader;
SELECT try($$SELECT count(*)::text FROM es_history('h-a')$$) AS history,
       try($$SELECT es_balance_at('h-a', now())::text$$) AS balance_at,
       try($$SELECT count(*)::text FROM es_accounts_at(NULL) WHERE account LIKE 'h-%'$$) AS accounts_at;
RESET ROLE;
SET ROLE h_nobody;
SELECT try($$SELECT count(*)::text FROM es_history('h-a')$$);
SELECT try($$SELECT es_balance_at('h-a', now())::text$$);
SELECT try($$SELECT count(*)::text FROM es_accounts_at(NULL)$$);
RESET ROLE;
DROP ROLE h_reader, h_nobody;
