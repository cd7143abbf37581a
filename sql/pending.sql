-- pending: two-phase transfers.  A pending transfer reserves (pending_out,
-- pending_in, available) without moving money; post_pending moves all or
-- part of it and releases the rest; void_pending releases it; a reservation
-- past its timeout is released by the next command touching one of its
-- accounts or by es_expire_pending.  es_transfers holds one row per
-- transfer.  Times vary from run to run: only intervals are shown.
-- tr(id): the parts of an es_transfers row that do not depend on time.
CREATE VIEW tr AS
SELECT transfer_id, from_account, to_account, amount, posted_amount, status,
       expires_at - created_at AS timeout, updated_at >= created_at AS ordered
  FROM es_transfers;
SELECT es_open_account('p-a', 'USD') > 0 AS ok, es_open_account('p-b', 'USD', 0, 1000) > 0 AS ok,
       es_open_account('p-c', 'EUR') > 0 AS ok, es_open_account('p-d', 'USD', 100) > 0 AS ok;
SELECT es_deposit('p-a', 1000) > 0 AS ok;

-- shape: a pending transfer needs an id; timeout only with pending, a
-- positive integer of seconds; post_pending and void_pending need pending_id
SELECT try($$SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-b", "amount": 1, "pending": true}')::text$$);
SELECT try($$SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-b", "amount": 1, "timeout": 5, "id": "p-x"}')::text$$);
SELECT try($$SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-b", "amount": 1, "pending": false, "timeout": 5, "id": "p-x"}')::text$$);
SELECT try($$SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-b", "amount": 1, "pending": true, "timeout": 0, "id": "p-x"}')::text$$);
SELECT try($$SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-b", "amount": 1, "pending": true, "timeout": 2147483648, "id": "p-x"}')::text$$);
SELECT try($$SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-b", "amount": 1, "pending": "yes", "id": "p-x"}')::text$$);
SELECT try($$SELECT es_apply('{"type": "post_pending", "amount": 1}')::text$$);
SELECT try($$SELECT es_apply('{"type": "void_pending", "pending_id": "p-x", "amount": 1}')::text$$);
SELECT try($$SELECT es_apply('{"type": "post_pending", "pending_id": "p-x", "expected_version": 1}')::text$$);
SELECT try($$SELECT es_apply('{"type": "deposit", "account": "p-a", "amount": 1, "pending": true}')::text$$);
SELECT count(*) AS nothing_written FROM es_events e JOIN es_accounts a USING (account_id) WHERE a.account LIKE 'p-%' AND e.type LIKE 'Transfer%';

-- reserve: balance unchanged, pending amounts and available move, one row
SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-b", "amount": 200, "pending": true, "id": "p1", "timeout": 3600}') > 0 AS ok;
SELECT * FROM acct WHERE account IN ('p-a', 'p-b') ORDER BY account;
SELECT * FROM tr WHERE transfer_id = 'p1';
SELECT * FROM events('p-a') WHERE type LIKE 'Transfer%';
SELECT * FROM events('p-b') WHERE type LIKE 'Transfer%';
-- a retry returns the same seq; another command under the id is ES008
SELECT es_apply('{"id": "p1", "type": "transfer", "from": "p-a", "to": "p-b", "amount": "200", "pending": true, "timeout": 3600}')
     = (SELECT max(seq) FROM es_events WHERE command_id = 'p1') AS retry_same_seq;
SELECT try($$SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-b", "amount": 200, "pending": true, "id": "p1"}')::text$$);

-- limits count reservations: a debit may not take available below
-- -overdraft_limit (ES001); a credit may not take balance + pending_in above
-- max_balance (ES002), for every kind of credit
SELECT try($$SELECT es_withdraw('p-a', 801)::text$$);
SELECT es_deposit('p-a', 10) > 0 AS ok;  -- available 810: the credits below meet the cap first
SELECT try($$SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-d", "amount": 811, "pending": true, "id": "p-x"}')::text$$);
SELECT try($$SELECT es_deposit('p-b', 801)::text$$);
SELECT try($$SELECT es_transfer('p-a', 'p-b', 801)::text$$);
SELECT try($$SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-b", "amount": 801, "pending": true, "id": "p-x"}')::text$$);
SELECT es_deposit('p-b', 800) > 0 AS ok, es_withdraw('p-b', 800) > 0 AS ok;  -- exactly at the cap
SELECT es_withdraw('p-a', 10) > 0 AS ok;
SELECT try($$SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-c", "amount": 1, "pending": true, "id": "p-x"}')::text$$);
SELECT try($$SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-zz", "amount": 1, "pending": true, "id": "p-x"}')::text$$);

-- post part of it: 150 moves, the other 50 is released
SELECT es_apply('{"type": "post_pending", "pending_id": "p1", "amount": 150, "id": "p1-post"}') > 0 AS ok;
SELECT * FROM acct WHERE account IN ('p-a', 'p-b') ORDER BY account;
SELECT * FROM tr WHERE transfer_id = 'p1';
SELECT * FROM events('p-a') WHERE type = 'TransferPosted';
SELECT * FROM events('p-b') WHERE type = 'TransferPosted';
-- idempotent retry of the post; the id with another command is ES008
SELECT es_apply('{"type": "post_pending", "pending_id": "p1", "amount": 150, "id": "p1-post"}')
     = (SELECT max(seq) FROM es_events WHERE command_id = 'p1-post') AS retry_same_seq;
SELECT try($$SELECT es_apply('{"type": "post_pending", "pending_id": "p1", "amount": 100, "id": "p1-post"}')::text$$);
-- finished: posting or voiding it again is ES010; so is an unknown id, or
-- the id of an immediate transfer
SELECT try($$SELECT es_apply('{"type": "post_pending", "pending_id": "p1", "id": "p1-post2"}')::text$$);
SELECT try($$SELECT es_apply('{"type": "void_pending", "pending_id": "p1"}')::text$$);
SELECT try($$SELECT es_apply('{"type": "void_pending", "pending_id": "p-nope"}')::text$$);
SELECT es_transfer('p-a', 'p-d', 10, 'p-immediate') > 0 AS ok;
SELECT * FROM tr WHERE transfer_id = 'p-immediate';
SELECT try($$SELECT es_apply('{"type": "post_pending", "pending_id": "p-immediate"}')::text$$);

-- post more than reserved: ES009; post all by default
SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-d", "amount": 70, "pending": true, "id": "p2"}') > 0 AS ok;
SELECT try($$SELECT es_apply('{"type": "post_pending", "pending_id": "p2", "amount": 71}')::text$$);
SELECT es_apply('{"type": "post_pending", "pending_id": "p2"}') > 0 AS ok;
SELECT * FROM tr WHERE transfer_id = 'p2';

-- void releases everything; idempotent by its own id
SELECT es_apply('{"type": "transfer", "from": "p-d", "to": "p-a", "amount": 150, "pending": true, "id": "p3"}') > 0 AS ok;  -- into the overdraft
SELECT * FROM acct WHERE account IN ('p-a', 'p-d') ORDER BY account;
SELECT es_apply('{"type": "void_pending", "pending_id": "p3", "id": "p3-void"}') > 0 AS ok;
SELECT es_apply('{"type": "void_pending", "pending_id": "p3", "id": "p3-void"}')
     = (SELECT max(seq) FROM es_events WHERE command_id = 'p3-void') AS retry_same_seq;
SELECT try($$SELECT es_apply('{"type": "void_pending", "pending_id": "p3", "id": "p3-void2"}')::text$$);
SELECT try($$SELECT es_apply('{"type": "post_pending", "pending_id": "p3"}')::text$$);
SELECT * FROM acct WHERE account IN ('p-a', 'p-d') ORDER BY account;
SELECT * FROM tr WHERE transfer_id = 'p3';
SELECT * FROM events('p-d') WHERE type = 'TransferVoided';

-- a post moves money: both accounts must be open (ES005); a void only
-- releases, so it works on a frozen account
SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-d", "amount": 5, "pending": true, "id": "p4"}') > 0 AS ok,
       es_apply('{"type": "transfer", "from": "p-a", "to": "p-d", "amount": 6, "pending": true, "id": "p5"}') > 0 AS ok;
SELECT es_apply('{"type": "freeze_account", "account": "p-d"}') > 0 AS ok;
SELECT try($$SELECT es_apply('{"type": "post_pending", "pending_id": "p4"}')::text$$);
SELECT es_apply('{"type": "void_pending", "pending_id": "p4"}') > 0 AS ok;
SELECT es_apply('{"type": "unfreeze_account", "account": "p-d"}') > 0 AS ok;
SELECT es_apply('{"type": "post_pending", "pending_id": "p5", "amount": 1}') > 0 AS ok;

-- closing an account with anything pending: ES014, on either side
SELECT es_open_account('p-g', 'USD') > 0 AS ok;
SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-g", "amount": 5, "pending": true, "id": "p6"}') > 0 AS ok;
SELECT try($$SELECT es_apply('{"type": "close_account", "account": "p-g"}')::text$$);
SELECT es_apply('{"type": "void_pending", "pending_id": "p6"}') > 0 AS ok;
SELECT es_apply('{"type": "close_account", "account": "p-g"}') > 0 AS ok;

-- a batch: reserve and post in one atomic call; a failing batch leaves no
-- reservation behind
SELECT es_apply('[{"type": "transfer", "from": "p-a", "to": "p-b", "amount": 9, "pending": true, "id": "p7"},
                  {"type": "post_pending", "pending_id": "p7", "amount": 4}]') > 0 AS ok;
SELECT * FROM tr WHERE transfer_id = 'p7';
SELECT try($$SELECT es_apply('[{"type": "transfer", "from": "p-a", "to": "p-b", "amount": 9, "pending": true, "id": "p8"},
                               {"type": "withdraw", "account": "p-a", "amount": 100000}]')::text$$);
SELECT count(*) AS no_p8 FROM es_transfers WHERE transfer_id = 'p8';

-- expiry.  p9 and p10 expire after one second; p11 has a day.
SELECT es_open_account('p-e', 'USD') > 0 AS ok, es_open_account('p-f', 'USD') > 0 AS ok,
       es_open_account('p-h', 'USD') > 0 AS ok;
SELECT es_deposit('p-e', 100) > 0 AS ok;
BEGIN;
SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-d", "amount": 20, "pending": true, "id": "p9", "timeout": 1}') > 0 AS ok,
       es_apply('{"type": "transfer", "from": "p-e", "to": "p-f", "amount": 30, "pending": true, "id": "p10", "timeout": 1}') > 0 AS ok,
       es_apply('{"type": "transfer", "from": "p-e", "to": "p-h", "amount": 40, "pending": true, "id": "p11", "timeout": 86400}') > 0 AS ok,
       es_apply('{"type": "transfer", "from": "p-a", "to": "p-h", "amount": 1, "pending": true, "id": "p12", "timeout": 1}') > 0 AS ok;
COMMIT;
SELECT transfer_id, status, timeout FROM tr WHERE transfer_id IN ('p9', 'p10', 'p11', 'p12') ORDER BY 1;
SELECT pg_sleep(1.2);
-- posting past the timeout: ES013, and nothing is written (the expiry the
-- post would have written is undone with it)
SELECT count(*) AS events_before FROM es_events \gset
SELECT try($$SELECT es_apply('{"type": "post_pending", "pending_id": "p9"}')::text$$);
SELECT try($$SELECT es_apply('{"type": "void_pending", "pending_id": "p9"}')::text$$);
SELECT (SELECT count(*) FROM es_events) = :events_before AS nothing_written, (SELECT status FROM es_transfers WHERE transfer_id = 'p9') AS p9;
-- a command touching p-f releases p10 first (events on both accounts); its
-- funds rules count live reservations only
SELECT es_deposit('p-f', 1) > 0 AS ok;
SELECT * FROM tr WHERE transfer_id = 'p10';
SELECT * FROM events('p-e') WHERE type LIKE 'Transfer%';
SELECT * FROM events('p-f') WHERE type LIKE 'Transfer%';
SELECT * FROM acct WHERE account IN ('p-e', 'p-f') ORDER BY account;
SELECT es_withdraw('p-e', 60) > 0 AS ok;  -- 100 - 40 still reserved by p11
SELECT try($$SELECT es_withdraw('p-e', 1)::text$$);
-- es_expire_pending releases the rest that is due (p9, p12), once
SELECT es_expire_pending() AS expired;
SELECT es_expire_pending() AS expired_again;
SELECT transfer_id, status FROM tr WHERE transfer_id IN ('p9', 'p10', 'p11', 'p12') ORDER BY 1;
SELECT try($$SELECT es_apply('{"type": "post_pending", "pending_id": "p9"}')::text$$);
SELECT try($$SELECT es_apply('{"type": "void_pending", "pending_id": "p12"}')::text$$);
-- p-h still receives p11: closing it is ES014; once p11 is voided it closes
SELECT try($$SELECT es_apply('{"type": "close_account", "account": "p-h"}')::text$$);
SELECT es_apply('{"type": "void_pending", "pending_id": "p11"}') > 0 AS ok;
SELECT es_apply('{"type": "close_account", "account": "p-h"}') > 0 AS ok;

-- es_reverse refuses reservations, posts and voids (ES009)
SELECT try($$SELECT es_reverse('p1', 'p-rev1')::text$$);
SELECT try($$SELECT es_reverse('p1-post', 'p-rev2')::text$$);
SELECT try($$SELECT es_reverse('p3-void', 'p-rev3')::text$$);

-- roles: readers read es_transfers but may not post, void or expire;
-- writers may; administrators may expire but not post (money movement)
CREATE ROLE p_reader IN ROLE es_ledger_reader;
CREATE ROLE p_writer IN ROLE es_ledger_writer;
CREATE ROLE p_admin IN ROLE es_ledger_admin;
CREATE ROLE p_nobody;
SELECT es_apply('{"type": "transfer", "from": "p-a", "to": "p-b", "amount": 3, "pending": true, "id": "p13"}') > 0 AS ok;
SET ROLE p_reader;
SELECT try($$SELECT count(*)::text FROM es_transfers WHERE transfer_id = 'p13'$$);
SELECT try($$SELECT es_apply('{"type": "post_pending", "pending_id": "p13"}')::text$$);
SELECT try($$SELECT es_expire_pending()::text$$);
SELECT try($$UPDATE es_transfers SET status = 'voided' RETURNING 1$$);
RESET ROLE;
SET ROLE p_nobody;
SELECT try($$SELECT count(*)::text FROM es_transfers$$);
RESET ROLE;
SET ROLE p_admin;
SELECT try($$SELECT es_apply('{"type": "void_pending", "pending_id": "p13"}')::text$$);
SELECT try($$SELECT es_expire_pending()::text$$);
RESET ROLE;
SET ROLE p_writer;
SELECT try($$SELECT (es_apply('{"type": "post_pending", "pending_id": "p13", "amount": 2}') > 0)::text$$);
SELECT try($$SELECT es_expire_pending()::text$$);
SELECT try($$DELETE FROM es_transfers RETURNING 1$$);
RESET ROLE;
-- not even the superuser writes es_transfers directly
SELECT try($$UPDATE es_transfers SET status = 'voided' RETURNING 1$$);
SELECT try($$TRUNCATE es_transfers$$);
DROP ROLE p_reader, p_writer, p_admin, p_nobody;

SELECT es_check_shape('es_transfers', 'es_transfers') AS transfers_shape;

-- an index of the user's own on es_transfers gets the rows of immediate
-- transfers too (they then go through the executor, not the fast path)
CREATE INDEX p_user_idx ON es_transfers (to_account, amount);
SELECT es_transfer('p-a', 'p-b', 17, 'p-indexed') > 0 AS ok;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT transfer_id FROM es_transfers WHERE to_account = 'p-b' AND amount = 17;
SELECT transfer_id FROM es_transfers WHERE to_account = 'p-b' AND amount = 17;
RESET enable_seqscan;
RESET enable_bitmapscan;
DROP INDEX p_user_idx;

-- invariants: every projection row equals replay; pending_out and
-- pending_in are the sums of the open reservations; es_verify passes
SELECT bool_and((a.balance, a.pending_out, a.pending_in, a.available, a.version)
              = (r.balance, r.pending_out, r.pending_in, r.available, r.version)) AS replay_equals_projection
  FROM es_accounts a, LATERAL es_replay(a.account) r WHERE a.account LIKE 'p-%';
SELECT count(*) AS accounts_off FROM es_accounts a
 WHERE a.pending_out <> coalesce((SELECT sum(amount) FROM es_transfers t WHERE t.from_account = a.account AND t.status = 'pending'), 0)
    OR a.pending_in <> coalesce((SELECT sum(amount) FROM es_transfers t WHERE t.to_account = a.account AND t.status = 'pending'), 0)
    OR a.available <> a.balance - a.pending_out;
SELECT count(*) AS rows_off FROM es_accounts a, LATERAL es_accounts_at(NULL) r
 WHERE r.account_id = a.account_id AND (r.pending_out, r.pending_in) <> (a.pending_out, a.pending_in);
SELECT * FROM acct WHERE account LIKE 'p-%' ORDER BY account;
SELECT check_name, ok FROM es_verify();
SELECT check_name, ok FROM es_verify('p-a');

-- a tampered es_transfers row is found by es_verify's projection check
BEGIN;
ALTER EVENT TRIGGER es_guard_ddl DISABLE;
ALTER TABLE es_transfers DISABLE TRIGGER es_guard;
UPDATE es_transfers SET posted_amount = posted_amount + 1 WHERE transfer_id = 'p1';
ALTER TABLE es_transfers ENABLE TRIGGER es_guard;
ALTER EVENT TRIGGER es_guard_ddl ENABLE ALWAYS;
SELECT check_name, ok, first_bad_seq = (SELECT seq FROM es_transfers WHERE transfer_id = 'p1') AS at_p1,
       regexp_replace(detail, '^\d+ of \d+ (.*) seq \d+:', 'N of M \1 seq N:') AS detail
  FROM es_verify() WHERE check_name = 'projection';
SET client_min_messages = warning;  -- progress NOTICEs depend on the log's length
SELECT es_rebuild_projections() > 0 AS rebuilt;
RESET client_min_messages;
SELECT check_name, ok FROM es_verify() WHERE check_name = 'projection';
ROLLBACK;
-- an account's pending_out that is not the sum of its open reservations is
-- found by the conservation check (and the projection check)
BEGIN;
ALTER EVENT TRIGGER es_guard_ddl DISABLE;
ALTER TABLE es_accounts DISABLE TRIGGER es_guard;
UPDATE es_accounts SET pending_out = pending_out + 5, available = available - 5 WHERE account = 'p-a';
ALTER TABLE es_accounts ENABLE TRIGGER es_guard;
ALTER EVENT TRIGGER es_guard_ddl ENABLE ALWAYS;
SELECT check_name, ok, regexp_replace(detail, '^\d+ of \d+ (.*) seq \d+:', 'N of M \1 seq N:') AS detail
  FROM es_verify() WHERE check_name IN ('projection', 'conservation') ORDER BY 1;
ROLLBACK;
-- The deadline is the wall clock when post, void or expiry is decided, not
-- the start of the transaction (security issue 14, Low): a transaction that
-- began before the deadline cannot post, nor void, after it.  The expiry
-- the refused command would have made is undone with it; es_expire_pending
-- then expires the transfer, recorded at or after the deadline.
SELECT es_open_account('p-late-a', 'USD') > 0 AS ok, es_open_account('p-late-b', 'USD') > 0 AS ok;
SELECT es_deposit('p-late-a', 100) > 0 AS ok;
SELECT es_apply('{"type": "transfer", "from": "p-late-a", "to": "p-late-b", "amount": 10, "pending": true, "id": "p-late", "timeout": 1}') > 0 AS ok;
SELECT es_apply('{"type": "transfer", "from": "p-late-a", "to": "p-late-b", "amount": 10, "pending": true, "id": "p-late2", "timeout": 1}') > 0 AS ok;
BEGIN;
SELECT now() < (SELECT expires_at FROM es_transfers WHERE transfer_id = 'p-late') AS began_before_deadline;
SELECT pg_sleep(1.2);
SELECT try($$SELECT es_apply('{"type": "post_pending", "pending_id": "p-late"}')::text$$) AS late_post;
SELECT try($$SELECT es_apply('{"type": "void_pending", "pending_id": "p-late2"}')::text$$) AS late_void;
SELECT es_expire_pending() AS expired_in_same_xact;
COMMIT;
SELECT transfer_id, status FROM es_transfers WHERE transfer_id LIKE 'p-late%' ORDER BY 1;
SELECT bool_and(e.recorded_at >= t.expires_at) AS expiry_recorded_after_deadline
  FROM es_events e JOIN es_transfers t ON e.data->>'transfer_id' = t.transfer_id
 WHERE t.transfer_id LIKE 'p-late%' AND e.type = 'TransferExpired';
SELECT balance, pending_out, available FROM es_accounts WHERE account = 'p-late-a';

-- A post or void takes effect (effective_at) no earlier than its
-- reservation; an expiry no earlier either.  Otherwise a fold by valid time
-- (es_replay's effective_until) would keep the release without its
-- reservation and report a healthy ledger as corrupt (ES012; fuzz finding).
CREATE FUNCTION try_detail(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || E'\n' || d;
END $$;
SET TimeZone = 'UTC';
SELECT es_open_account('p-eff-a', 'USD') > 0 AS ok, es_open_account('p-eff-b', 'USD') > 0 AS ok;
SELECT es_apply('{"type": "deposit", "account": "p-eff-a", "amount": 100, "effective_at": "2026-01-01 00:00:00+00"}') > 0 AS ok;
SELECT es_apply('{"type": "transfer", "from": "p-eff-a", "to": "p-eff-b", "amount": 30, "pending": true, "id": "p-eff1", "effective_at": "2026-06-01 00:00:00+00"}') > 0 AS ok;
SELECT es_apply('{"type": "transfer", "from": "p-eff-a", "to": "p-eff-b", "amount": 20, "pending": true, "id": "p-eff2", "effective_at": "2026-06-01 00:00:00+00"}') > 0 AS ok;
-- dated before the reservation: refused (ES009), with both times
SELECT try_detail($$SELECT es_apply('{"type": "post_pending", "pending_id": "p-eff1", "effective_at": "2026-05-31 23:59:59+00"}')$$);
SELECT try_detail($$SELECT es_apply('{"type": "void_pending", "pending_id": "p-eff2", "effective_at": "2026-01-01 00:00:00+00"}')$$);
-- in a batch, and in es_apply_each (a value with its SQLSTATE; the other command is applied)
SELECT try($$SELECT es_apply('[{"type": "deposit", "account": "p-eff-a", "amount": 1}, {"type": "post_pending", "pending_id": "p-eff1", "effective_at": "2020-01-01 00:00:00+00"}]')::text$$);
SELECT ord, seq IS NOT NULL AS applied, sqlstate, message
  FROM es_apply_each('[{"type": "void_pending", "pending_id": "p-eff2", "effective_at": "2026-05-01 00:00:00+00"}, {"type": "deposit", "account": "p-eff-b", "amount": 1, "effective_at": "2026-01-01 00:00:00+00"}]');
SELECT transfer_id, status FROM es_transfers WHERE transfer_id LIKE 'p-eff%' ORDER BY 1;
-- at the reservation's own effective_at, or later: accepted
SELECT es_apply('{"type": "post_pending", "pending_id": "p-eff1", "amount": 25, "effective_at": "2026-07-01 00:00:00+00"}') > 0 AS posted;
SELECT es_apply('{"type": "void_pending", "pending_id": "p-eff2", "effective_at": "2026-06-01 00:00:00+00"}') > 0 AS voided;
-- valid-time replay: before, between and after; the same from snapshots
SELECT t AS effective_until, r.balance, r.pending_out, r.available
  FROM unnest(ARRAY['2026-05-31', '2026-06-01', '2026-06-15', '2026-07-01']::timestamptz[]) t,
       LATERAL es_replay('p-eff-a', NULL, t) r ORDER BY t;
SELECT t AS effective_until, r.balance, r.pending_in
  FROM unnest(ARRAY['2026-05-31', '2026-06-15', '2026-07-01']::timestamptz[]) t,
       LATERAL es_replay('p-eff-b', NULL, t) r ORDER BY t;
SELECT es_snapshot('p-eff-a') > 0 AS snapshot, es_snapshot('p-eff-b') > 0 AS snapshot;
CREATE TEMP TABLE eff_from_snap AS
SELECT a, t, r.balance, r.pending_out, r.pending_in
  FROM unnest(ARRAY['p-eff-a', 'p-eff-b']) a,
       unnest(ARRAY['2026-05-31', '2026-06-15', '2026-07-01', 'infinity']::timestamptz[]) t,
       LATERAL es_replay(a, NULL, t) r;
SELECT es_drop_snapshots('p-eff-a') >= 1 AS dropped, es_drop_snapshots('p-eff-b') >= 1 AS dropped;
SELECT count(*) AS replays, bool_and((r.balance, r.pending_out, r.pending_in) = (s.balance, s.pending_out, s.pending_in)) AS snapshots_agree
  FROM eff_from_snap s, LATERAL es_replay(s.a, NULL, s.t) r;
DROP TABLE eff_from_snap;
-- a reservation dated in the future: a post or void without effective_at
-- (its transaction time) is refused; with the reservation's date or later
-- it is accepted.
SELECT es_apply('{"type": "transfer", "from": "p-eff-a", "to": "p-eff-b", "amount": 5, "pending": true, "id": "p-eff3", "effective_at": "2100-01-01 00:00:00+00"}') > 0 AS ok;
SELECT try($$SELECT es_apply('{"type": "post_pending", "pending_id": "p-eff3"}')::text$$);
SELECT try($$SELECT es_apply('{"type": "void_pending", "pending_id": "p-eff3"}')::text$$);
SELECT es_apply('{"type": "void_pending", "pending_id": "p-eff3", "effective_at": "2100-01-01 00:00:01+00"}') > 0 AS voided;
-- its expiry takes effect at the reservation's date, not at the clock's
-- (p-eff3's void took effect a second after that date)
SELECT es_apply('{"type": "transfer", "from": "p-eff-a", "to": "p-eff-b", "amount": 5, "pending": true, "id": "p-eff4", "timeout": 1, "effective_at": "2100-01-01 00:00:00+00"}') > 0 AS ok;
SELECT pg_sleep(1.1);
SELECT es_expire_pending() >= 1 AS expired;
SELECT e.account_id = a.account_id AS debit_side, e.effective_at
  FROM es_events e, es_accounts a
 WHERE e.data->>'transfer_id' = 'p-eff4' AND e.type = 'TransferExpired' AND a.account = 'p-eff-a'
 ORDER BY e.seq;
SELECT t AS effective_until, r.balance, r.pending_out
  FROM unnest(ARRAY['2099-12-31', '2100-01-01', 'infinity']::timestamptz[]) t,
       LATERAL es_replay('p-eff-a', NULL, t) r ORDER BY t;
SELECT check_name, ok FROM es_verify('p-eff-a');
RESET TimeZone;
DROP FUNCTION try_detail(text);
DROP VIEW tr;
