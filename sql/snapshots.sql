-- snapshots: es_snapshots holds an account's state at a version, written by
-- es_apply every es_ledger.snapshot_interval events and by es_snapshot;
-- replay starts from the newest usable one and folds the events after it.
-- Every answer here is compared with what the log alone says (sums over
-- es_events, or replay with the snapshots dropped), never with a constant
-- that could be wrong the same way.  Each event is its own transaction
-- (DO), so its recorded_at is distinct; s_t keeps them.

SELECT count(*) >= 0 AS loaded FROM es_events;	-- loads the library, which defines the GUC
SHOW es_ledger.snapshot_interval;
SET es_ledger.snapshot_interval = 4;

CREATE TEMP TABLE s_t (account text, version bigint, t timestamptz, PRIMARY KEY (account, version));
CREATE FUNCTION s_step(sql text, acct text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	INSERT INTO s_t SELECT acct, version, now() FROM es_accounts WHERE account = acct;
END $$;
SELECT format('DO $d$BEGIN PERFORM s_step(%L, %L); END$d$',
              CASE WHEN i = 0 THEN $$SELECT es_open_account('snap-a', 'USD')$$
                   ELSE format($$SELECT es_deposit('snap-a', %s)$$, i) END, 'snap-a')
  FROM generate_series(0, 10) i \gexec

-- 1. automatic: at versions 4 and 8 (interval 4), none at 11
SELECT s.version,
       s.balance = (SELECT sum(amount) FROM es_events e WHERE e.account_id = s.account_id AND e.version <= s.version) AS balance_is_fold,
       s.updated_at = (SELECT recorded_at FROM es_events e WHERE e.account_id = s.account_id AND e.version = s.version) AS recorded_at_of_version,
       s.last_hash = (SELECT hash FROM es_events e WHERE e.account_id = s.account_id AND e.version = s.version) AS hash_of_version,
       s.max_recorded_at = s.updated_at AS max_recorded_at,
       s.format, to_hex(s.magic) AS magic, length(s.checksum) AS checksum_len
  FROM es_snapshots s WHERE account = 'snap-a' ORDER BY version;

-- the checksum, recomputed in SQL from the columns (doc/reference.md):
-- SHA-256 over every column but the checksum, each a presence byte, then
-- 8 bytes big-endian, or a length and the bytes
CREATE FUNCTION s_i(v bigint) RETURNS bytea LANGUAGE sql AS $$ SELECT CASE WHEN v IS NULL THEN '\x00'::bytea ELSE '\x01'::bytea || int8send(v) END $$;
CREATE FUNCTION s_ts(v timestamptz) RETURNS bytea LANGUAGE sql AS $$ SELECT '\x01'::bytea || timestamptz_send(v) $$;
CREATE FUNCTION s_b(v bytea) RETURNS bytea LANGUAGE sql AS $$ SELECT '\x01'::bytea || int8send(length(v)::bigint) || v $$;
CREATE FUNCTION s_txt(v text) RETURNS bytea LANGUAGE sql AS $$ SELECT s_b(convert_to(v, 'UTF8')) $$;
CREATE FUNCTION s_checksum(s es_snapshots) RETURNS bytea LANGUAGE sql AS $$
	SELECT sha256(s_i(s.account_id) || s_txt(s.account) || s_txt(s.currency) || s_txt(s.status) ||
	              s_i(s.balance) || s_i(s.pending_out) || s_i(s.pending_in) || s_i(s.available) ||
	              s_i(s.overdraft_limit) || s_i(s.max_balance) || s_i(s.version) || s_i(s.last_seq) ||
	              s_ts(s.opened_at) || s_ts(s.updated_at) || s_b(s.last_hash) ||
	              s_ts(s.max_recorded_at) || s_ts(s.max_effective_at) || s_i(s.format) || s_i(s.magic))
$$;
SELECT version, s_checksum(s) = checksum AS checksum_recomputed FROM es_snapshots s WHERE account LIKE 'snap-%' ORDER BY account_id, version;

-- 2. replay with snapshots equals replay from the log's start, at now and
-- at every event's recorded_at (and just before it), for every account
CREATE TEMP TABLE s_with AS
SELECT t.account AS acct, t.version AS at_version, k.k, r.*
  FROM s_t t, (VALUES (-1), (0)) k(k),
       LATERAL es_replay(t.account, t.t + k.k * interval '1 microsecond') r
 WHERE NOT (t.version = 1 AND k.k = -1);
BEGIN;
SELECT es_drop_snapshots() >= 2 AS dropped;
SELECT count(*) AS instants,
       count(*) FILTER (WHERE w IS NOT DISTINCT FROM o) AS equal,
       count(*) FILTER (WHERE w.version = w.at_version + w.k) AS at_the_version
  FROM s_with w
  JOIN (SELECT t.account AS acct, t.version AS at_version, k.k, r.*
          FROM s_t t, (VALUES (-1), (0)) k(k),
               LATERAL es_replay(t.account, t.t + k.k * interval '1 microsecond') r
         WHERE NOT (t.version = 1 AND k.k = -1)) o USING (acct, at_version, k);
ROLLBACK;
SELECT (SELECT count(*) FROM es_snapshots WHERE account LIKE 'snap-%') AS snapshots_kept_after_rollback;
-- at now: the projection row, and es_balance_at
SELECT r = a AS replay_is_projection, es_balance_at('snap-a', NULL) = a.balance AS balance_at_now
  FROM es_accounts a, LATERAL es_replay(a.account) r WHERE a.account = 'snap-a';

-- 3. time travel before the first snapshot, and between snapshots:
-- es_balance_at equals the sum of the amounts recorded by then
SELECT t.version, es_balance_at('snap-a', t.t) =
       (SELECT sum(amount) FROM es_events e JOIN es_accounts a USING (account_id)
         WHERE a.account = 'snap-a' AND e.recorded_at <= t.t) AS balance_at_is_sum
  FROM s_t t WHERE account = 'snap-a' ORDER BY 1;
-- es_history since a time after a snapshot starts from it: same running
-- balances as from the start
SELECT bool_and(h.balance_after = f.balance_after) AS history_from_snapshot, count(*) AS rows
  FROM es_history('snap-a', (SELECT t FROM s_t WHERE account = 'snap-a' AND version = 10)) h
  JOIN es_history('snap-a') f USING (seq);

-- 4. valid time: a deposit effective in the future makes the snapshots
-- after it unusable for an effective_until before that time
SELECT format('DO $d$BEGIN PERFORM s_step(%L, %L); END$d$',
              CASE WHEN i = 0 THEN $$SELECT es_open_account('snap-b', 'USD')$$
                   WHEN i = 2 THEN $$SELECT es_apply('{"type": "deposit", "account": "snap-b", "amount": 1000, "effective_at": "2099-01-01 00:00:00+00"}')$$
                   ELSE format($$SELECT es_deposit('snap-b', %s)$$, i) END, 'snap-b')
  FROM generate_series(0, 8) i \gexec
SELECT version, max_effective_at = '2099-01-01 00:00:00+00' AS holds_the_future
  FROM es_snapshots WHERE account = 'snap-b' ORDER BY version;
SELECT u.label, (es_replay('snap-b', NULL, u.until)).balance =
       (SELECT sum(amount) FROM es_events e JOIN es_accounts a USING (account_id)
         WHERE a.account = 'snap-b' AND (e.effective_at <= u.until OR e.version = 1)) AS balance_is_sum
  FROM (VALUES ('now', now()), ('2098', '2098-12-31 23:59:59.999999+00'::timestamptz),
               ('2099', '2099-01-01 00:00:00+00'), ('2100', '2100-01-01 00:00:00+00')) u(label, until);
-- both filters: what the ledger knew at v6 about what had happened by now
SELECT (es_replay('snap-b', t.t, now())).balance =
       (SELECT sum(amount) FROM es_events e JOIN es_accounts a USING (account_id)
         WHERE a.account = 'snap-b' AND e.recorded_at <= t.t AND (e.effective_at <= now() OR e.version = 1)) AS bitemporal
  FROM s_t t WHERE account = 'snap-b' AND version = 6;

-- 5. es_snapshot on demand, es_drop_snapshots
SELECT es_open_account('snap-c', 'USD') > 0 AS ok, es_deposit('snap-c', 5) > 0 AS ok, es_deposit('snap-c', 6) > 0 AS ok;
SELECT es_snapshot('snap-c') AS snapshot_version;
SELECT es_snapshot('snap-c') AS again_no_new_row, (SELECT count(*) FROM es_snapshots WHERE account = 'snap-c') AS rows;
SELECT r = a AS replay_is_projection FROM es_accounts a, LATERAL es_replay(a.account) r WHERE a.account = 'snap-c';
SELECT try($$SELECT es_snapshot('snap-nobody')::text$$);
SELECT try($$SELECT es_snapshot(NULL)::text$$);
SELECT try($$SELECT es_drop_snapshots('snap-nobody')::text$$);
SELECT es_drop_snapshots('snap-c') AS dropped_one, (SELECT count(*) FROM es_snapshots WHERE account = 'snap-c') AS left_;
SELECT es_snapshot('snap-c') AS rebuilt;
-- in a batch, a snapshot at every multiple crossed; a transfer snapshots both sides
SELECT es_apply(jsonb_agg(jsonb_build_object('type', 'deposit', 'account', 'snap-c', 'amount', i))) > 0 AS ok
  FROM generate_series(1, 8) i;
SELECT es_transfer('snap-c', 'snap-a', 1) > 0 AS ok;
SELECT account, array_agg(version ORDER BY version) AS versions FROM es_snapshots WHERE account LIKE 'snap-%' GROUP BY 1 ORDER BY 1;
SELECT a.account, a.version, s.version = a.version AS snapshot_at_head
  FROM es_accounts a JOIN es_snapshots s ON s.account_id = a.account_id AND s.version = a.version
 WHERE a.account IN ('snap-a', 'snap-c') ORDER BY 1;
-- 0 turns automatic snapshots off
SET es_ledger.snapshot_interval = 0;
SELECT es_deposit('snap-c', 1) > 0 AS ok, es_deposit('snap-c', 1) > 0 AS ok, es_deposit('snap-c', 1) > 0 AS ok,
       es_deposit('snap-c', 1) > 0 AS ok;
SELECT max(version) AS newest_snapshot FROM es_snapshots WHERE account = 'snap-c';
SET es_ledger.snapshot_interval = 4;
SELECT check_name, ok, regexp_replace(detail, '\d+', 'N', 'g') AS detail FROM es_verify() WHERE check_name = 'snapshots';

-- 6. a damaged snapshot is never trusted: replay warns (ES012), passes it
-- over and still answers from the log; es_verify fails the snapshots check
CREATE FUNCTION s_tamper(sql text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	ALTER EVENT TRIGGER es_guard_ddl DISABLE;
	ALTER TABLE es_snapshots DISABLE TRIGGER es_guard;
	EXECUTE sql;
	ALTER TABLE es_snapshots ENABLE ALWAYS TRIGGER es_guard;
	ALTER EVENT TRIGGER es_guard_ddl ENABLE ALWAYS;
END $$;
-- 6a. content changed, checksum not: replay at now starts from the newer
-- snapshot at 12 and never looks at it; as of v11 it passes it over
SELECT s_tamper($$UPDATE es_snapshots SET balance = balance + 1000000 WHERE account = 'snap-a' AND version = 8$$);
SELECT r = a AS replay_is_projection FROM es_accounts a, LATERAL es_replay(a.account) r WHERE a.account = 'snap-a';
SELECT es_balance_at('snap-a', t) = (SELECT balance FROM es_accounts WHERE account = 'snap-a') - 1 AS balance_at_v11
  FROM s_t WHERE account = 'snap-a' AND version = 11;
-- before the damaged one: the snapshot at 4 is used, no warning
SELECT es_balance_at('snap-a', t) AS balance_at_v6 FROM s_t WHERE account = 'snap-a' AND version = 6;
SELECT check_name, ok, first_bad_seq = (SELECT last_seq FROM es_snapshots WHERE account = 'snap-a' AND version = 8) AS names_it, regexp_replace(detail, 'seq \d+', 'seq N') AS detail
  FROM es_verify('snap-a') WHERE check_name = 'snapshots';
-- es_snapshot replaces it; es_verify passes again
SELECT s_tamper($$UPDATE es_snapshots SET balance = balance - 1000000 WHERE account = 'snap-a' AND version = 8$$);
SELECT s_tamper($$UPDATE es_snapshots SET format = 2 WHERE account = 'snap-a' AND version = 12$$);
SELECT es_snapshot('snap-a') AS replaced;
SELECT format, s_checksum(s) = checksum AS checksum_ok FROM es_snapshots s WHERE account = 'snap-a' AND version = 12;
-- 6b. out of date: a snapshot whose hash is not the log's at its version,
-- with a checksum that matches its (forged) content
SELECT s_tamper($$UPDATE es_snapshots s SET last_hash = sha256('forged'), checksum = s_checksum(ROW(s.account_id, s.account, s.currency, s.status, s.balance + 7, s.pending_out, s.pending_in, s.available + 7, s.overdraft_limit, s.max_balance, s.version, s.last_seq, s.opened_at, s.updated_at, sha256('forged'), s.max_recorded_at, s.max_effective_at, s.format, s.magic, s.checksum)::es_snapshots), balance = balance + 7, available = available + 7 WHERE account = 'snap-a' AND version = 12$$);
SELECT version, s_checksum(s) = checksum AS checksum_matches FROM es_snapshots s WHERE account = 'snap-a' AND version = 12;
SELECT r = a AS replay_is_projection FROM es_accounts a, LATERAL es_replay(a.account) r WHERE a.account = 'snap-a';
-- 6c. a forged magic number, and a snapshot moved to another account
SELECT s_tamper($$UPDATE es_snapshots SET magic = 0 WHERE account = 'snap-a' AND version = 8$$);
SELECT s_tamper($$UPDATE es_snapshots SET account_id = (SELECT account_id FROM es_accounts WHERE account = 'snap-b') WHERE account = 'snap-a' AND version = 12$$);
SELECT r = a AS replay_is_projection FROM es_accounts a, LATERAL es_replay(a.account) r WHERE a.account = 'snap-b';
SELECT r = a AS replay_is_projection FROM es_accounts a, LATERAL es_replay(a.account) r WHERE a.account = 'snap-a';
SELECT check_name, ok, regexp_replace(detail, '\d+ of \d+ snapshots|\d+ snapshots|seq \d+', 'N', 'g') AS detail FROM es_verify() WHERE check_name = 'snapshots';
-- 6d. content and checksum rewritten together, consistent with the log's
-- hash: the checksum has no key, so replay trusts it; es_verify, which
-- replays the log up to every snapshot, is what catches it
SELECT s_tamper($$UPDATE es_snapshots s SET checksum = s_checksum(ROW(s.account_id, s.account, s.currency, s.status, s.balance + 5, s.pending_out, s.pending_in, s.available + 5, s.overdraft_limit, s.max_balance, s.version, s.last_seq, s.opened_at, s.updated_at, s.last_hash, s.max_recorded_at, s.max_effective_at, s.format, s.magic, s.checksum)::es_snapshots), balance = balance + 5, available = available + 5 WHERE account = 'snap-c' AND version = 12$$);
SELECT (es_replay('snap-c')).balance - balance AS replay_minus_projection FROM es_accounts WHERE account = 'snap-c';
SELECT check_name, ok, checked, first_bad_seq = (SELECT last_seq FROM es_snapshots WHERE account = 'snap-c' AND version = 12) AS names_it, regexp_replace(detail, 'seq \d+', 'seq N') AS detail
  FROM es_verify('snap-c') WHERE check_name = 'snapshots';
-- dropped and rebuilt, everything agrees again
SELECT es_drop_snapshots() > 0 AS dropped;
SELECT es_snapshot(account) > 0 AS ok FROM es_accounts WHERE account LIKE 'snap-%' ORDER BY account;
SELECT check_name, ok, regexp_replace(detail, '\d+ of \d+ snapshots|\d+ snapshots|seq \d+', 'N', 'g') AS detail FROM es_verify() WHERE check_name = 'snapshots';
SELECT count(*) AS replays_equal_projection FROM es_accounts a, LATERAL es_replay(a.account) r WHERE r = a AND a.account LIKE 'snap-%';

-- 7. the table is derived data: no role writes it but through the extension
SELECT try($$INSERT INTO es_snapshots SELECT * FROM es_snapshots LIMIT 1 RETURNING 'inserted'$$);
SELECT try($$UPDATE es_snapshots SET balance = 0 RETURNING 'updated'$$);
SELECT try($$DELETE FROM es_snapshots RETURNING 'deleted'$$);
SELECT try($$TRUNCATE es_snapshots$$);
SET session_replication_role = replica;
SELECT try($$DELETE FROM es_snapshots RETURNING 'deleted'$$);
RESET session_replication_role;
SELECT try($$ALTER TABLE es_snapshots DISABLE TRIGGER es_guard$$);
SELECT try($$DROP TABLE es_snapshots$$);
-- roles: readers read; writers and admins write nothing directly; only
-- admins run es_snapshot and es_drop_snapshots
CREATE ROLE s_reader IN ROLE es_ledger_reader;
CREATE ROLE s_writer IN ROLE es_ledger_writer;
CREATE ROLE s_admin IN ROLE es_ledger_admin;
CREATE ROLE s_nobody;
SET ROLE s_reader;
SELECT count(*) > 0 AS reader_reads FROM es_snapshots;
SELECT try($$SELECT es_snapshot('snap-a')::text$$);
SET ROLE s_writer;
SELECT try($$DELETE FROM es_snapshots RETURNING 'deleted'$$);
SELECT try($$INSERT INTO es_snapshots SELECT * FROM es_snapshots LIMIT 1 RETURNING 'inserted'$$);
SELECT try($$SELECT es_drop_snapshots()::text$$);
SET es_ledger.snapshot_interval = 1;
SET ROLE s_admin;
SELECT try($$UPDATE es_snapshots SET balance = 0 RETURNING 'updated'$$);
SELECT es_snapshot('snap-b') > 0 AS admin_snapshots, es_drop_snapshots('snap-b') AS admin_drops;
SET ROLE s_nobody;
SELECT try($$SELECT count(*)::text FROM es_snapshots$$);
RESET ROLE;
DROP ROLE s_reader, s_writer, s_admin, s_nobody;
RESET es_ledger.snapshot_interval;
SHOW es_ledger.snapshot_interval;

-- 8. es_accounts_at reads es_events in physical order: an account whose
-- later events sit on an earlier page (space freed by VACUUM after a
-- rolled-back batch, reused by a new session) is folded by its index
-- instead, and the answer is the same
BEGIN;
SELECT es_open_account('snap-fill', 'USD') > 0 AS ok;
SELECT count(es_deposit('snap-fill', 1)) AS rolled_back FROM generate_series(1, 3000);
ROLLBACK;
SELECT es_open_account('snap-x', 'USD') > 0 AS ok, es_deposit('snap-x', 1) > 0 AS ok, es_deposit('snap-x', 2) > 0 AS ok;
SELECT clock_timestamp() AS t_mid \gset
VACUUM es_events;
\c
SELECT es_deposit('snap-x', 3) > 0 AS ok, es_deposit('snap-x', 4) > 0 AS ok;
SELECT (array_agg(e.version ORDER BY e.ctid))[1] > 1 AS later_event_first_in_physical_order
  FROM es_events e JOIN es_accounts a USING (account_id) WHERE a.account = 'snap-x';
SELECT count(*) AS differences FROM (
	(SELECT * FROM es_accounts_at(NULL) EXCEPT ALL SELECT * FROM es_accounts)
	UNION ALL
	(SELECT * FROM es_accounts EXCEPT ALL SELECT * FROM es_accounts_at(NULL))) d;
SELECT x.version, x.balance, x = es_replay('snap-x', :'t_mid') AS equals_replay
  FROM es_accounts_at(:'t_mid') x WHERE x.account = 'snap-x';
SELECT bool_and(up) AND count(*) = (SELECT count(*) - 1 FROM es_accounts) AS ordered_by_account_id FROM (
	SELECT account_id < lead(account_id) OVER () AS up FROM es_accounts_at(NULL)) s WHERE up IS NOT NULL;
DROP FUNCTION s_checksum(es_snapshots), s_i(bigint), s_ts(timestamptz), s_b(bytea), s_txt(text),
	s_step(text, text), s_tamper(text);
