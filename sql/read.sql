-- read: following the log with es_read and NOTIFY es_events.  es_read
-- returns the committed events of finished transactions in (tx, seq)
-- order with a cursor per row; paging with the last cursor gives every
-- event exactly once.  (Concurrent writers, aborts and a transaction held
-- open: test/t/013_follow.pl.)
SELECT es_open_account('rd-a', 'USD') > 0 AS ok, es_open_account('rd-b', 'USD') > 0 AS ok;
SELECT es_deposit('rd-a', 100) > 0 AS ok;
-- a batch: several events in one transaction
SELECT es_apply('[{"type": "deposit", "account": "rd-b", "amount": 5},
                  {"type": "transfer", "from": "rd-a", "to": "rd-b", "amount": 7}]') > 0 AS ok;

-- rd_page_all(page, start): every event after cursor start (NULL: from the
-- beginning), read in pages of page events, each call continuing after the
-- last cursor, numbered in the order received
CREATE FUNCTION rd_page_all(page int, start text DEFAULT NULL)
RETURNS TABLE(n bigint, cursor text, seq bigint)
LANGUAGE plpgsql AS $$
DECLARE c text := start; r record; got int; k bigint := 0;
BEGIN
	LOOP
		got := 0;
		FOR r IN SELECT * FROM es_read(c, page) LOOP
			k := k + 1; n := k; cursor := r.cursor; seq := r.seq; c := r.cursor; got := got + 1;
			RETURN NEXT;
		END LOOP;
		EXIT WHEN got < page;
	END LOOP;
END $$;

-- the whole log (earlier tests wrote over 100,000 events): every committed
-- event, once, in (tx, seq) order
CREATE TEMP TABLE rd_all AS SELECT * FROM rd_page_all(100000);
SELECT (SELECT count(*) FROM rd_all) = (SELECT count(*) FROM es_events) AS all_events,
       (SELECT count(DISTINCT seq) FROM rd_all) = (SELECT count(*) FROM es_events) AS each_once;
SELECT bool_and(r.n = e.n) AS tx_seq_order
  FROM rd_all r JOIN (SELECT row_number() OVER (ORDER BY tx, seq) AS n, seq FROM es_events) e USING (seq);
SELECT bool_and(cursor ~ '^es1:[1-9][0-9]*:[1-9][0-9]*:[0-9a-f]{8}$') AS cursor_format,
       count(DISTINCT cursor) = count(*) AS cursors_distinct FROM rd_all;
-- the cursor holds the event's (tx, seq)
SELECT bool_and(split_part(r.cursor, ':', 2) = e.tx::text AND split_part(r.cursor, ':', 3) = e.seq::text)
       AS cursor_is_tx_seq
  FROM rd_all r JOIN es_events e USING (seq);
-- the columns are the event's
SELECT count(*) > 0 AS some_rows,
       bool_and((r.account_id, r.version, r.type, r.amount, r.data, r.command_id, r.recorded_at, r.effective_at)
             IS NOT DISTINCT FROM (e.account_id, e.version, e.type, e.amount, e.data, e.command_id, e.recorded_at, e.effective_at))
       AS same_columns
  FROM es_read(NULL, 1000) r JOIN es_events e USING (seq);
-- the default max_count is 1000; the default cursor is the start
SELECT count(*) = least(1000, (SELECT count(*) FROM es_events)) AS default_page FROM es_read();

-- paging: the last 100 events in pages of 1, 3 and 7 events, each call
-- continuing after the last cursor, are those of one call
SELECT greatest(count(*) - 100, 1) AS k FROM rd_all \gset
SELECT cursor AS start FROM rd_all WHERE n = :k \gset
SELECT p AS page,
       (SELECT array_agg(seq ORDER BY n) FROM rd_page_all(p, :'start'))
       = (SELECT array_agg(seq ORDER BY n) FROM rd_all WHERE n > :k) AS same_as_one_call
  FROM unnest(ARRAY[1, 3, 7]) p;
-- round trip: the rows after row k's cursor are the rows after k
SELECT k - :k AS k_from_end, (SELECT array_agg(seq ORDER BY n) FROM rd_all WHERE n > k)
          = (SELECT array_agg(r.seq) FROM es_read((SELECT cursor FROM rd_all WHERE n = k), 100000) r) AS continues
  FROM unnest(ARRAY[:k + 1, :k + 2, :k + 98]) k;
-- the last cursor: nothing more, until a new transaction commits
SELECT cursor AS last_cursor FROM rd_all ORDER BY n DESC LIMIT 1 \gset
SELECT count(*) AS after_last FROM es_read(:'last_cursor');
SELECT es_deposit('rd-a', 1) AS new_seq \gset
SELECT seq = :new_seq AS the_new_event, count(*) OVER () AS rows FROM es_read(:'last_cursor');

-- the reader's own open transaction: its events come after it commits
SELECT cursor AS last_cursor FROM es_read(:'last_cursor') \gset
BEGIN;
SELECT es_deposit('rd-a', 2) AS own_seq \gset
SELECT count(*) AS own_events_not_yet FROM es_read(:'last_cursor');
COMMIT;
SELECT seq = :own_seq AS own_event_after_commit FROM es_read(:'last_cursor');
-- a rolled-back transaction's events are never returned
SELECT cursor AS last_cursor FROM es_read(:'last_cursor') \gset
BEGIN;
SELECT es_deposit('rd-a', 3) > 0 AS ok;
ROLLBACK;
SELECT count(*) AS rolled_back_never FROM es_read(:'last_cursor');
-- REPEATABLE READ: the transaction's snapshot bounds every call in it
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) AS rr_first FROM es_read(:'last_cursor');
SELECT count(*) AS rr_again FROM es_read(:'last_cursor');
COMMIT;

-- malformed cursors: 22023, the cursor shown at most once and truncated
-- rd_cursor(tx, seq) builds a cursor as es_read does (CRC-32C), to forge
-- well-formed ones
CREATE FUNCTION rd_crc32c(s text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE crc bigint := 4294967295;
BEGIN
	FOR i IN 1..length(s) LOOP
		crc := crc # ascii(substr(s, i, 1));
		FOR k IN 1..8 LOOP
			IF crc & 1 = 1 THEN crc := (crc >> 1) # 2197175160; ELSE crc := crc >> 1; END IF;
		END LOOP;
	END LOOP;
	RETURN lpad(to_hex(crc # 4294967295), 8, '0');
END $$;
CREATE FUNCTION rd_cursor(tx text, seq text, version text DEFAULT 'es1') RETURNS text LANGUAGE sql
AS $$ SELECT version || ':' || tx || ':' || seq || ':' || rd_crc32c(version || ':' || tx || ':' || seq) $$;
SELECT bool_and(rd_cursor(split_part(cursor, ':', 2), split_part(cursor, ':', 3)) = cursor) AS forge_matches FROM rd_all;
SELECT left(c, 44) AS cursor, try(format('SELECT count(*)::text FROM es_read(%L)', c)) AS result
  FROM unnest(ARRAY[
	'', 'garbage', 'es1', 'es1:', 'es1:::', 'es1:1:1', 'es1:1:1:', ':1:1:00000000',
	'es2:1:1:00000000', rd_cursor('1000', '1', 'es2'), 'ES1:1:1:00000000',
	rd_cursor('-5', '1'), rd_cursor('5', '-1'), rd_cursor('5', '0'), rd_cursor('+5', '1'),
	rd_cursor(' 5', '1'), rd_cursor('05', '1'), rd_cursor('5', '01'), rd_cursor('5.0', '1'),
	rd_cursor('0', '1'), rd_cursor('2', '1'),
	rd_cursor('18446744073709551616', '1'), rd_cursor('99999999999999999999999', '1'),
	rd_cursor('5', '9223372036854775808'), rd_cursor('5', '1e3'),
	'es1:5:1:' || upper(rd_crc32c('es1:5:1')), 'es1:5:1:00000000', 'es1:5:1:' || rd_crc32c('es1:5:1') || ' ',
	'es1:5:1:' || rd_crc32c('es1:5:2'), 'es1:5:1:' || rd_crc32c('es1:5:1') || '0',
	'es1:5:' || repeat('9', 1000) || ':00000000', repeat('x', 100000)]) c;
-- the errors say why
SELECT * FROM es_read('es2:1:1:00000000');
SELECT * FROM es_read('es1:5:1:00000000');
SELECT * FROM es_read('es1:5:1:07667455x');
-- a long cursor is shown cut on a character boundary, never in the middle
-- of a multibyte character (the message must stay valid text)
SELECT try(format('SELECT count(*)::text FROM es_read(%L)', repeat('a', 52) || 'é'))
       = '22023: invalid es_read cursor "' || repeat('a', 52) || '..."' AS cut_on_a_character;
-- well-formed cursors this log never returned: 55000
SELECT e.tx::text AS some_tx, e.seq AS some_seq FROM es_events e ORDER BY seq DESC LIMIT 1 \gset
SELECT regexp_replace(try(format('SELECT count(*)::text FROM es_read(%L)', rd_cursor(:'some_tx', '9223372036854775807'))),
                      '"es1:[^"]*"', '"..."') AS no_such_event;
SELECT regexp_replace(try(format('SELECT count(*)::text FROM es_read(%L)', rd_cursor('3', :'some_seq'))),
                      '"es1:[^"]*"', '"..."') AS other_tx;
SELECT * FROM es_read(rd_cursor('5', '9223372036854775807'));
SELECT regexp_replace(try(format('SELECT count(*)::text FROM es_read(%L)', rd_cursor('18446744073709551615', :'some_seq'))),
                      '"es1:[^"]*"', '"..."') AS future_tx;
-- max_count: 1 to 100000
SELECT m, try(format('SELECT count(*)::text FROM es_read(NULL, %s)', m)) AS result
  FROM unnest(ARRAY['0', '-1', '100001', '2147483647', 'NULL', '1', '100000']) m;

-- the index es_read walks is the extension's: it cannot be dropped
SELECT try($$DROP INDEX es_events_tx_seq_idx$$) AS drop_index;

-- roles: readers may follow the log; PUBLIC and a role without grants not
CREATE ROLE rd_nobody;
CREATE ROLE rd_reader IN ROLE es_ledger_reader;
SELECT has_function_privilege('public', 'es_read(text, int, text, text[])', 'EXECUTE') AS public_may,
       has_function_privilege('es_ledger_reader', 'es_read(text, int, text, text[])', 'EXECUTE') AS reader_may;
SET ROLE rd_reader;
SELECT try($$SELECT (count(*) > 0)::text FROM es_read(NULL, 10)$$) AS reader;
SELECT try($$SET es_ledger.notify = off$$) AS reader_sets_notify;
RESET ROLE;
SET ROLE rd_nobody;
SELECT try($$SELECT count(*)::text FROM es_read(NULL, 10)$$) AS nobody;
RESET ROLE;
DROP ROLE rd_nobody, rd_reader;

-- NOTIFY es_events: one notification per committed transaction that
-- appended, its payload the greatest seq it wrote; none for a rollback, a
-- rolled-back savepoint's seqs not counted, none for a transaction that
-- only read.  psql prints a notification after the command that received
-- it; the output goes to a file, printed below without the sender's PID.
LISTEN es_events;
SELECT '/tmp/es_ledger_read_notify_' || pg_backend_pid() || '.out' AS nf \gset
\o :nf
SELECT es_deposit('rd-a', 10) AS n1 \gset
\qecho n1 :n1
BEGIN;
SELECT es_deposit('rd-a', 11) > 0;
SELECT es_transfer('rd-a', 'rd-b', 1) AS n2 \gset
SELECT es_deposit('rd-b', 12) AS n3 \gset
COMMIT;
\qecho n3 :n3
BEGIN;
SELECT es_deposit('rd-a', 13) > 0;
ROLLBACK;
\qecho rolled back
BEGIN;
SELECT es_deposit('rd-a', 14) AS n4 \gset
SAVEPOINT s;
SELECT es_deposit('rd-a', 15) > 0;
ROLLBACK TO SAVEPOINT s;
COMMIT;
\qecho n4 :n4
-- a savepoint that rolled back after the last append: its seq is not the payload
BEGIN;
SELECT es_deposit('rd-a', 16) AS n5 \gset
SAVEPOINT s1;
SELECT es_deposit('rd-a', 17) > 0;
SAVEPOINT s2;
SELECT es_deposit('rd-b', 18) > 0;
RELEASE SAVEPOINT s2;
ROLLBACK TO SAVEPOINT s1;
COMMIT;
\qecho n5 :n5
-- nested savepoints released: the inner append counts
BEGIN;
SAVEPOINT s1;
SAVEPOINT s2;
SELECT es_deposit('rd-b', 19) AS n6 \gset
RELEASE SAVEPOINT s2;
RELEASE SAVEPOINT s1;
COMMIT;
\qecho n6 :n6
SELECT count(*) > 0 FROM es_read(NULL, 10);
\qecho read only
-- es_ledger.notify off (superusers only): no notification
SET es_ledger.notify = off;
SELECT es_deposit('rd-a', 20) > 0;
RESET es_ledger.notify;
\qecho notify off
\o
UNLISTEN es_events;
SELECT regexp_replace(regexp_replace(pg_read_file(:'nf'), 'PID \d+', 'PID N', 'g'), '\d{2,}', 'N', 'g') AS output;
-- each notification's payload is the seq echoed just after it
SELECT bool_and(m[2] = m[1]) AS payloads_are_last_seqs, count(*) AS notifications
  FROM regexp_matches(pg_read_file(:'nf'), 'Asynchronous notification "es_events" with payload "(\d+)"[^\n]*\nn\d (\d+)', 'g') m;
\setenv ES_READ_NOTIFY_FILE :nf
\! rm -f "$ES_READ_NOTIFY_FILE"
\setenv ES_READ_NOTIFY_FILE

-- ---------------------------------------------------------------------------
-- es_read by name and filter (issue 18, "Reading").  Each row carries its
-- account's name; for_account and event_types keep only some events; a
-- filtered call scans at most 10 * max_count events and, when its scan went
-- past the last event it returns, ends with a checkpoint row (the cursor of
-- the last event scanned, every other column NULL), so a follower with a
-- filter advances through the events it does not want and never reads them
-- again.
-- ---------------------------------------------------------------------------
-- the name column: every event of the log names its account as es_accounts does
SELECT count(*) > 0 AS some,
       count(*) FILTER (WHERE r.account IS DISTINCT FROM a.account) AS misnamed
  FROM es_read(NULL, 100000) r LEFT JOIN es_accounts a USING (account_id);
SELECT es_open_account('rf-mark', 'USD') > 0 AS ok;
-- start: the cursor of rf-mark's opening (a filtered read of the whole log)
SELECT cursor AS rf_start FROM es_read(NULL, 100000, 'rf-mark') WHERE seq IS NOT NULL \gset
SELECT es_open_account('rf-a', 'USD') > 0 AS ok, es_open_account('rf-b', 'USD') > 0 AS ok;
SELECT es_deposit('rf-a', 100) > 0 AS ok;
SELECT es_transfer('rf-a', 'rf-b', 10) > 0 AS ok;
SELECT es_apply('[{"type": "deposit", "account": "rf-b", "amount": 5},
                  {"type": "withdraw", "account": "rf-a", "amount": 1},
                  {"type": "deposit", "account": "rf-mark", "amount": 2}]') > 0 AS ok;
SELECT es_apply('{"type": "freeze_account", "account": "rf-b"}') > 0 AS ok;
SELECT es_apply('{"type": "unfreeze_account", "account": "rf-b"}') > 0 AS ok;
DO $$ BEGIN FOR i IN 1..12 LOOP PERFORM es_deposit('rf-a', i); END LOOP; END $$;
-- unfiltered after start: every event with its account's name
SELECT account, version, type, amount FROM es_read(:'rf_start', 100) ORDER BY seq;

-- rd_follow(page, start, acc, types): a follower with a filter, which saves
-- the cursor of the last row of each call (an event or a checkpoint) and
-- stops when a call returns no row; numbered rows, checkpoints included
CREATE FUNCTION rd_follow(page int, start text, acc text, types text[])
RETURNS TABLE(n bigint, call int, cursor text, seq bigint, account text, type text)
LANGUAGE plpgsql AS $$
DECLARE c text := start; r record; got int; k bigint := 0; calls int := 0;
BEGIN
	LOOP
		got := 0;
		calls := calls + 1;
		FOR r IN SELECT * FROM es_read(c, page, acc, types) LOOP
			k := k + 1; n := k; call := calls; cursor := r.cursor; seq := r.seq;
			account := r.account; type := r.type; c := r.cursor; got := got + 1;
			RETURN NEXT;
		END LOOP;
		EXIT WHEN got = 0;
		IF calls > 1000 THEN RAISE 'no progress'; END IF;
	END LOOP;
END $$;
-- one account, pages of 1: every event of rf-b exactly once, in es_read's
-- order, and a checkpoint whenever the scan of 10 events passed events of others
SELECT (SELECT array_agg(seq ORDER BY n) FROM rd_follow(1, :'rf_start', 'rf-b', NULL) WHERE seq IS NOT NULL)
     = (SELECT array_agg(seq) FROM es_read(:'rf_start', 100) WHERE account = 'rf-b') AS rf_b_once_in_order;
SELECT f.n, f.call, f.seq IS NULL AS checkpoint, f.account, e.version, f.type
  FROM rd_follow(1, :'rf_start', 'rf-b', NULL) f LEFT JOIN es_events e USING (seq) ORDER BY f.n;
-- the rows of a filter are exactly the unfiltered rows that pass it, for
-- every page size and filter
SELECT p, f.acc, f.types,
       (SELECT coalesce(array_agg(seq ORDER BY n), '{}') FROM rd_follow(p, :'rf_start', f.acc, f.types) WHERE seq IS NOT NULL)
     = (SELECT coalesce(array_agg(seq), '{}') FROM es_read(:'rf_start', 100) r
         WHERE (f.acc IS NULL OR r.account = f.acc) AND (f.types IS NULL OR r.type = ANY (f.types))) AS same
  FROM (VALUES (1), (2), (3), (1000)) AS ps(p),
       (VALUES ('rf-a', NULL::text[]), (NULL, '{Deposited}'), ('rf-a', '{Deposited,Withdrawn}'),
               ('rf-mark', '{Deposited}'), (NULL, '{TransferSent,TransferReceived,AccountFrozen}'),
               ('rf-b', '{LimitsChanged}')) AS f(acc, types)
 ORDER BY 1, 2, 3;
-- a filter nothing passes still advances: one checkpoint row per call, at
-- most 10 * max_count events further on, then to the last event, then no row
SELECT (SELECT cursor FROM es_read(:'rf_start', 100) ORDER BY seq DESC LIMIT 1) AS rf_last \gset
SELECT count(*) AS rows, bool_and(seq IS NULL AND account IS NULL AND type IS NULL AND data IS NULL) AS all_null,
       max(cursor) = (SELECT cursor FROM es_read(:'rf_start', 10) OFFSET 9) AS tenth_event
  FROM es_read(:'rf_start', 1, 'rf-a', '{LimitsChanged}');
SELECT call, seq, cursor = :'rf_last' AS at_last FROM rd_follow(1, :'rf_start', 'rf-a', '{LimitsChanged}') ORDER BY n;
SELECT count(*) AS after_last FROM es_read(:'rf_last', 1000, 'rf-a', '{LimitsChanged}');
-- without a filter no checkpoint row comes, whatever the page
SELECT count(*) FILTER (WHERE seq IS NULL) AS checkpoints FROM rd_follow(1, :'rf_start', NULL, NULL);
-- named arguments
SELECT count(*) AS deposits_of_rf_a FROM es_read(:'rf_start', event_types => '{Deposited}', for_account => 'rf-a') WHERE seq IS NOT NULL;
-- errors: an unknown account (ES003, as es_history), unknown, null or no types (22023)
SELECT try($$SELECT count(*) FROM es_read(NULL, 10, 'rf-nobody')$$);
SELECT try($$SELECT count(*) FROM es_read(NULL, 10, NULL, '{Deposited,Paid}')$$);
SELECT try($$SELECT count(*) FROM es_read(NULL, 10, NULL, '{Deposited,NULL}')$$);
SELECT try($$SELECT count(*) FROM es_read(NULL, 10, NULL, '{}')$$);
SELECT try($$SELECT count(*) FROM es_read(NULL, 10, NULL, '{{Deposited},{Withdrawn}}')$$);
SELECT * FROM es_read(NULL, 10, NULL, '{Paid}');
DROP FUNCTION rd_follow(int, text, text, text[]);
