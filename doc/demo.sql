-- doc/demo.sql: a short tour of es_ledger, run by .ci/demo in a scratch cluster.
\set ON_ERROR_STOP on
\pset footer off
CREATE EXTENSION IF NOT EXISTS es_ledger;

\echo '--- open accounts: a capped wallet (max 200.00), a merchant with a 50.00 overdraft, a bank'
SELECT es_open_account('wallet-ann', 'USD', max_balance => 20000, id => 'signup-ann');
SELECT es_open_account('merchant-bo', 'USD', overdraft_limit => 5000);
SELECT es_apply('{"type": "open_account", "account": "bank", "currency": "USD", "overdraft_limit": 100000000}');

\echo '--- deposit, transfer; a retry with the same id returns the same seq and writes nothing'
SELECT es_deposit('wallet-ann', 15000, 'topup-1');
SELECT es_deposit('wallet-ann', 15000, 'topup-1') AS retried_same_seq;
SELECT es_transfer('wallet-ann', 'merchant-bo', 4250, 'order-77');
SELECT es_apply('{"type": "withdraw", "account": "merchant-bo", "amount": 9000,
                  "metadata": {"reason": "payout"}}') AS payout_into_overdraft;

\echo '--- refused commands: caught by SQLSTATE, nothing written'
\set ON_ERROR_STOP off
SELECT es_withdraw('merchant-bo', 1000);
\echo '=> SQLSTATE' :LAST_ERROR_SQLSTATE '(insufficient funds: the overdraft is used up)'
SELECT es_transfer('bank', 'wallet-ann', 12000);
\echo '=> SQLSTATE' :LAST_ERROR_SQLSTATE '(balance limit: the wallet is capped at 200.00)'
SELECT es_deposit('wallet-ann', 1, 'topup-1');
\echo '=> SQLSTATE' :LAST_ERROR_SQLSTATE '(idempotency conflict: the id was used for another command)'
UPDATE es_events SET amount = 0;
\echo '=> SQLSTATE' :LAST_ERROR_SQLSTATE '(the log is immutable, even for a superuser)'
\set ON_ERROR_STOP on

\echo '--- the read side: es_accounts'
SELECT account, currency, status, balance, available, overdraft_limit, max_balance, version, last_seq
  FROM es_accounts ORDER BY account_id;

\echo '--- the log: every balance explained event by event'
SELECT e.seq, a.account, e.version, e.type, e.amount,
       sum(e.amount) OVER (PARTITION BY e.account_id ORDER BY e.version) AS balance_after,
       e.command_id, e.data, left(encode(e.hash, 'hex'), 16) || '...' AS hash
  FROM es_events e JOIN es_accounts a USING (account_id) ORDER BY e.seq;

\echo '--- replay folds the log alone and agrees with the projection'
SELECT a.account, r.balance AS replayed_balance, a.balance AS projected_balance,
       r.last_hash = a.last_hash AS same_hash_chain_head
  FROM es_accounts a, LATERAL es_replay(a.account) r ORDER BY a.account_id;

\echo '--- the verifier re-derives every promise from the log; a digest proves it later'
SELECT check_name, ok, checked, first_bad_seq, detail FROM es_verify();
SELECT seq AS digest_seq, digest AS digest_bytes FROM es_digest() \gset
SELECT :digest_seq AS seq, es_verify_digest(:digest_seq, :'digest_bytes') AS digest_holds;
