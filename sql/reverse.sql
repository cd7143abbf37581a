-- reverse: es_reverse(command_id, id) undoes an applied command by
-- appending its compensating command, checked like any command.  Seqs and
-- times vary from run to run, so only comparisons are printed.
SELECT es_open_account('rv-a', 'USD') > 0 AS ok, es_open_account('rv-b', 'USD') > 0 AS ok;

-- deposit, withdraw, transfer: each reversed, balances back
SELECT es_deposit('rv-a', 1000, 'rv-dep') > 0 AS ok;
SELECT es_withdraw('rv-a', 100, 'rv-wd') > 0 AS ok;
SELECT es_transfer('rv-a', 'rv-b', 300, 'rv-xfer') > 0 AS ok;
SELECT account, balance, version FROM es_accounts WHERE account LIKE 'rv-%' ORDER BY 1;
SELECT es_reverse('rv-xfer', 'rv-r-xfer') > 0 AS ok;
SELECT account, balance FROM es_accounts WHERE account LIKE 'rv-%' ORDER BY 1;
SELECT es_reverse('rv-wd', 'rv-r-wd') > 0 AS ok;
SELECT balance FROM es_accounts WHERE account = 'rv-a';
SELECT es_reverse('rv-dep', 'rv-r-dep') > 0 AS ok;
SELECT account, balance FROM es_accounts WHERE account LIKE 'rv-%' ORDER BY 1;
-- the events, each linked to the command it reverses
SELECT version, type, amount, data, command_id FROM events('rv-a') WHERE version > 1;
SELECT version, type, amount, data, command_id FROM events('rv-b') WHERE version > 1;
-- es_history shows the link
SELECT type, amount, balance_after, command_id, data->'metadata'->>'reverses' AS reverses
  FROM es_history('rv-a') ORDER BY version;

-- a retry returns the same seq and writes nothing
SELECT count(*) AS events_before FROM es_events \gset
SELECT max(seq) AS rdep_seq FROM es_events WHERE command_id = 'rv-r-dep' \gset
SELECT es_reverse('rv-dep', 'rv-r-dep') = :rdep_seq AS same_seq;
SELECT count(*) - :events_before AS written FROM es_events;
-- a second reversal of the same command (another id) is refused
SELECT try($$SELECT es_reverse('rv-dep', 'rv-r-dep2')::text$$);
-- the same id for another reversal: ES008
SELECT es_deposit('rv-a', 5, 'rv-dep5') > 0 AS ok;
SELECT try($$SELECT es_reverse('rv-dep5', 'rv-r-dep')::text$$);
-- an id of an ordinary command: ES008
SELECT try($$SELECT es_reverse('rv-dep5', 'rv-dep5')::text$$);
SELECT count(*) - :events_before AS written FROM es_events;

-- refused when the money has moved on: ES001, nothing written
SELECT es_deposit('rv-a', 500, 'rv-dep500') > 0 AS ok;
SELECT es_withdraw('rv-a', 400) > 0 AS ok;
SELECT count(*) AS events_before FROM es_events \gset
SELECT try($$SELECT es_reverse('rv-dep500', 'rv-r-dep500')::text$$);
SELECT count(*) - :events_before AS written FROM es_events;
-- refused on a frozen account: ES005, nothing written
SELECT es_deposit('rv-b', 50) > 0 AS ok;
SELECT es_transfer('rv-b', 'rv-a', 50, 'rv-xfer2') > 0 AS ok;
SELECT es_apply('{"type": "freeze_account", "account": "rv-a", "id": "rv-frz"}') > 0 AS ok;
SELECT count(*) AS events_before FROM es_events \gset
SELECT try($$SELECT es_reverse('rv-xfer2', 'rv-r-xfer2')::text$$);
SELECT count(*) - :events_before AS written FROM es_events;
-- freeze reversed unfreezes; unfreeze reversed freezes
SELECT es_reverse('rv-frz', 'rv-r-frz') > 0 AS ok;
SELECT status FROM es_accounts WHERE account = 'rv-a';
SELECT es_apply('{"type": "freeze_account", "account": "rv-b"}') > 0 AS ok;
SELECT es_apply('{"type": "unfreeze_account", "account": "rv-b", "id": "rv-unfrz"}') > 0 AS ok;
SELECT es_reverse('rv-unfrz', 'rv-r-unfrz') > 0 AS ok;
SELECT status FROM es_accounts WHERE account = 'rv-b';
-- and the transfer refused while rv-a was frozen goes back now
SELECT es_apply('{"type": "unfreeze_account", "account": "rv-b"}') > 0 AS ok;
SELECT es_reverse('rv-xfer2', 'rv-r-xfer2') > 0 AS ok;
SELECT account, balance, status FROM es_accounts WHERE account LIKE 'rv-%' ORDER BY 1;

-- set_limits reversed restores the limits the account had before it,
-- only those the command set
SELECT es_apply('{"type": "set_limits", "account": "rv-b", "overdraft_limit": 10, "max_balance": 5000}') > 0 AS ok;
SELECT es_apply('{"type": "set_limits", "account": "rv-b", "overdraft_limit": 70, "id": "rv-lim1"}') > 0 AS ok;
SELECT es_apply('{"type": "set_limits", "account": "rv-b", "max_balance": null, "id": "rv-lim2"}') > 0 AS ok;
SELECT overdraft_limit, max_balance FROM es_accounts WHERE account = 'rv-b';
SELECT es_reverse('rv-lim2', 'rv-r-lim2') > 0 AS ok;
SELECT overdraft_limit, max_balance FROM es_accounts WHERE account = 'rv-b';
SELECT es_reverse('rv-lim1', 'rv-r-lim1') > 0 AS ok;
SELECT overdraft_limit, max_balance FROM es_accounts WHERE account = 'rv-b';
SELECT type, data FROM events('rv-b') ORDER BY version DESC LIMIT 2;
-- a reversal is checked against today's rules: ES002 caps
SELECT es_withdraw('rv-b', 20, 'rv-wd20') > 0 AS ok;
SELECT es_apply('{"type": "set_limits", "account": "rv-b", "max_balance": 40}') > 0 AS ok;
SELECT try($$SELECT es_reverse('rv-wd20', 'rv-r-wd20')::text$$);
SELECT balance, max_balance FROM es_accounts WHERE account = 'rv-b';

-- open_account and close_account are not reversible; unknown ids; nulls
SELECT es_open_account('rv-c', 'USD', 0, NULL, 'rv-open') > 0 AS ok;
SELECT es_apply('{"type": "close_account", "account": "rv-c", "id": "rv-close"}') > 0 AS ok;
SELECT try($$SELECT es_reverse('rv-open', 'rv-r-open')::text$$);
SELECT try($$SELECT es_reverse('rv-close', 'rv-r-close')::text$$);
SELECT try($$SELECT es_reverse('rv-no-such', 'rv-r-none')::text$$);
SELECT try($$SELECT es_reverse(NULL, 'rv-r-none')::text$$);
SELECT try($$SELECT es_reverse('rv-dep5', NULL)::text$$);

-- a writer cannot call es_reverse; an admin can
CREATE ROLE rv_writer IN ROLE es_ledger_writer;
CREATE ROLE rv_admin IN ROLE es_ledger_admin;
SET ROLE rv_writer;
SELECT try($$SELECT es_reverse('rv-dep5', 'rv-r-dep5')::text$$);
RESET ROLE;
SET ROLE rv_admin;
SELECT try($$SELECT (es_reverse('rv-dep5', 'rv-r-dep5') > 0)::text$$);
RESET ROLE;
DROP ROLE rv_writer, rv_admin;
SELECT balance FROM es_accounts WHERE account = 'rv-a';

-- the log and the projections still agree
SELECT check_name, ok FROM es_verify() WHERE NOT ok;
SELECT bool_and(ok) AS all_ok FROM es_verify();
