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
SELECT type, amount, balance_after, command_id, data->>'reverses' AS reverses
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

-- A writer cannot block a reversal nor plant a link through its metadata
-- (security issue 14): "reverses" in a writer's metadata is only metadata,
-- for a command that exists and for one not yet sent; the top-level key is
-- refused (ES009); es_reverse of both commands succeeds, and the links are
-- es_reverse's only, found through es_commands_reverses_idx.
CREATE ROLE rv_attacker IN ROLE es_ledger_writer;
CREATE ROLE rv_admin2 IN ROLE es_ledger_admin;
SELECT es_open_account('rv-x', 'USD') > 0 AS ok;
SELECT es_deposit('rv-x', 500, 'rv-pay-1') > 0 AS ok;
SET ROLE rv_attacker;
SELECT es_apply('{"type": "deposit", "account": "rv-x", "amount": 1, "id": "rv-forge-1", "metadata": {"reverses": "rv-pay-1"}}') > 0 AS forged_existing;
SELECT es_apply('{"type": "deposit", "account": "rv-x", "amount": 2, "id": "rv-forge-2", "metadata": {"reverses": "rv-pay-2"}}') > 0 AS forged_future;
SELECT try($$SELECT es_apply('{"type": "deposit", "account": "rv-x", "amount": 1, "id": "rv-forge-3", "reverses": "rv-pay-1"}')::text$$) AS top_level;
SELECT try($$SELECT es_apply_each('[{"type": "deposit", "account": "rv-x", "amount": 1, "reverses": "rv-pay-1"}]')::text$$) AS top_level_each;
RESET ROLE;
SELECT es_deposit('rv-x', 200, 'rv-pay-2') > 0 AS ok;
SET ROLE rv_admin2;
SELECT es_reverse('rv-pay-1', 'rv-undo-1') > 0 AS reversed_existing;
SELECT es_reverse('rv-pay-2', 'rv-undo-2') > 0 AS reversed_future;
SELECT try($$SELECT es_reverse('rv-pay-1', 'rv-undo-1b')::text$$) AS once;
SELECT es_reverse('rv-pay-1', 'rv-undo-1') > 0 AS retry_ok;
RESET ROLE;
SELECT balance FROM es_accounts WHERE account = 'rv-x';
-- the links: top-level, es_reverse's only; the forged ones stay metadata
SELECT command_id, command->>'reverses' AS reverses, command ? 'metadata' AS has_metadata
  FROM es_commands WHERE command_id LIKE 'rv-forge-%' OR command_id LIKE 'rv-undo-%' ORDER BY 1;
SELECT command_id, data->>'reverses' AS reverses FROM es_events
 WHERE command_id LIKE 'rv-undo-%' OR command_id LIKE 'rv-forge-%' ORDER BY seq;
-- the look-up is one probe of a unique partial index on es_commands
SELECT indexrelid::regclass AS index, indisunique, pg_get_expr(indpred, indrelid) AS predicate
  FROM pg_index WHERE indexrelid = 'es_commands_reverses_idx'::regclass;
-- a retry of the reversal as a writer's es_apply under the same id is ES008
SET ROLE rv_attacker;
SELECT try($$SELECT es_apply('{"type": "withdraw", "account": "rv-x", "amount": 500, "id": "rv-undo-1"}')::text$$) AS not_a_retry;
RESET ROLE;
DROP ROLE rv_attacker, rv_admin2;

-- the log and the projections still agree
SELECT check_name, ok FROM es_verify() WHERE NOT ok;
SELECT bool_and(ok) AS all_ok FROM es_verify();
