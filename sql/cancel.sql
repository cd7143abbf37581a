-- cancel: statement_timeout and cancel stop a long batch in the middle, with
-- 57014, and nothing of it is written.
SELECT es_open_account('cx-a', 'USD') > 0 AS ok;
SELECT count(es_open_account('cx-' || i, 'USD')) AS opened FROM generate_series(0, 49) i;
-- 99,999 deposits over 50 accounts, then a withdrawal no balance can
-- cover (100,000 commands: es_ledger.max_batch_commands).  Run to its end,
-- the batch would fail with ES001; stopped in the middle, it fails with 57014.
CREATE TEMP TABLE c_batch AS
SELECT jsonb_agg(jsonb_build_object('type', 'deposit', 'account', 'cx-' || i % 50, 'amount', 1))
       || jsonb_build_array(jsonb_build_object('type', 'withdraw', 'account', 'cx-a',
                                               'amount', 1000000000)) AS cmds
  FROM generate_series(1, 99999) i;
SELECT jsonb_array_length(cmds) AS commands FROM c_batch;
SELECT count(*) AS events_before FROM es_events \gset
\set VERBOSITY sqlstate
SET statement_timeout = '300ms';
SELECT es_apply(cmds) FROM c_batch;
RESET statement_timeout;
\set VERBOSITY default
SELECT count(*) - :events_before AS events_written FROM es_events;
SELECT sum(balance) AS balance, sum(version) AS versions FROM es_accounts WHERE account LIKE 'cx-%';
-- the same shape of batch, short enough to run to its end, fails on the
-- rule: so the 57014 above came from the middle of the batch
CREATE TEMP TABLE c_short AS
SELECT jsonb_agg(jsonb_build_object('type', 'deposit', 'account', 'cx-' || i % 50, 'amount', 1))
       || jsonb_build_array(jsonb_build_object('type', 'withdraw', 'account', 'cx-a',
                                               'amount', 1000000000)) AS cmds
  FROM generate_series(1, 1000) i;
\set VERBOSITY sqlstate
SELECT es_apply(cmds) FROM c_short;
\set VERBOSITY default
SELECT count(*) - :events_before AS events_written FROM es_events;
-- and the session is fine afterwards
SELECT es_deposit('cx-a', 5) > 0 AS ok;
SELECT balance, version FROM es_accounts WHERE account = 'cx-a';
