-- first_app (issue 18): what a first application needs.
-- 1. es_ledger_writer opens accounts without credit, and only those.
CREATE ROLE fa_writer IN ROLE es_ledger_writer;
CREATE ROLE fa_reader IN ROLE es_ledger_reader;
SET ROLE fa_writer;
SELECT es_open_account('fa-1', 'EUR', id => 'fa-open-1') AS s \gset
SELECT try($$SELECT es_open_account('fa-2', 'EUR', 0, NULL)$$) ~ '^[0-9]+$' AS ok;
SELECT try($$SELECT es_apply('{"type":"open_account","account":"fa-3","currency":"EUR","overdraft_limit":0,"max_balance":null}')$$) ~ '^[0-9]+$' AS ok;
-- credit or a cap needs an admin, and writes nothing
SELECT try($$SELECT es_open_account('fa-x', 'EUR', 1)$$);
SELECT try($$SELECT es_open_account('fa-x', 'EUR', max_balance => 0)$$);
SELECT try($$SELECT es_apply('{"type":"open_account","account":"fa-x","currency":"EUR","max_balance":5}')$$);
SELECT ord, seq IS NOT NULL AS applied, sqlstate FROM es_apply_each(
	'[{"type":"open_account","account":"fa-4","currency":"EUR"},
	  {"type":"open_account","account":"fa-x","currency":"EUR","overdraft_limit":10}]');
-- a batch with one credited open is refused whole
SELECT try($$SELECT es_apply('[{"type":"open_account","account":"fa-y","currency":"EUR"},{"type":"open_account","account":"fa-x","currency":"EUR","overdraft_limit":10}]')$$);
-- the rest of administration stays the admin's
SELECT try($$SELECT es_apply('{"type":"set_limits","account":"fa-1","overdraft_limit":0,"max_balance":null}')$$);
SELECT try($$SELECT es_apply('{"type":"freeze_account","account":"fa-1"}')$$);
RESET ROLE;
-- an admin opens accounts with or without credit
CREATE ROLE fa_admin IN ROLE es_ledger_admin;
SET ROLE fa_admin;
SELECT es_open_account('fa-6', 'EUR') > 0 AS ok;
SELECT es_open_account('fa-7', 'EUR', 100, 1000) > 0 AS ok;
-- ... and being allowed to open does not let it move money
SELECT ord, seq IS NOT NULL AS applied, sqlstate FROM es_apply_each(
	'[{"type":"open_account","account":"fa-8","currency":"EUR"},
	  {"type":"deposit","account":"fa-8","amount":1}]');
SELECT try($$SELECT es_apply('[{"type":"open_account","account":"fa-9","currency":"EUR"},{"type":"deposit","account":"fa-6","amount":1}]')$$);
RESET ROLE;
SELECT count(*) AS no_fa_x FROM es_events WHERE data->>'account' IN ('fa-x', 'fa-y', 'fa-9');
SELECT account, overdraft_limit, max_balance FROM es_accounts WHERE account LIKE 'fa-%' ORDER BY 1;

-- 2. what a call returns finds its rows
SET ROLE fa_reader;
SELECT account FROM es_account_of(:s);
RESET ROLE;
SELECT es_deposit('fa-1', 1000) > 0 AS ok;
SELECT es_transfer('fa-1', 'fa-2', 10) AS t \gset
SELECT count(*) AS rows, bool_and(seq < :t) AS keyed_by_first_event, min(amount) AS amount,
	   min(from_account) AS from, min(to_account) AS to FROM es_transfer_of(:t);
SELECT count(*) AS rows, min(amount) FROM es_transfer_of((SELECT seq FROM es_transfers WHERE seq < :t ORDER BY seq DESC LIMIT 1));
SELECT es_transfer('fa-1', 'fa-2', 11, 'fa-t1') AS t \gset
SELECT transfer_id, amount FROM es_transfer_of(:t);
-- in a batch, each received event finds its own transfer
SELECT es_apply('[{"type":"transfer","from":"fa-1","to":"fa-2","amount":1},
                  {"type":"transfer","from":"fa-1","to":"fa-2","amount":2}]') AS t \gset
SELECT amount FROM es_transfer_of(:t);
SELECT amount FROM es_transfer_of(:t - 2);
-- pending: the reservation, the post and the void name the same row
SELECT es_apply('{"type":"transfer","from":"fa-1","to":"fa-2","amount":5,"pending":true,"id":"fa-p1"}') AS p \gset
SELECT transfer_id, status FROM es_transfer_of(:p);
SELECT es_apply('{"type":"void_pending","pending_id":"fa-p1"}') AS v \gset
SELECT transfer_id, status FROM es_transfer_of(:v);
-- a seq of something else finds no transfer; an unknown seq nothing
SELECT count(*) FROM es_transfer_of(:s);
SELECT count(*) FROM es_transfer_of(-1), es_account_of(-1);
-- in one statement: the function sees the rows the command just wrote
SELECT account, currency, balance FROM es_account_of(es_open_account('fa-one', 'EUR'));
SELECT amount, from_account, to_account FROM es_transfer_of(es_transfer('fa-1', 'fa-one', 3));
-- every transfer row is found by every one of its events' seqs
SELECT count(*) AS events_not_finding_their_transfer
  FROM es_events e
 WHERE e.type IN ('TransferSent', 'TransferReceived')
   AND (SELECT count(*) FROM es_transfer_of(e.seq)) <> 1;

-- 3. shorthands take metadata and effective_at
SELECT es_deposit('fa-1', 7, 'fa-d1', '{"order": "A-1"}', now() - interval '1 day') AS d \gset
SELECT data->'metadata' AS metadata, command_id, effective_at < recorded_at - interval '23 hours' AS back_dated
  FROM es_events WHERE seq = :d;
-- a retry with the same arguments is the same command; other metadata or
-- another effective_at is not
SELECT es_deposit('fa-1', 7, 'fa-d1', '{"order": "A-1"}', (SELECT effective_at FROM es_events WHERE seq = :d)) = :d AS retry_same_seq;
SELECT try($$SELECT es_apply('{"type":"deposit","account":"fa-1","amount":7,"id":"fa-d1","metadata":{"order":"A-1"}}')$$);
SELECT try($$SELECT es_deposit('fa-1', 7, 'fa-d1', '{"order": "A-2"}')$$);
SELECT es_withdraw('fa-1', 2, metadata => '{"order": "A-3"}') > 0 AS ok;
SELECT es_transfer('fa-1', 'fa-2', 3, metadata => '{"order": "A-4"}', effective_at => '2020-01-01 00:00+00') AS t \gset
SELECT data->'metadata', effective_at FROM es_events WHERE seq = :t;
SELECT es_open_account('fa-5', 'EUR', metadata => '{"kyc": "ok"}') AS o \gset
SELECT data->'metadata' FROM es_events WHERE seq = :o;
SELECT try($$SELECT es_deposit('fa-1', 7, metadata => '[1]')$$);
SELECT try($$SELECT es_deposit('fa-1', 7, effective_at => 'infinity')$$);
-- an unknown field's error names metadata
SELECT es_apply('{"type":"deposit","account":"fa-1","amount":1,"description":"coffee"}');

-- 4. the balance at a valid time counts a back-dated top-up
SELECT es_balance_effective_at('fa-1', now() - interval '12 hours') AS valid_time,
	   es_balance_at('fa-1', now() - interval '12 hours') AS transaction_time;
SELECT es_balance_effective_at('fa-1', now()) = (SELECT balance FROM es_accounts WHERE account = 'fa-1') AS now_is_current;

-- 5. transfers by account and time are indexed out of the box
SELECT indexrelid::regclass, pg_get_indexdef(indexrelid) FROM pg_index
 WHERE indexrelid::regclass::text LIKE 'es_transfers_%created_idx' ORDER BY 1;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM es_transfers WHERE from_account_id = 1 AND created_at > '2020-01-01';
RESET enable_seqscan;
RESET enable_bitmapscan;

RESET ROLE;


-- 6. es_history pages with after_version and max_count
SELECT version, type, balance_after FROM es_history('fa-1', max_count => 3);
SELECT version, type, balance_after FROM es_history('fa-1', after_version => 3, max_count => 2);
-- paging through gives exactly the whole history, balances included
WITH RECURSIVE pages(n, last, rows) AS (
	SELECT 1, (SELECT max(version) FROM es_history('fa-1', max_count => 2)),
		   (SELECT array_agg(row(version, balance_after)::text ORDER BY version) FROM es_history('fa-1', max_count => 2))
	UNION ALL
	SELECT n + 1, (SELECT max(version) FROM es_history('fa-1', after_version => last, max_count => 2)),
		   (SELECT array_agg(row(version, balance_after)::text ORDER BY version) FROM es_history('fa-1', after_version => last, max_count => 2))
	  FROM pages WHERE last IS NOT NULL)
SELECT (SELECT array_agg(r ORDER BY n, o) FROM pages, unnest(rows) WITH ORDINALITY u(r, o))
	 = (SELECT array_agg(row(version, balance_after)::text ORDER BY version) FROM es_history('fa-1')) AS pages_equal_whole;
SELECT count(*) FROM es_history('fa-1', after_version => 1000000);
SELECT try($$SELECT count(*) FROM es_history('fa-1', max_count => 0)$$);
DROP ROLE fa_writer, fa_reader, fa_admin;
