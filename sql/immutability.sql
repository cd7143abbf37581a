-- immutability: the log refuses every change, superusers included (ES011).
SELECT current_setting('is_superuser') AS superuser;
SELECT es_open_account('m-a', 'USD') > 0 AS ok;
SELECT es_deposit('m-a', 10) > 0 AS ok;
CREATE TEMP TABLE before AS SELECT count(*) AS n, sum(amount) AS total FROM es_events;
SELECT try($$UPDATE es_events SET amount = amount + 1 RETURNING 1$$);
SELECT try($$DELETE FROM es_events RETURNING 1$$);
SELECT try($$DELETE FROM es_events WHERE seq = (SELECT max(seq) FROM es_events) RETURNING 1$$);
SELECT try($$MERGE INTO es_events e USING (SELECT 1 AS seq) s ON e.seq = s.seq
             WHEN MATCHED THEN UPDATE SET amount = 0$$);
SELECT try($$MERGE INTO es_events e USING (SELECT 1 AS seq) s ON e.seq = s.seq
             WHEN MATCHED THEN DELETE$$);
SELECT try($$TRUNCATE es_events$$);
SELECT try($$TRUNCATE es_events, es_accounts$$);
-- a second TRUNCATE in one transaction takes another path; refused too
BEGIN;
CREATE TABLE t_log (x int) USING es_log;
COMMIT;
BEGIN;
TRUNCATE t_log;
INSERT INTO t_log VALUES (1);
SAVEPOINT s;
TRUNCATE t_log;
ROLLBACK TO SAVEPOINT s;
SELECT count(*) AS kept FROM t_log;
COMMIT;
DROP TABLE t_log;
SELECT try($$INSERT INTO es_events SELECT * FROM es_events LIMIT 1 RETURNING 1$$);
SELECT try($$INSERT INTO es_events (seq, account_id, version, type, amount, data, recorded_at, effective_at, checksum, hash, format)
             VALUES (-1, 1, 99, 'Deposited', 1000000, '{}', now(), now(), 0, '\x00', 1) RETURNING 1$$);
SELECT try($$INSERT INTO es_events (seq, account_id, version, type, amount, data, recorded_at, effective_at, checksum, hash, format)
             VALUES (-3, 1, 98, 'Deposited', 5, '{}', now(), now(), 0, '\x00', 1) ON CONFLICT DO NOTHING RETURNING 1$$);
COPY es_events (seq, account_id, version, type, amount, data, recorded_at, effective_at, checksum, hash, format) FROM stdin;
-2	1	100	Deposited	5	{}	2026-01-01 00:00:00+00	2026-01-01 00:00:00+00	0	\\x00	1
\.
\echo :LAST_ERROR_SQLSTATE
VACUUM FULL es_events;
\echo :LAST_ERROR_SQLSTATE
SELECT try($$CLUSTER es_events USING es_events_pkey$$);
SELECT try($$ALTER TABLE es_events ALTER COLUMN amount TYPE numeric$$);
SELECT try($$ALTER TABLE es_events DROP COLUMN data$$);
SELECT try($$ALTER TABLE es_events SET ACCESS METHOD heap$$);
SELECT try($$ALTER TABLE es_events ADD COLUMN r float8 DEFAULT random()$$);
SELECT try($$ALTER TABLE es_events RENAME TO x$$);
-- the log is unchanged
SELECT count(*) = n AND sum(amount) = total AS unchanged FROM es_events, before GROUP BY n, total;

-- what keeps working: plain VACUUM (freezing), ANALYZE, indexes, row locks, TOAST
VACUUM (FREEZE) es_events;
ANALYZE es_events;
CREATE INDEX es_events_type_idx ON es_events (type);
CREATE INDEX CONCURRENTLY es_events_type_idx2 ON es_events (type, seq);
REINDEX TABLE es_events;
REINDEX TABLE CONCURRENTLY es_events;
DROP INDEX es_events_type_idx, es_events_type_idx2;
SELECT count(*) > 0 AS locked FROM (SELECT seq FROM es_events ORDER BY seq LIMIT 3 FOR UPDATE) s;
SELECT count(*) > 0 AS locked FROM (SELECT seq FROM es_events ORDER BY seq LIMIT 3 FOR KEY SHARE) s;
SET es_ledger.max_metadata_bytes = '1MB';	-- the default is 8kB
SELECT es_apply(jsonb_build_object('type', 'deposit', 'account', 'm-a', 'amount', 1,
       'metadata', jsonb_build_object('blob', repeat(md5('x'), 20000)))) > 0 AS big_ok;
RESET es_ledger.max_metadata_bytes;
SELECT length(data -> 'metadata' ->> 'blob') FROM es_events
 WHERE seq = (SELECT last_seq FROM es_accounts WHERE account = 'm-a');
SELECT a.amname FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid JOIN pg_am a ON a.oid = t.relam
 WHERE c.relname = 'es_events';
-- a parallel btree build goes through the es_log scan too
SET max_parallel_maintenance_workers = 2;
SET min_parallel_table_scan_size = 0;
CREATE INDEX es_events_par_idx ON es_events (account_id, seq);
DROP INDEX es_events_par_idx;
RESET max_parallel_maintenance_workers;
RESET min_parallel_table_scan_size;

-- other es_log tables are append-only too, but accept INSERT and COPY
CREATE TABLE audit (id int PRIMARY KEY, note text) USING es_log;
INSERT INTO audit VALUES (1, 'one'), (2, 'two');
COPY audit FROM stdin;
3	three
\.
INSERT INTO audit VALUES (3, 'again') ON CONFLICT DO NOTHING;
SELECT * FROM audit ORDER BY id;
SELECT try($$UPDATE audit SET note = 'x' RETURNING 1$$);
SELECT try($$DELETE FROM audit RETURNING 1$$);
SELECT try($$INSERT INTO audit VALUES (3, 'x') ON CONFLICT (id) DO UPDATE SET note = 'x' RETURNING 1$$);
SELECT try($$TRUNCATE audit$$);
-- every rewrite of an es_log table is refused by the table_rewrite guard
SELECT try($$ALTER TABLE audit ADD COLUMN r float8 DEFAULT random()$$);
SELECT try($$ALTER TABLE audit SET UNLOGGED$$);
SELECT try($$ALTER TABLE audit ALTER COLUMN note TYPE varchar(3)$$);
ALTER TABLE audit ADD COLUMN extra int;   -- no rewrite: allowed
SELECT count(*) FROM audit;
-- TRUNCATE of an empty es_log table is allowed (pg_restore sends one), as is
-- creating and truncating in one transaction
CREATE TABLE empty_log (x int) USING es_log;
TRUNCATE empty_log;
BEGIN;
CREATE TABLE new_log (x int) USING es_log;
INSERT INTO new_log VALUES (1);
TRUNCATE new_log;
COMMIT;
SELECT count(*) FROM new_log;
DROP TABLE audit, empty_log, new_log;
