-- limits: overdraft_limit and max_balance, and set_limits for later commands.
SELECT es_open_account('l-wallet', 'EUR', 0, 20000) > 0 AS ok;   -- a capped wallet
SELECT es_open_account('l-merchant', 'EUR', 5000) > 0 AS ok;     -- an overdraft
SELECT es_open_account('l-bank', 'EUR', 9223372036854775807) > 0 AS ok;
SELECT es_transfer('l-bank', 'l-wallet', 20000) > 0 AS ok;
SELECT try($$SELECT es_transfer('l-bank', 'l-wallet', 1)$$);
SELECT es_transfer('l-merchant', 'l-bank', 5000) > 0 AS ok;
SELECT try($$SELECT es_transfer('l-merchant', 'l-bank', 1)$$);
SELECT account, balance, available, overdraft_limit, max_balance FROM es_accounts
 WHERE account LIKE 'l-%' ORDER BY 1;

-- lowering a cap below the balance is allowed; it binds later credits only
SELECT es_apply('{"type": "set_limits", "account": "l-wallet", "max_balance": 100}') > 0 AS ok;
SELECT balance, max_balance FROM es_accounts WHERE account = 'l-wallet';
SELECT try($$SELECT es_deposit('l-wallet', 1)$$);
SELECT es_withdraw('l-wallet', 19950) > 0 AS ok;
SELECT es_deposit('l-wallet', 50) > 0 AS ok;
SELECT try($$SELECT es_deposit('l-wallet', 1)$$);
-- removing the cap
SELECT es_apply('{"type": "set_limits", "account": "l-wallet", "max_balance": null}') > 0 AS ok;
SELECT es_deposit('l-wallet', 1000000) > 0 AS ok;
-- an overdraft can be withdrawn; the account stays below zero
SELECT es_apply('{"type": "set_limits", "account": "l-merchant", "overdraft_limit": 0}') > 0 AS ok;
SELECT balance, available, overdraft_limit FROM es_accounts WHERE account = 'l-merchant';
SELECT try($$SELECT es_withdraw('l-merchant', 1)$$);
SELECT es_deposit('l-merchant', 5001) > 0 AS ok;
SELECT es_withdraw('l-merchant', 1) > 0 AS ok;
-- set_limits on a frozen account is allowed
SELECT es_apply('{"type": "freeze_account", "account": "l-merchant"}') > 0 AS ok;
SELECT es_apply('{"type": "set_limits", "account": "l-merchant", "overdraft_limit": 10, "max_balance": 10}') > 0 AS ok;
SELECT status, overdraft_limit, max_balance FROM es_accounts WHERE account = 'l-merchant';
-- the LimitsChanged events carry the new limits
SELECT type, data FROM events('l-wallet') WHERE type IN ('AccountOpened', 'LimitsChanged');
-- set_limits needs a limit, and limits are non-negative integers
SELECT try($$SELECT es_apply('{"type": "set_limits", "account": "l-wallet"}')$$);
SELECT try($$SELECT es_apply('{"type": "set_limits", "account": "l-wallet", "overdraft_limit": -1}')$$);
SELECT try($$SELECT es_apply('{"type": "set_limits", "account": "l-wallet", "max_balance": "lots"}')$$);
SELECT try($$SELECT es_apply('{"type": "set_limits", "account": "l-wallet", "overdraft_limit": null}')$$);
-- replay agrees with the projection
SELECT a.account, (a.balance, a.overdraft_limit, a.max_balance, a.status, a.version)
                IS NOT DISTINCT FROM (r.balance, r.overdraft_limit, r.max_balance, r.status, r.version) AS replay_matches
  FROM es_accounts a, LATERAL es_replay(a.account) r WHERE a.account LIKE 'l-%' ORDER BY 1;
