-- setup: install the extension and a helper that shows an error's SQLSTATE.
-- With es_ledger preloaded, this database's projection worker would expire
-- due pending transfers by itself (es_ledger.worker_expire_pending); the
-- tests of pending transfers expect only commands to.  Off for the workers
-- of this database, which read it when they connect (so before the ledger
-- exists, when no worker stays connected).
DO $$ BEGIN
	EXECUTE format('ALTER DATABASE %I SET es_ledger.worker_expire_pending = off', current_database());
END $$;
CREATE EXTENSION es_ledger;
SELECT extname, extversion FROM pg_extension WHERE extname = 'es_ledger';
SELECT amname, amtype FROM pg_am WHERE amname = 'es_log';
SELECT c.relname, a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam
 WHERE c.relname IN ('es_events', 'es_accounts', 'es_commands') ORDER BY 1;

-- try(sql): runs sql, returns its result or 'SQLSTATE: message'.
CREATE FUNCTION try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
	EXECUTE sql INTO r;
	RETURN coalesce(r, 'null');
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- acct(name): the parts of a projection row that do not depend on time.
CREATE VIEW acct AS
SELECT account, currency, status, balance, pending_out, pending_in, available,
       overdraft_limit, max_balance, version
  FROM es_accounts;

-- events(name): the parts of an account's events that do not depend on time.
CREATE FUNCTION events(name text) RETURNS TABLE(version bigint, type text, amount bigint, data jsonb, command_id text)
LANGUAGE sql AS $$
	SELECT e.version, e.type, e.amount, e.data - 'to_account_id' - 'from_account_id', e.command_id
	  FROM es_events e JOIN es_accounts a USING (account_id)
	 WHERE a.account = name ORDER BY e.version
$$;
