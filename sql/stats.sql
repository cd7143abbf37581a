-- stats: the operator's view es_stats (issue 18, item 4).  Its sections are
-- checked against what they summarize (the log, es_accounts, es_snapshots,
-- es_projections, es_transfers), in the same statement, so the checks hold
-- whatever ran before.  The counters (commands applied by type, rejections
-- by SQLSTATE since es_stats_reset) live in shared memory: with
-- shared_preload_libraries = 'es_ledger' (the second pg_regress run of
-- .ci/test) they must match the commands made here; without it es_stats
-- says so in one row and es_stats_reset returns NULL.  Each check prints
-- the same either way.  (Under a running workload: test/t/024_stats.pl.)
-- the sections that are there whatever the build (commands and rejections: with preload)
SELECT DISTINCT section FROM es_stats WHERE section NOT IN ('commands', 'rejections') ORDER BY 1;
-- the note without preload, none with it
SELECT CASE value WHEN 0 THEN detail LIKE 'es_ledger is not in shared_preload_libraries%'
                  WHEN 1 THEN detail IS NULL END AS preloaded_row_ok
  FROM es_stats WHERE section = 'counters' AND key = 'preloaded';
SELECT value AS preloaded FROM es_stats WHERE section = 'counters' AND key = 'preloaded' \gset
SELECT (es_stats_reset() IS NULL) = (:preloaded = 0) AS reset_null_iff_not_preloaded;
-- after the reset: every command type counts 0, no rejection
SELECT :preloaded = 0 OR (
        (SELECT count(*) FROM es_stats WHERE section = 'commands' AND value = 0) = 10
    AND NOT EXISTS (SELECT FROM es_stats WHERE section = 'rejections')
    AND (SELECT value FROM es_stats WHERE section = 'counters' AND key = 'since') BETWEEN 0 AND 5) AS counters_zeroed;

-- commands: 4 applied (2 opens, a deposit, a transfer), then rejections:
-- ES001 twice, ES003 once, ES009 once (a malformed command, counted even
-- when the caller catches it), 42501 once (a writer opening with credit), and
-- es_apply_each's own: one ES003 row and one deposit applied
SELECT es_open_account('st-a', 'USD') > 0 AS ok, es_open_account('st-b', 'USD') > 0 AS ok;
SELECT es_deposit('st-a', 9000000000000) > 0 AS ok;
SELECT es_transfer('st-a', 'st-b', 10) > 0 AS ok;
SELECT try($$SELECT es_withdraw('st-b', 11)::text$$);
SELECT try($$SELECT es_transfer('st-b', 'st-a', 100)::text$$);
SELECT try($$SELECT es_deposit('st-nobody', 1)::text$$);
SELECT try($$SELECT es_apply('{"type": "deposit", "account": "st-a", "amount": 1, "description": "x"}')::text$$);
CREATE ROLE st_writer IN ROLE es_ledger_writer;
SET ROLE st_writer;
SELECT try($$SELECT es_open_account('st-c', 'USD', overdraft_limit => 5)::text$$);
RESET ROLE;
-- a role without EXECUTE is refused by PostgreSQL before es_ledger runs: not counted
CREATE ROLE st_nobody;
SET ROLE st_nobody;
SELECT try($$SELECT es_deposit('st-a', 1)::text$$) LIKE '42501:%' AS refused;
RESET ROLE;
SELECT ord, seq > 0 AS applied, sqlstate FROM es_apply_each('[{"type": "deposit", "account": "st-nobody", "amount": 1},
                                                            {"type": "deposit", "account": "st-b", "amount": 1}]');
SELECT :preloaded = 0 OR (SELECT jsonb_object_agg(key, value) FROM es_stats WHERE section = 'commands' AND value > 0)
                       = '{"open_account": 2, "deposit": 2, "transfer": 1}' AS commands_counted;
SELECT :preloaded = 0 OR (SELECT jsonb_object_agg(key, value) FROM es_stats WHERE section = 'rejections')
                       = '{"ES001": 2, "ES003": 2, "ES009": 1, "42501": 1}' AS rejections_counted;
SELECT :preloaded = 0 OR (SELECT detail FROM es_stats WHERE section = 'rejections' AND key = 'ES001')
                       = 'insufficient funds' AS meaning_shown;
-- a reset zeroes them again
SELECT (es_stats_reset() IS NULL) = (:preloaded = 0) AS reset_again;
SELECT count(*) FILTER (WHERE section = 'rejections' OR (section = 'commands' AND value > 0)) AS counted_after_reset
  FROM es_stats;

-- events: the log's events by type, exactly
SELECT (SELECT jsonb_object_agg(key, value) FROM es_stats WHERE section = 'events')
     = (SELECT jsonb_object_agg(type, n) FROM (SELECT type, count(*) AS n FROM es_events GROUP BY type) x) AS events_match_log;
-- accounts: the ten with the most events (their version), in that order
SELECT (SELECT array_agg(key || '=' || value) FROM es_stats WHERE section = 'accounts')
     = (SELECT array_agg(account || '=' || version) FROM (SELECT account, version FROM es_accounts
                                                          ORDER BY version DESC, account_id LIMIT 10) x) AS busiest_accounts;
-- snapshots: coverage moves when an account gets one
SELECT value AS covered_before FROM es_stats WHERE section = 'snapshots' AND key = 'covered' \gset
SELECT es_snapshot('st-a') > 0 AS ok;
SELECT value - :covered_before AS newly_covered FROM es_stats WHERE section = 'snapshots' AND key = 'covered';
SELECT (SELECT jsonb_object_agg(key, value) FROM es_stats WHERE section = 'snapshots')
     = (SELECT jsonb_build_object('accounts', count(*), 'covered', count(s.top),
                                  'events_past_snapshot', coalesce(sum(a.version - coalesce(s.top, 0)), 0),
                                  'most_past_snapshot', coalesce(max(a.version - coalesce(s.top, 0)), 0))
          FROM es_accounts a LEFT JOIN (SELECT account_id, max(version) AS top FROM es_snapshots GROUP BY 1) s
            USING (account_id)) AS snapshots_match;
-- projections: one row per projection, its lag and state
CREATE FUNCTION st_handler(ev es_events) RETURNS void LANGUAGE plpgsql AS $$ BEGIN END $$;
SELECT es_projection_create('st_proj', 'st_handler(es_events)', 'async') = 0 AS ok;
SELECT es_projection_pause('st_proj');
-- (its lag is the seqs between the head of the log and the largest applied:
-- one index probe, an upper bound of es_projections.lag_events, which counts)
SELECT count(*) AS rows,
       count(*) FILTER (WHERE s.value IS DISTINCT FROM (SELECT max(seq) FROM es_events) - r.high_seq) AS differ,
       bool_and(s.value >= p.lag_events AND s.value > 0) AS bounds_lag_events,
       bool_and(s.detail LIKE 'async paused, lag %') AS detail_says_state
  FROM es_projections p JOIN es_projection_registry r USING (name)
  LEFT JOIN es_stats s ON s.section = 'projections' AND s.key = p.name
 WHERE p.name = 'st_proj';
SELECT es_projection_drop('st_proj');
-- pending: the open reservations counted, the largest ten by amount
SELECT es_apply(format('{"type": "transfer", "from": "st-a", "to": "st-b", "amount": %s, "pending": true, "id": "st-p%s"}',
                       n * 1000000000000, n)::jsonb) > 0 AS ok
  FROM generate_series(1, 3) n;
SELECT key, value, detail LIKE 'st-a -> st-b, expires %' AS detail_ok
  FROM es_stats WHERE section = 'pending' AND key LIKE 'st-p%' ORDER BY value DESC;
SELECT value = (SELECT count(*) FROM es_transfers WHERE status = 'pending') AS open_count
  FROM es_stats WHERE section = 'pending' AND key = 'open';
SELECT es_apply('{"type": "void_pending", "pending_id": "st-p3"}') > 0 AS ok;
SELECT count(*) AS st_p3_rows FROM es_stats WHERE section = 'pending' AND key = 'st-p3';

-- grants: readers see the view, only admins reset; PUBLIC neither
SELECT has_table_privilege('public', 'es_stats', 'SELECT') AS public_select,
       has_table_privilege('es_ledger_reader', 'es_stats', 'SELECT') AS reader_select,
       has_function_privilege('public', 'es_stats_reset()', 'EXECUTE') AS public_reset,
       has_function_privilege('es_ledger_reader', 'es_stats_reset()', 'EXECUTE') AS reader_reset,
       has_function_privilege('es_ledger_writer', 'es_stats_reset()', 'EXECUTE') AS writer_reset,
       has_function_privilege('es_ledger_admin', 'es_stats_reset()', 'EXECUTE') AS admin_reset,
       has_function_privilege('public', 'es_stats_counters()', 'EXECUTE') AS public_counters;
CREATE ROLE st_reader IN ROLE es_ledger_reader;
SET ROLE st_reader;
SELECT count(*) > 0 AS reader_reads FROM es_stats;
SELECT try($$SELECT es_stats_reset()::text$$) LIKE '42501:%' AS reader_cannot_reset;
RESET ROLE;
SET ROLE st_nobody;
SELECT try($$SELECT count(*)::text FROM es_stats$$) AS nobody;
RESET ROLE;
DROP ROLE st_reader;
DROP ROLE st_nobody;
DROP ROLE st_writer;
DROP FUNCTION st_handler(es_events);
