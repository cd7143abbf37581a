-- dba: es_rebuild_projections rebuilds es_accounts and es_transfers from the
-- log in place; es_restore_to writes the projections as of a time into a
-- new schema.
-- Times and seqs vary from run to run, so only comparisons are printed;
-- the progress NOTICEs depend on the log's length and the clock, so
-- NOTICEs are not shown.
SET client_min_messages = warning;
CREATE TEMP TABLE d_t (step text PRIMARY KEY, t timestamptz NOT NULL);
BEGIN;
SELECT es_open_account('d-a', 'USD') > 0 AS ok, es_open_account('d-b', 'USD') > 0 AS ok,
       es_open_account('d-c', 'EUR') > 0 AS ok;
SELECT es_deposit('d-a', 1000) > 0 AS ok, es_transfer('d-a', 'd-b', 300) > 0 AS ok;
COMMIT;
-- the instant restored later, and the projection as it is then
BEGIN;
CREATE TEMP TABLE d_then AS SELECT * FROM es_accounts;
CREATE TEMP TABLE d_then_tr AS SELECT * FROM es_transfers;
INSERT INTO d_t VALUES ('then', now());
COMMIT;
BEGIN;
SELECT es_withdraw('d-b', 100) > 0 AS ok, es_deposit('d-c', 5) > 0 AS ok;
SELECT es_open_account('d-d', 'USD') > 0 AS ok;
-- two-phase transfers: one posted in part, one still pending
SELECT es_apply('{"type": "transfer", "from": "d-a", "to": "d-b", "amount": 50, "pending": true, "id": "d-p1"}') > 0 AS ok,
       es_apply('{"type": "post_pending", "pending_id": "d-p1", "amount": 20}') > 0 AS ok,
       es_apply('{"type": "transfer", "from": "d-a", "to": "d-d", "amount": 40, "pending": true, "id": "d-p2", "timeout": 3600}') > 0 AS ok;
COMMIT;
SELECT t AS t_then FROM d_t WHERE step = 'then' \gset

-- a superuser past the guard tampers with the projection: a balance
-- changed, a row deleted, a bogus row added (with the name of the deleted
-- row's account, under another id)
BEGIN;
ALTER EVENT TRIGGER es_guard_ddl DISABLE;
ALTER TABLE es_accounts DISABLE TRIGGER es_guard;
UPDATE es_accounts SET balance = balance + 1, available = available + 1 WHERE account = 'd-a';
CREATE TEMP TABLE d_deleted AS SELECT * FROM es_accounts WHERE account = 'd-b';
DELETE FROM es_accounts WHERE account = 'd-b';
INSERT INTO es_accounts SELECT (SELECT max(account_id) + 1000 FROM es_accounts), account, currency,
       status, balance, pending_out, pending_in, available, overdraft_limit, max_balance, version,
       last_seq, opened_at, updated_at, last_hash
  FROM d_deleted;
INSERT INTO es_accounts SELECT (SELECT max(account_id) + 2000 FROM es_accounts), 'd-bogus', currency,
       status, balance, pending_out, pending_in, available, overdraft_limit, max_balance, version,
       last_seq, opened_at, updated_at, last_hash
  FROM d_deleted;
ALTER TABLE es_accounts ENABLE TRIGGER es_guard;
-- and es_transfers: a pending transfer shown posted, one row deleted, a
-- bogus row added
CREATE TEMP TABLE d_tr_before AS SELECT * FROM es_transfers;
ALTER TABLE es_transfers DISABLE TRIGGER es_guard;
UPDATE es_transfers SET status = 'posted', posted_amount = amount WHERE transfer_id = 'd-p2';
DELETE FROM es_transfers WHERE transfer_id = 'd-p1';
INSERT INTO es_transfers SELECT 'd-bogus', from_account, to_account, amount, posted_amount, status,
       created_at, expires_at, updated_at, seq + 100000, from_account_id, to_account_id, 'd-bogus'
  FROM d_tr_before WHERE transfer_id = 'd-p1';
ALTER TABLE es_transfers ENABLE TRIGGER es_guard;
ALTER EVENT TRIGGER es_guard_ddl ENABLE ALWAYS;
SELECT check_name, ok FROM es_verify() WHERE check_name IN ('projection', 'conservation');
SELECT es_rebuild_projections() = (SELECT count(*) FROM es_events) AS read_every_event;
SELECT check_name, ok FROM es_verify() WHERE check_name IN ('projection', 'conservation');
SELECT (SELECT count(*) FROM (SELECT * FROM es_accounts EXCEPT SELECT * FROM es_accounts_at(NULL)) x) AS extra,
       (SELECT count(*) FROM (SELECT * FROM es_accounts_at(NULL) EXCEPT SELECT * FROM es_accounts) x) AS missing;
SELECT (SELECT count(*) FROM (SELECT * FROM es_transfers EXCEPT SELECT * FROM d_tr_before) x) AS extra,
       (SELECT count(*) FROM (SELECT * FROM d_tr_before EXCEPT SELECT * FROM es_transfers) x) AS missing;
SELECT CASE WHEN command_id IS NULL THEN (transfer_id = '#' || seq)::text ELSE transfer_id END AS transfer_id,
       from_account, to_account, amount, posted_amount, status
  FROM es_transfers WHERE from_account LIKE 'd-%' ORDER BY seq;
SELECT account, balance FROM es_accounts WHERE account LIKE 'd-%' ORDER BY account;
-- a second rebuild finds nothing to do; es_apply works after it
SELECT es_rebuild_projections() > 0 AS ok;
SELECT es_deposit('d-b', 1) > 0 AS ok;
SELECT balance FROM es_accounts WHERE account = 'd-b';
ROLLBACK;
SELECT check_name, ok FROM es_verify() WHERE check_name IN ('projection', 'conservation');

-- in a transaction that already holds accounts in its cache
BEGIN;
SELECT es_deposit('d-a', 1) > 0 AS ok;
SELECT es_rebuild_projections() > 0 AS ok;
SELECT es_deposit('d-a', 1) > 0 AS ok;
SELECT balance FROM es_accounts WHERE account = 'd-a';
SELECT check_name, ok FROM es_verify() WHERE check_name IN ('projection', 'conservation');
ROLLBACK;

-- es_restore_to: the projections as of the instant captured above; the
-- result counts the rows of both tables
SELECT es_restore_to(:'t_then', 'd restore') AS n_then \gset
SELECT :n_then = (SELECT count(*) FROM es_accounts_at(:'t_then')) + (SELECT count(*) FROM d_then_tr) AS rows_written;
SELECT (SELECT count(*) FROM (SELECT * FROM "d restore".transfers EXCEPT SELECT * FROM d_then_tr) x) AS extra,
       (SELECT count(*) FROM (SELECT * FROM d_then_tr EXCEPT SELECT * FROM "d restore".transfers) x) AS missing;
SELECT (SELECT count(*) FROM (SELECT * FROM "d restore".accounts EXCEPT SELECT * FROM es_accounts_at(:'t_then')) x) AS extra,
       (SELECT count(*) FROM (SELECT * FROM es_accounts_at(:'t_then') EXCEPT SELECT * FROM "d restore".accounts) x) AS missing;
SELECT (SELECT count(*) FROM (SELECT * FROM "d restore".accounts EXCEPT SELECT * FROM d_then) x) AS extra,
       (SELECT count(*) FROM (SELECT * FROM d_then EXCEPT SELECT * FROM "d restore".accounts) x) AS missing;
SELECT account, balance FROM "d restore".accounts WHERE account LIKE 'd-%' ORDER BY account;
-- now (NULL): the same rows as es_accounts
SELECT es_restore_to(NULL, 'd_now') = (SELECT count(*) FROM es_accounts) + (SELECT count(*) FROM es_transfers) AS rows_written;
SELECT (SELECT count(*) FROM (SELECT * FROM d_now.accounts EXCEPT SELECT * FROM es_accounts) x) AS extra,
       (SELECT count(*) FROM (SELECT * FROM es_accounts EXCEPT SELECT * FROM d_now.accounts) x) AS missing;
SELECT (SELECT count(*) FROM (SELECT * FROM d_now.transfers EXCEPT SELECT * FROM es_transfers) x) AS extra,
       (SELECT count(*) FROM (SELECT * FROM es_transfers EXCEPT SELECT * FROM d_now.transfers) x) AS missing;
SELECT transfer_id, status, posted_amount FROM d_now.transfers WHERE transfer_id LIKE 'd-p%' ORDER BY seq;
-- an existing schema is refused; so are a NULL schema and callers without rights
SELECT try($$SELECT es_restore_to(now(), 'd_now')::text$$);
SELECT try($$SELECT es_restore_to(now(), NULL)::text$$);
CREATE ROLE d_admin IN ROLE es_ledger_admin, es_ledger_reader, es_ledger_writer;
SET ROLE d_admin;
SELECT try($$SELECT es_restore_to(now(), 'd_nope')::text$$);
SELECT try($$SELECT es_rebuild_projections()::text$$);
RESET ROLE;
DROP ROLE d_admin;
DROP TABLE "d restore".accounts, d_now.accounts, "d restore".transfers, d_now.transfers;
DROP SCHEMA "d restore", d_now;
DROP TABLE d_t, d_then, d_then_tr;
RESET client_min_messages;
