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

\echo '--- two-phase: reserve 30.00 for a card authorisation, then settle 25.00 (the rest is released)'
SELECT es_apply('{"type": "transfer", "from": "wallet-ann", "to": "merchant-bo", "amount": 3000,
                  "pending": true, "id": "auth-9", "timeout": 600}') AS reserved;
SELECT account, balance, pending_out, pending_in, available FROM es_accounts
 WHERE account IN ('wallet-ann', 'merchant-bo') ORDER BY account_id;
SELECT es_apply('{"type": "post_pending", "pending_id": "auth-9", "amount": 2500, "id": "settle-9"}') AS settled;
SELECT transfer_id, from_account, to_account, amount, posted_amount, status FROM es_transfers ORDER BY seq;

\echo '--- a batch with a result per command: the refused one writes nothing, the others go on'
SELECT * FROM es_apply_each('[
  {"type": "deposit", "account": "wallet-ann", "amount": 1000},
  {"type": "withdraw", "account": "merchant-bo", "amount": 999999},
  {"type": "transfer", "from": "bank", "to": "merchant-bo", "amount": 500}
]');

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

\echo '--- following the log: a consumer saves the cursor of the last event it processed'
SELECT seq, type, amount, cursor FROM es_read(NULL, 3);

\echo '--- time travel: the wallet as it stood right after its first top-up, from the log alone; a snapshot on demand'
SELECT es_balance_at('wallet-ann', (SELECT recorded_at FROM es_events WHERE command_id = 'topup-1')) AS wallet_after_topup;
SELECT es_snapshot('wallet-ann') AS snapshot_at_version;
SELECT version, balance FROM es_replay('wallet-ann');
