-- errors: every rejection has its SQLSTATE, names the account, writes nothing.
SELECT es_open_account('e-a', 'USD', 100, 1000) > 0 AS ok;
SELECT es_open_account('e-b', 'USD') > 0 AS ok;
SELECT es_open_account('e-eur', 'EUR') > 0 AS ok;
SELECT es_deposit('e-a', 500) > 0 AS ok;
CREATE TEMP TABLE before AS SELECT count(*) AS n, max(seq) AS s FROM es_events;

-- ES001 insufficient funds (available - amount below -overdraft_limit)
SELECT try($$SELECT es_withdraw('e-a', 601)$$);
SELECT try($$SELECT es_transfer('e-a', 'e-b', 601)$$);
SELECT try($$SELECT es_withdraw('e-b', 1)$$);
-- exactly at the overdraft limit is allowed
SELECT es_withdraw('e-a', 600) > 0 AS ok;
SELECT balance, available FROM es_accounts WHERE account = 'e-a';
SELECT es_deposit('e-a', 600) > 0 AS ok;
-- ES002 balance limit (balance + pending_in + amount above max_balance)
SELECT try($$SELECT es_deposit('e-a', 501)$$);
SELECT es_deposit('e-b', 1000) > 0 AS ok;
SELECT try($$SELECT es_transfer('e-b', 'e-a', 501)$$);
SELECT es_deposit('e-a', 500) > 0 AS ok;  -- exactly at the cap
SELECT es_withdraw('e-a', 500) > 0 AS ok;
-- ES003 account not found
SELECT try($$SELECT es_deposit('nobody', 1)$$);
SELECT try($$SELECT es_transfer('nobody', 'e-a', 1)$$);
SELECT try($$SELECT es_transfer('e-a', 'nobody', 1)$$);
SELECT try($$SELECT es_apply('{"type": "freeze_account", "account": "nobody"}')$$);
-- ES004 account already exists
SELECT try($$SELECT es_open_account('e-a', 'USD')$$);
-- ES005 account not open
SELECT es_apply('{"type": "freeze_account", "account": "e-b"}') > 0 AS ok;
SELECT try($$SELECT es_deposit('e-b', 1)$$);
SELECT try($$SELECT es_withdraw('e-b', 1)$$);
SELECT try($$SELECT es_transfer('e-a', 'e-b', 1)$$);
SELECT try($$SELECT es_transfer('e-b', 'e-a', 1)$$);
SELECT try($$SELECT es_apply('{"type": "freeze_account", "account": "e-b"}')$$);
SELECT es_apply('{"type": "unfreeze_account", "account": "e-b"}') > 0 AS ok;
SELECT try($$SELECT es_apply('{"type": "unfreeze_account", "account": "e-b"}')$$);
SELECT es_open_account('e-closed', 'USD') > 0 AS ok;
SELECT es_apply('{"type": "close_account", "account": "e-closed"}') > 0 AS ok;
SELECT try($$SELECT es_deposit('e-closed', 1)$$);
SELECT try($$SELECT es_apply('{"type": "close_account", "account": "e-closed"}')$$);
SELECT try($$SELECT es_apply('{"type": "unfreeze_account", "account": "e-closed"}')$$);
SELECT try($$SELECT es_apply('{"type": "set_limits", "account": "e-closed", "overdraft_limit": 1}')$$);
-- ES006 currency mismatch
SELECT try($$SELECT es_transfer('e-a', 'e-eur', 1)$$);
-- ES007 version conflict
SELECT version FROM es_accounts WHERE account = 'e-a';
SELECT try($$SELECT es_apply('{"type": "deposit", "account": "e-a", "amount": 1, "expected_version": 3}')$$);
SELECT es_apply('{"type": "deposit", "account": "e-a", "amount": 1, "expected_version": 6}') > 0 AS ok;
SELECT try($$SELECT es_apply('{"type": "open_account", "account": "e-new", "currency": "USD", "expected_version": 1}')$$);
-- ES009 invalid command: transfer to itself, expected_version on a transfer
SELECT try($$SELECT es_transfer('e-a', 'e-a', 1)$$);
SELECT try($$SELECT es_apply('{"type": "transfer", "from": "e-a", "to": "e-a", "amount": 1}')$$);
SELECT try($$SELECT es_apply('{"type": "transfer", "from": "e-a", "to": "e-b", "amount": 1, "expected_version": 1}')$$);
-- ES014 account not empty
SELECT try($$SELECT es_apply('{"type": "close_account", "account": "e-a"}')$$);
-- 22003: no arithmetic wraps
SELECT es_open_account('e-big', 'USD') > 0 AS ok;
SELECT es_deposit('e-big', 9223372036854775807) > 0 AS ok;
SELECT try($$SELECT es_deposit('e-big', 1)$$);
SELECT try($$SELECT es_transfer('e-a', 'e-big', 1)$$);
SELECT balance FROM es_accounts WHERE account = 'e-big';
SELECT es_open_account('e-deep', 'USD', 9223372036854775807) > 0 AS ok;
SELECT try($$SELECT es_withdraw('e-deep', 9223372036854775807)$$) ~ '^[0-9]+$' AS ok;
SELECT try($$SELECT es_withdraw('e-deep', 1)$$);
SELECT balance, available FROM es_accounts WHERE account = 'e-deep';

-- nothing was written by any rejected command: only the accepted ones above
SELECT count(*) - (SELECT n FROM before) AS events_written FROM es_events;
SELECT account, balance, version FROM es_accounts WHERE account LIKE 'e-%' ORDER BY account;
