-- shorthands: each is the same as the matching es_apply call.
SELECT es_open_account('s-a', 'USD') > 0 AS ok;
SELECT es_open_account('s-b', 'USD', 250) > 0 AS ok;
SELECT es_open_account('s-c', 'USD', 0, 1000) > 0 AS ok;
SELECT es_open_account(account => 's-d', currency => 'GBP', max_balance => 50, id => 'open-s-d') > 0 AS ok;
SELECT * FROM acct WHERE account LIKE 's-%' ORDER BY account;
SELECT es_deposit('s-a', 700) > 0 AS ok;
SELECT es_withdraw('s-a', 200) > 0 AS ok;
SELECT es_transfer('s-a', 's-b', 300) > 0 AS ok;
SELECT es_transfer(from_account => 's-b', to_account => 's-c', amount => 550) > 0 AS ok;
SELECT account, balance, available, version FROM es_accounts WHERE account LIKE 's-%' ORDER BY 1;
-- their events are those es_apply writes
SELECT * FROM events('s-b');
-- the same command through es_apply with the same id is a retry
SELECT es_apply('{"type": "open_account", "account": "s-d", "currency": "GBP", "max_balance": 50, "id": "open-s-d"}')
     = (SELECT seq FROM es_events WHERE command_id = 'open-s-d') AS same_seq;
SELECT es_apply('{"type": "open_account", "account": "s-e", "currency": "GBP", "id": "open-s-e"}') AS s \gset
SELECT es_open_account('s-e', 'GBP', 0, NULL, 'open-s-e') = :s AS same_seq;
-- bad arguments: ES009
SELECT try($$SELECT es_deposit('s-a', 0)$$);
SELECT try($$SELECT es_deposit('s-a', -5)$$);
SELECT try($$SELECT es_deposit(NULL, 5)$$);
SELECT try($$SELECT es_deposit('s-a', NULL)$$);
SELECT try($$SELECT es_withdraw('', 5)$$);
SELECT try($$SELECT es_transfer('s-a', NULL, 5)$$);
SELECT try($$SELECT es_open_account('s-x', 'USD', -1)$$);
SELECT try($$SELECT es_open_account('s-x', 'USD', 0, -1)$$);
SELECT try($$SELECT es_open_account('s-x', NULL)$$);
SELECT try($$SELECT es_open_account('s-x', '')$$);
SELECT try(format($f$SELECT es_open_account(%L, 'USD')$f$, repeat('n', 201)));
SELECT count(*) AS s_x_exists FROM es_accounts WHERE account = 's-x';
