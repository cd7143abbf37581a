-- bench/reference.sql: a plain-SQL reference implementation of es_ledger's
-- four typed shorthands (open_account, deposit, withdraw, transfer), written
-- the way a careful developer would write them by hand in plpgsql on ordinary
-- heap tables.  It is the yardstick bench/run.sh measures the C extension
-- against, so it does the same work as es_apply:
--
--   * same rules and SQLSTATEs (doc/reference.md, "Commands" and "Errors"): ES001 insufficient
--     funds (available - amount < -overdraft_limit), ES002 cap (balance +
--     pending_in + amount > max_balance), ES003 not found, ES004 exists,
--     ES005 not open, ES006 currency mismatch, ES008 idempotency conflict,
--     ES009 bad input, 22003 when a balance would leave bigint;
--   * idempotency: a command with an id takes a transaction advisory lock on
--     the id, and a retry of the same command returns the original seq;
--   * accounts locked FOR UPDATE in ascending account_id order;
--   * one event row per event (the log), one projection row per account kept
--     in step, both written in the caller's transaction;
--   * a SHA-256 hash chain per account: hash = sha256(prev_hash || canonical
--     text of the event), the first event linking to 32 zero bytes;
--   * SECURITY DEFINER with a pinned search_path, like the extension.
--
-- What it does not do (the extension does, none of it on the measured path
-- beyond what is noted): the es_apply(jsonb) entry point and its JSON parsing,
-- pending transfers, freeze/close/set_limits, effective_at, metadata,
-- expected_version, a CRC-32C checksum column (the extension computes one per
-- event) and the xid8 column.  Neither side has a foreign key from events to
-- accounts.
--
-- Load with:  psql -v ON_ERROR_STOP=1 -d DB -f bench/reference.sql
-- (idempotent: it drops and recreates schema ref).

\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS ref CASCADE;
CREATE SCHEMA ref;

-------------------------------------------------------------------------------
-- Tables
-------------------------------------------------------------------------------

-- The projection: one row per account.  fillfactor 50 as es_accounts, so that
-- balance updates stay HOT on both sides.
CREATE TABLE ref.accounts (
	account_id		bigserial	PRIMARY KEY,
	account			text		NOT NULL UNIQUE,
	currency		text		NOT NULL,
	status			text		NOT NULL DEFAULT 'open'
									CHECK (status IN ('open', 'frozen', 'closed')),
	balance			bigint		NOT NULL DEFAULT 0,
	pending_out		bigint		NOT NULL DEFAULT 0,
	pending_in		bigint		NOT NULL DEFAULT 0,
	available		bigint		GENERATED ALWAYS AS (balance - pending_out) STORED,
	overdraft_limit	bigint		NOT NULL DEFAULT 0,
	max_balance		bigint,
	version			bigint		NOT NULL DEFAULT 0,
	last_seq		bigint		NOT NULL DEFAULT 0,
	opened_at		timestamptz	NOT NULL,
	updated_at		timestamptz	NOT NULL,
	last_hash		bytea		NOT NULL
) WITH (fillfactor = 50);

-- The log: one row per event, never updated or deleted.
CREATE TABLE ref.events (
	seq				bigserial	PRIMARY KEY,
	account_id		bigint		NOT NULL,
	version			bigint		NOT NULL,
	type			text		NOT NULL,
	amount			bigint		NOT NULL,
	data			jsonb		NOT NULL DEFAULT '{}',
	command_id		text,
	recorded_at		timestamptz	NOT NULL,
	effective_at	timestamptz	NOT NULL,
	hash			bytea		NOT NULL,
	UNIQUE (account_id, version)
);
CREATE INDEX events_command_id_idx ON ref.events (command_id)
	WHERE command_id IS NOT NULL;

-- The idempotency register: the canonical command and the seq it returned.
CREATE TABLE ref.commands (
	command_id		text		PRIMARY KEY,
	command			jsonb		NOT NULL,
	seq				bigint		NOT NULL
);

-- The log is append-only: UPDATE, DELETE and TRUNCATE fail with ES011.
CREATE FUNCTION ref.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'cannot % "%"', lower(TG_OP), TG_TABLE_NAME
		USING ERRCODE = 'ES011',
			  DETAIL = 'The event log is append-only: events are facts and are never changed.';
END
$$;
CREATE TRIGGER events_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON ref.events
	FOR EACH STATEMENT EXECUTE FUNCTION ref.refuse_change();

-------------------------------------------------------------------------------
-- Helpers
-------------------------------------------------------------------------------

-- The hash link of an event: SHA-256 over the previous hash of the account
-- and the event's canonical text, a jsonb array of its stored columns
-- (timestamps as microseconds since the Unix epoch, so the text depends on no
-- setting).  A plain SQL function, so the planner inlines it.
CREATE FUNCTION ref.event_hash(prev bytea, seq bigint, account_id bigint,
		version bigint, type text, amount bigint, data jsonb, command_id text,
		recorded_at timestamptz, effective_at timestamptz)
	RETURNS bytea
	LANGUAGE sql STABLE PARALLEL SAFE
RETURN pg_catalog.sha256(prev || pg_catalog.convert_to(
	pg_catalog.jsonb_build_array(seq, account_id, version, type, amount, data,
		command_id,
		(EXTRACT(epoch FROM recorded_at) * 1000000)::bigint,
		(EXTRACT(epoch FROM effective_at) * 1000000)::bigint)::text,
	'UTF8'));

-- The hash the first event of an account links to.
CREATE FUNCTION ref.genesis_hash() RETURNS bytea
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;

-- Raise ES009 for a bad name-like argument (account, currency, id).  Called
-- only once the caller has seen that the value is bad.
CREATE FUNCTION ref.bad_name(what text, val text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF val IS NULL THEN
		RAISE EXCEPTION 'invalid command: "%" is null', what USING ERRCODE = 'ES009';
	ELSIF val = '' THEN
		RAISE EXCEPTION 'invalid command: "%" is empty', what USING ERRCODE = 'ES009',
			DETAIL = 'Names and ids are texts of 1 to 200 characters.';
	END IF;
	RAISE EXCEPTION 'invalid command: "%" is longer than 200 characters', what
		USING ERRCODE = 'ES009', DETAIL = 'Names and ids are texts of 1 to 200 characters.';
END
$$;

-- Raise ES009 for a bad integer argument (NULL, or not positive).
CREATE FUNCTION ref.bad_int(what text, val bigint, allow_zero boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF val IS NULL THEN
		RAISE EXCEPTION 'invalid command: "%" is null', what USING ERRCODE = 'ES009';
	END IF;
	RAISE EXCEPTION 'invalid command: "%" must be a % integer', what,
		CASE WHEN allow_zero THEN 'non-negative' ELSE 'positive' END
		USING ERRCODE = 'ES009', DETAIL = format('Got %s.', val);
END
$$;

-- Idempotency probe, called with the command's id and canonical form: takes
-- the id's advisory lock (held to the end of the transaction, so two commands
-- with one id are serialised) and returns the seq the command returned the
-- first time, NULL if the id is new; ES008 if the id was used for another
-- command.
CREATE FUNCTION ref.known_command(p_id text, p_command jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_known	jsonb;
	v_seq	bigint;
BEGIN
	PERFORM pg_catalog.pg_advisory_xact_lock(1380271665, pg_catalog.hashtext(p_id));
	SELECT c.command, c.seq INTO v_known, v_seq
		FROM ref.commands c WHERE c.command_id = p_id;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	IF v_known <> p_command THEN
		RAISE EXCEPTION 'command id "%" was already used for another command', p_id
			USING ERRCODE = 'ES008',
				  DETAIL = 'A retry must repeat the original command exactly; a new command needs a new id.';
	END IF;
	RETURN v_seq;
END
$$;

-------------------------------------------------------------------------------
-- Commands
-------------------------------------------------------------------------------

-- open_account: AccountOpened on a new account; ES004 if the name is taken.
CREATE FUNCTION ref.open_account(account text, currency text,
		overdraft_limit bigint DEFAULT 0, max_balance bigint DEFAULT NULL,
		id text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_cmd	jsonb;
	v_seq	bigint;
	v_id	bigint;
	v_at	timestamptz := now();
	v_data	jsonb;
	v_hash	bytea;
BEGIN
	-- shape
	IF open_account.account IS NULL OR char_length(open_account.account) NOT BETWEEN 1 AND 200 THEN
		PERFORM ref.bad_name('account', open_account.account);
	END IF;
	IF open_account.currency IS NULL OR char_length(open_account.currency) NOT BETWEEN 1 AND 200 THEN
		PERFORM ref.bad_name('currency', open_account.currency);
	END IF;
	IF open_account.overdraft_limit IS NULL OR open_account.overdraft_limit < 0 THEN
		PERFORM ref.bad_int('overdraft_limit', open_account.overdraft_limit, true);
	END IF;
	IF open_account.max_balance < 0 THEN
		PERFORM ref.bad_int('max_balance', open_account.max_balance, true);
	END IF;

	-- idempotency
	IF open_account.id IS NOT NULL THEN
		IF char_length(open_account.id) NOT BETWEEN 1 AND 200 THEN
			PERFORM ref.bad_name('id', open_account.id);
		END IF;
		v_cmd := jsonb_build_object('type', 'open_account', 'id', open_account.id,
			'account', open_account.account, 'currency', open_account.currency,
			'overdraft_limit', open_account.overdraft_limit,
			'max_balance', open_account.max_balance);
		v_seq := ref.known_command(open_account.id, v_cmd);
		IF v_seq IS NOT NULL THEN
			RETURN v_seq;
		END IF;
	END IF;

	-- event
	v_id := nextval('ref.accounts_account_id_seq');
	v_seq := nextval('ref.events_seq_seq');
	v_data := jsonb_build_object('account', open_account.account,
		'currency', open_account.currency,
		'overdraft_limit', open_account.overdraft_limit,
		'max_balance', open_account.max_balance);
	v_hash := ref.event_hash(ref.genesis_hash(), v_seq, v_id, 1, 'AccountOpened', 0,
		v_data, open_account.id, v_at, v_at);

	-- projection first: ON CONFLICT also catches a concurrent open of the name
	INSERT INTO ref.accounts (account_id, account, currency, overdraft_limit,
			max_balance, version, last_seq, opened_at, updated_at, last_hash)
		VALUES (v_id, open_account.account, open_account.currency,
			open_account.overdraft_limit, open_account.max_balance, 1, v_seq,
			v_at, v_at, v_hash)
		ON CONFLICT (account) DO NOTHING;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'account "%" already exists', open_account.account
			USING ERRCODE = 'ES004',
				  DETAIL = 'Account names are unique ledger-wide, closed accounts included.';
	END IF;
	INSERT INTO ref.events (seq, account_id, version, type, amount, data,
			command_id, recorded_at, effective_at, hash)
		VALUES (v_seq, v_id, 1, 'AccountOpened', 0, v_data, open_account.id,
			v_at, v_at, v_hash);

	IF open_account.id IS NOT NULL THEN
		INSERT INTO ref.commands (command_id, command, seq)
			VALUES (open_account.id, v_cmd, v_seq);
	END IF;
	RETURN v_seq;
END
$$;

-- deposit: a credit from outside the ledger.
CREATE FUNCTION ref.deposit(account text, amount bigint, id text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	a			ref.accounts;
	v_cmd		jsonb;
	v_seq		bigint;
	v_balance	bigint;
	v_at		timestamptz;
	v_data		jsonb := '{}';
	v_hash		bytea;
BEGIN
	-- shape
	IF deposit.account IS NULL OR char_length(deposit.account) NOT BETWEEN 1 AND 200 THEN
		PERFORM ref.bad_name('account', deposit.account);
	END IF;
	IF deposit.amount IS NULL OR deposit.amount <= 0 THEN
		PERFORM ref.bad_int('amount', deposit.amount, false);
	END IF;

	-- idempotency
	IF deposit.id IS NOT NULL THEN
		IF char_length(deposit.id) NOT BETWEEN 1 AND 200 THEN
			PERFORM ref.bad_name('id', deposit.id);
		END IF;
		v_cmd := jsonb_build_object('type', 'deposit', 'id', deposit.id,
			'account', deposit.account, 'amount', deposit.amount);
		v_seq := ref.known_command(deposit.id, v_cmd);
		IF v_seq IS NOT NULL THEN
			RETURN v_seq;
		END IF;
	END IF;

	-- decision, under the account's row lock
	SELECT * INTO a FROM ref.accounts WHERE account = deposit.account FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'account "%" not found', deposit.account
			USING ERRCODE = 'ES003', DETAIL = 'No account of that name has been opened.';
	END IF;
	IF a.status <> 'open' THEN
		RAISE EXCEPTION 'account "%" is %', a.account, a.status
			USING ERRCODE = 'ES005', DETAIL = 'Only an open account accepts debits and credits.';
	END IF;
	IF a.max_balance IS NOT NULL
			AND a.balance::numeric + a.pending_in + deposit.amount > a.max_balance THEN
		RAISE EXCEPTION 'balance limit exceeded in account "%"', a.account
			USING ERRCODE = 'ES002',
				  DETAIL = format('Balance %s, pending in %s, credit %s, max_balance %s.',
								  a.balance, a.pending_in, deposit.amount, a.max_balance);
	END IF;
	v_balance := a.balance + deposit.amount;		-- 22003 if out of range

	-- event and projection
	v_seq := nextval('ref.events_seq_seq');
	v_at := greatest(now(), a.updated_at);
	v_hash := ref.event_hash(a.last_hash, v_seq, a.account_id, a.version + 1,
		'Deposited', deposit.amount, v_data, deposit.id, v_at, v_at);
	INSERT INTO ref.events (seq, account_id, version, type, amount, data,
			command_id, recorded_at, effective_at, hash)
		VALUES (v_seq, a.account_id, a.version + 1, 'Deposited', deposit.amount,
			v_data, deposit.id, v_at, v_at, v_hash);
	UPDATE ref.accounts
		SET balance = v_balance, version = a.version + 1, last_seq = v_seq,
			updated_at = v_at, last_hash = v_hash
		WHERE account_id = a.account_id;

	IF deposit.id IS NOT NULL THEN
		INSERT INTO ref.commands (command_id, command, seq)
			VALUES (deposit.id, v_cmd, v_seq);
	END IF;
	RETURN v_seq;
END
$$;

-- withdraw: a debit to outside the ledger.
CREATE FUNCTION ref.withdraw(account text, amount bigint, id text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	a			ref.accounts;
	v_cmd		jsonb;
	v_seq		bigint;
	v_balance	bigint;
	v_at		timestamptz;
	v_data		jsonb := '{}';
	v_hash		bytea;
BEGIN
	-- shape
	IF withdraw.account IS NULL OR char_length(withdraw.account) NOT BETWEEN 1 AND 200 THEN
		PERFORM ref.bad_name('account', withdraw.account);
	END IF;
	IF withdraw.amount IS NULL OR withdraw.amount <= 0 THEN
		PERFORM ref.bad_int('amount', withdraw.amount, false);
	END IF;

	-- idempotency
	IF withdraw.id IS NOT NULL THEN
		IF char_length(withdraw.id) NOT BETWEEN 1 AND 200 THEN
			PERFORM ref.bad_name('id', withdraw.id);
		END IF;
		v_cmd := jsonb_build_object('type', 'withdraw', 'id', withdraw.id,
			'account', withdraw.account, 'amount', withdraw.amount);
		v_seq := ref.known_command(withdraw.id, v_cmd);
		IF v_seq IS NOT NULL THEN
			RETURN v_seq;
		END IF;
	END IF;

	-- decision, under the account's row lock
	SELECT * INTO a FROM ref.accounts WHERE account = withdraw.account FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'account "%" not found', withdraw.account
			USING ERRCODE = 'ES003', DETAIL = 'No account of that name has been opened.';
	END IF;
	IF a.status <> 'open' THEN
		RAISE EXCEPTION 'account "%" is %', a.account, a.status
			USING ERRCODE = 'ES005', DETAIL = 'Only an open account accepts debits and credits.';
	END IF;
	-- available - amount < -overdraft_limit, rearranged so nothing can wrap
	IF a.available < withdraw.amount - a.overdraft_limit THEN
		RAISE EXCEPTION 'insufficient funds in account "%"', a.account
			USING ERRCODE = 'ES001',
				  DETAIL = format('Available %s, overdraft limit %s, debit %s.',
								  a.available, a.overdraft_limit, withdraw.amount);
	END IF;
	v_balance := a.balance - withdraw.amount;		-- 22003 if out of range

	-- event and projection
	v_seq := nextval('ref.events_seq_seq');
	v_at := greatest(now(), a.updated_at);
	v_hash := ref.event_hash(a.last_hash, v_seq, a.account_id, a.version + 1,
		'Withdrawn', -withdraw.amount, v_data, withdraw.id, v_at, v_at);
	INSERT INTO ref.events (seq, account_id, version, type, amount, data,
			command_id, recorded_at, effective_at, hash)
		VALUES (v_seq, a.account_id, a.version + 1, 'Withdrawn', -withdraw.amount,
			v_data, withdraw.id, v_at, v_at, v_hash);
	UPDATE ref.accounts
		SET balance = v_balance, version = a.version + 1, last_seq = v_seq,
			updated_at = v_at, last_hash = v_hash
		WHERE account_id = a.account_id;

	IF withdraw.id IS NOT NULL THEN
		INSERT INTO ref.commands (command_id, command, seq)
			VALUES (withdraw.id, v_cmd, v_seq);
	END IF;
	RETURN v_seq;
END
$$;

-- transfer: TransferSent on from_account, then TransferReceived on
-- to_account; returns the seq of the latter.
CREATE FUNCTION ref.transfer(from_account text, to_account text, amount bigint,
		id text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	r			ref.accounts;
	f			ref.accounts;		-- from
	t			ref.accounts;		-- to
	v_cmd		jsonb;
	v_seq_f		bigint;
	v_seq_t		bigint;
	v_bal_f		bigint;
	v_bal_t		bigint;
	v_at		timestamptz;
	v_data_f	jsonb;
	v_data_t	jsonb;
	v_hash_f	bytea;
	v_hash_t	bytea;
BEGIN
	-- shape
	IF transfer.from_account IS NULL OR char_length(transfer.from_account) NOT BETWEEN 1 AND 200 THEN
		PERFORM ref.bad_name('from', transfer.from_account);
	END IF;
	IF transfer.to_account IS NULL OR char_length(transfer.to_account) NOT BETWEEN 1 AND 200 THEN
		PERFORM ref.bad_name('to', transfer.to_account);
	END IF;
	IF transfer.amount IS NULL OR transfer.amount <= 0 THEN
		PERFORM ref.bad_int('amount', transfer.amount, false);
	END IF;
	IF transfer.from_account = transfer.to_account THEN
		RAISE EXCEPTION 'invalid command: transfer from account "%" to itself',
			transfer.from_account
			USING ERRCODE = 'ES009', DETAIL = 'A transfer needs two different accounts.';
	END IF;

	-- idempotency
	IF transfer.id IS NOT NULL THEN
		IF char_length(transfer.id) NOT BETWEEN 1 AND 200 THEN
			PERFORM ref.bad_name('id', transfer.id);
		END IF;
		v_cmd := jsonb_build_object('type', 'transfer', 'id', transfer.id,
			'from', transfer.from_account, 'to', transfer.to_account,
			'amount', transfer.amount);
		v_seq_t := ref.known_command(transfer.id, v_cmd);
		IF v_seq_t IS NOT NULL THEN
			RETURN v_seq_t;
		END IF;
	END IF;

	-- lock both accounts in ascending account_id order: LockRows sits above
	-- the sort, so rows are locked in the order they are returned
	FOR r IN SELECT * FROM ref.accounts
			WHERE account IN (transfer.from_account, transfer.to_account)
			ORDER BY account_id FOR UPDATE LOOP
		IF r.account = transfer.from_account THEN
			f := r;
		ELSE
			t := r;
		END IF;
	END LOOP;

	-- decision
	IF f.account_id IS NULL THEN
		RAISE EXCEPTION 'account "%" not found', transfer.from_account
			USING ERRCODE = 'ES003', DETAIL = 'No account of that name has been opened.';
	END IF;
	IF t.account_id IS NULL THEN
		RAISE EXCEPTION 'account "%" not found', transfer.to_account
			USING ERRCODE = 'ES003', DETAIL = 'No account of that name has been opened.';
	END IF;
	IF f.status <> 'open' THEN
		RAISE EXCEPTION 'account "%" is %', f.account, f.status
			USING ERRCODE = 'ES005', DETAIL = 'Only an open account accepts debits and credits.';
	END IF;
	IF t.status <> 'open' THEN
		RAISE EXCEPTION 'account "%" is %', t.account, t.status
			USING ERRCODE = 'ES005', DETAIL = 'Only an open account accepts debits and credits.';
	END IF;
	IF f.currency <> t.currency THEN
		RAISE EXCEPTION 'currency mismatch between account "%" (%) and account "%" (%)',
			f.account, f.currency, t.account, t.currency
			USING ERRCODE = 'ES006',
				  DETAIL = 'A transfer moves money between accounts of one currency.';
	END IF;
	IF f.available < transfer.amount - f.overdraft_limit THEN
		RAISE EXCEPTION 'insufficient funds in account "%"', f.account
			USING ERRCODE = 'ES001',
				  DETAIL = format('Available %s, overdraft limit %s, debit %s.',
								  f.available, f.overdraft_limit, transfer.amount);
	END IF;
	IF t.max_balance IS NOT NULL
			AND t.balance::numeric + t.pending_in + transfer.amount > t.max_balance THEN
		RAISE EXCEPTION 'balance limit exceeded in account "%"', t.account
			USING ERRCODE = 'ES002',
				  DETAIL = format('Balance %s, pending in %s, credit %s, max_balance %s.',
								  t.balance, t.pending_in, transfer.amount, t.max_balance);
	END IF;
	v_bal_f := f.balance - transfer.amount;		-- 22003 if out of range
	v_bal_t := t.balance + transfer.amount;

	-- events and projections
	v_at := greatest(now(), f.updated_at, t.updated_at);
	v_seq_f := nextval('ref.events_seq_seq');
	v_seq_t := nextval('ref.events_seq_seq');
	v_data_f := jsonb_build_object('to', t.account, 'to_account_id', t.account_id);
	v_data_t := jsonb_build_object('from', f.account, 'from_account_id', f.account_id);
	IF transfer.id IS NOT NULL THEN
		v_data_f := v_data_f || jsonb_build_object('transfer_id', transfer.id);
		v_data_t := v_data_t || jsonb_build_object('transfer_id', transfer.id);
	END IF;
	v_hash_f := ref.event_hash(f.last_hash, v_seq_f, f.account_id, f.version + 1,
		'TransferSent', -transfer.amount, v_data_f, transfer.id, v_at, v_at);
	v_hash_t := ref.event_hash(t.last_hash, v_seq_t, t.account_id, t.version + 1,
		'TransferReceived', transfer.amount, v_data_t, transfer.id, v_at, v_at);
	INSERT INTO ref.events (seq, account_id, version, type, amount, data,
			command_id, recorded_at, effective_at, hash)
		VALUES (v_seq_f, f.account_id, f.version + 1, 'TransferSent', -transfer.amount,
				v_data_f, transfer.id, v_at, v_at, v_hash_f),
			   (v_seq_t, t.account_id, t.version + 1, 'TransferReceived', transfer.amount,
				v_data_t, transfer.id, v_at, v_at, v_hash_t);
	UPDATE ref.accounts
		SET balance = v_bal_f, version = f.version + 1, last_seq = v_seq_f,
			updated_at = v_at, last_hash = v_hash_f
		WHERE account_id = f.account_id;
	UPDATE ref.accounts
		SET balance = v_bal_t, version = t.version + 1, last_seq = v_seq_t,
			updated_at = v_at, last_hash = v_hash_t
		WHERE account_id = t.account_id;

	IF transfer.id IS NOT NULL THEN
		INSERT INTO ref.commands (command_id, command, seq)
			VALUES (transfer.id, v_cmd, v_seq_t);
	END IF;
	RETURN v_seq_t;
END
$$;

-------------------------------------------------------------------------------
-- Checking (not on the measured path)
-------------------------------------------------------------------------------

-- One row per check, like es_verify: hash_chain (every link recomputed, the
-- projection's last_hash is the last link), versions (1, 2, 3, ... per
-- account), projection (balance, version, last_seq equal the fold of the
-- log), conservation (sum of balances = sum of amounts, per currency).
CREATE FUNCTION ref.verify()
	RETURNS TABLE(check_name text, ok boolean, checked bigint, first_bad_seq bigint)
	LANGUAGE sql STABLE
BEGIN ATOMIC
	WITH e AS (
		SELECT ev.*,
			   coalesce(lag(ev.hash) OVER w, ref.genesis_hash()) AS prev_hash,
			   row_number() OVER w AS n
		FROM ref.events ev
		WINDOW w AS (PARTITION BY ev.account_id ORDER BY ev.version)
	), folded AS (
		SELECT account_id, sum(amount) AS balance, max(version) AS version,
			   max(seq) AS last_seq, (array_agg(hash ORDER BY version DESC))[1] AS last_hash
		FROM ref.events GROUP BY account_id
	)
	SELECT 'hash_chain', bool_and(e.hash = ref.event_hash(e.prev_hash, e.seq,
				e.account_id, e.version, e.type, e.amount, e.data, e.command_id,
				e.recorded_at, e.effective_at)),
		   count(*),
		   min(e.seq) FILTER (WHERE e.hash <> ref.event_hash(e.prev_hash, e.seq,
				e.account_id, e.version, e.type, e.amount, e.data, e.command_id,
				e.recorded_at, e.effective_at))
	FROM e
	UNION ALL
	SELECT 'versions', bool_and(e.version = e.n), count(*),
		   min(e.seq) FILTER (WHERE e.version <> e.n)
	FROM e
	UNION ALL
	SELECT 'projection',
		   coalesce(bool_and(f.account_id IS NOT NULL AND a.balance = f.balance
				AND a.version = f.version AND a.last_seq = f.last_seq
				AND a.last_hash = f.last_hash), true),
		   count(*),
		   min(a.last_seq) FILTER (WHERE f.account_id IS NULL OR a.balance <> f.balance
				OR a.version <> f.version OR a.last_seq <> f.last_seq
				OR a.last_hash <> f.last_hash)
	FROM ref.accounts a LEFT JOIN folded f USING (account_id)
	UNION ALL
	SELECT 'conservation', coalesce(bool_and(c.balances = c.flows), true), count(*), NULL
	FROM (SELECT a.currency, sum(a.balance) AS balances,
				 (SELECT coalesce(sum(ev.amount), 0)
				  FROM ref.events ev JOIN ref.accounts a2 USING (account_id)
				  WHERE a2.currency = a.currency
					AND ev.type IN ('Deposited', 'Withdrawn')) AS flows
		  FROM ref.accounts a GROUP BY a.currency) c;
END;

-------------------------------------------------------------------------------
-- Privileges: like the extension, PUBLIC gets nothing.
-------------------------------------------------------------------------------
REVOKE ALL ON ALL TABLES IN SCHEMA ref FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA ref FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ref FROM PUBLIC;
