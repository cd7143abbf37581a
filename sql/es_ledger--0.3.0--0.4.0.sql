/* es_ledger--0.3.0--0.4.0.sql: update es_ledger from 0.3.0 to 0.4.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION es_ledger UPDATE TO '0.4.0'" to load this file. \quit

-------------------------------------------------------------------------------
-- Look-alikes, before anything is created.  es_ledger is called and read with
-- unqualified names, so a function of one of its functions' names (whatever
-- its argument types), or a relation, view, type or domain of one of its
-- relations' names, that is not the extension's own would capture a
-- superuser's call or query once the extension is there, and run with the
-- superuser's rights.  The DDL guard reserves these names only from the
-- moment they are members; what was created before is found here: the
-- update is refused while any such object stands in a schema that a
-- non-superuser owns or may create in, or is owned by a non-superuser.
-- The lists are every name es_ledger 0.4.0 reserves (sql/lookalikes.sql
-- checks them against the members after the update).
-------------------------------------------------------------------------------
DO $lookalikes$
DECLARE
	functions CONSTANT pg_catalog.text[] := '{es_account_of,es_accounts_at,es_apply,es_apply_each,
		es_balance_at,es_balance_effective_at,es_check_shape,
		es_deposit,es_digest,es_drop_snapshots,es_expire_pending,
		es_guard_ddl,es_guard_drop,es_guard_projection,es_history,
		es_log_handler,es_open_account,es_projection_create,
		es_projection_drop,es_projection_pause,es_projection_rebuild,
		es_projection_resume,es_projection_run,es_read,
		es_rebuild_projections,es_replay,es_restore_to,es_reverse,
		es_snapshot,es_stats_counters,es_stats_events,es_stats_reset,es_transfer,es_transfer_of,es_verify,
		es_verify_digest,es_withdraw}';
	relations CONSTANT pg_catalog.text[] := '{es_accounts,es_accounts_account_id_seq,
		es_accounts_account_key,es_accounts_pkey,es_commands,
		es_commands_pkey,es_commands_reverses_idx,es_events,es_events_account_version_key,
		es_events_command_id_idx,es_events_opened_idx,es_events_pkey,
		es_events_seq_seq,es_events_tx_seq_idx,
		es_projection_registry,es_projection_registry_pkey,
		es_projections,es_snapshots,es_snapshots_pkey,es_stats,es_transfers,
		es_transfers_expires_idx,es_transfers_from_created_idx,
		es_transfers_from_pending_idx,es_transfers_pkey,
		es_transfers_to_created_idx,es_transfers_to_pending_idx}';
	ext CONSTANT pg_catalog.oid := (SELECT e.oid FROM pg_catalog.pg_extension e
									 WHERE e.extname OPERATOR(pg_catalog.=) 'es_ledger'::pg_catalog.name);
	found pg_catalog.text;
BEGIN
	SELECT pg_catalog.string_agg(o.what, '; ' ORDER BY o.what) INTO found
	  FROM (SELECT pg_catalog.format('%s %I.%I(%s) owned by %I',
									 CASE p.prokind WHEN 'a' THEN 'aggregate' WHEN 'p' THEN 'procedure'
									 ELSE 'function' END,
									 n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid),
									 pg_catalog.pg_get_userbyid(p.proowner)) AS what,
				   p.pronamespace AS nsp, p.proowner AS owner,
				   'pg_catalog.pg_proc'::pg_catalog.regclass AS cls, p.oid AS obj
			  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
			 WHERE p.proname::pg_catalog.text OPERATOR(pg_catalog.=) ANY (functions)
			UNION ALL
			SELECT pg_catalog.format('%s %I.%I owned by %I',
									 CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
									 WHEN 'S' THEN 'sequence' WHEN 'i' THEN 'index' WHEN 'I' THEN 'index'
									 WHEN 'c' THEN 'composite type' WHEN 'f' THEN 'foreign table' ELSE 'table' END,
									 n.nspname, c.relname, pg_catalog.pg_get_userbyid(c.relowner)),
				   c.relnamespace, c.relowner, 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid
			  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
			 WHERE c.relname::pg_catalog.text OPERATOR(pg_catalog.=) ANY (relations)
			UNION ALL
			SELECT pg_catalog.format('%s %I.%I owned by %I',
									 CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END, n.nspname, t.typname,
									 pg_catalog.pg_get_userbyid(t.typowner)),
				   t.typnamespace, t.typowner, 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid
			  FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
			 WHERE t.typname::pg_catalog.text OPERATOR(pg_catalog.=) ANY (relations)
			   AND t.typrelid OPERATOR(pg_catalog.=) 0::pg_catalog.oid) o
	 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_depend d	-- a member, or an index marked as the extension's
						WHERE d.classid OPERATOR(pg_catalog.=) o.cls AND d.objid OPERATOR(pg_catalog.=) o.obj
						  AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
						  AND d.refobjid OPERATOR(pg_catalog.=) ext)
	   AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i JOIN pg_catalog.pg_depend d	-- an index of a member table
						   ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
						  AND d.objid OPERATOR(pg_catalog.=) i.indrelid
						  AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
						  AND d.refobjid OPERATOR(pg_catalog.=) ext AND d.deptype OPERATOR(pg_catalog.=) 'e'
						WHERE o.cls OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
						  AND i.indexrelid OPERATOR(pg_catalog.=) o.obj)
	   AND (NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) o.owner)
			OR EXISTS (SELECT FROM pg_catalog.pg_roles r, pg_catalog.pg_namespace n
						WHERE n.oid OPERATOR(pg_catalog.=) o.nsp AND NOT r.rolsuper
						  AND (r.oid OPERATOR(pg_catalog.=) n.nspowner
							   OR pg_catalog.has_schema_privilege(r.oid, n.oid, 'CREATE'))));
	IF found IS NOT NULL THEN
		RAISE EXCEPTION USING
			ERRCODE = 'duplicate_object',
			MESSAGE = 'cannot update es_ledger to 0.4.0: objects bearing names it reserves already exist',
			DETAIL = 'Found: ' OPERATOR(pg_catalog.||) found OPERATOR(pg_catalog.||) '.  Each could capture an unqualified call or query meant for es_ledger and run with its caller''s rights.',
			HINT = 'Drop or rename each of them (or, as a superuser, move it to a schema that only superusers own and may create in), then run ALTER EXTENSION es_ledger UPDATE again.';
	END IF;
END
$lookalikes$;

-- Each section below matches a section of es_ledger--0.4.0.sql, and
-- sql/upgrade.sql checks that an updated ledger ends with exactly the
-- objects of a fresh install.

-------------------------------------------------------------------------------
-- Reversal links (security issue 14, Medium 1).  The link from a
-- compensating command to the command it reverses is the top-level
-- "reverses" of its canonical form in es_commands (and of its events' data),
-- which only es_reverse writes: a writer's metadata stays under "metadata"
-- and cannot block a reversal nor plant a link.  es_reverse finds a
-- reversal by one probe of this unique partial index, which holds only
-- reversals (no cost to other commands but the predicate) and refuses a
-- second reversal of the same command.
-- The reversals of a 0.3.0 ledger carry their link as metadata
-- {"reverses": id}, which a writer could forge.  A row keeps its link (moved
-- to the top level, the metadata es_reverse wrote dropped) only if it is
-- exactly the compensating command es_reverse builds for the command it
-- names, applied after it: a withdraw of the same amount from the same
-- account for a deposit and vice versa, a transfer of the same amount back
-- for a non-pending transfer, unfreeze for freeze and vice versa, set_limits
-- of the same account for set_limits; of several, the first.  A retry of an
-- old reversal then matches its row; a forged link is left as the writer's
-- metadata and blocks nothing.
ALTER TABLE es_commands DISABLE TRIGGER es_guard;
WITH candidate AS (
	SELECT r.command_id, o.command_id AS reversed, r.seq,
	       (r.command OPERATOR(pg_catalog.->>) 'type') AS rtype,
	       (o.command OPERATOR(pg_catalog.->>) 'type') AS otype,
	       r.command AS rc, o.command AS oc
	  FROM es_commands r
	  JOIN es_commands o
	    ON o.command_id OPERATOR(pg_catalog.=)
	       ((r.command OPERATOR(pg_catalog.->) 'metadata') OPERATOR(pg_catalog.->>) 'reverses')
	 WHERE (r.command OPERATOR(pg_catalog.->) 'metadata') OPERATOR(pg_catalog.=)
	       pg_catalog.jsonb_build_object('reverses', o.command_id)
	   AND r.seq OPERATOR(pg_catalog.>) o.seq
	   AND NOT (o.command OPERATOR(pg_catalog.?) 'pending')
	   AND NOT (r.command OPERATOR(pg_catalog.?|) ARRAY['pending', 'effective_at', 'expected_version', 'reverses'])
), legacy AS (
	SELECT DISTINCT ON (reversed) command_id, reversed
	  FROM candidate
	 WHERE CASE
		WHEN otype OPERATOR(pg_catalog.=) 'deposit' OR otype OPERATOR(pg_catalog.=) 'withdraw' THEN
			rtype OPERATOR(pg_catalog.=) (CASE WHEN otype OPERATOR(pg_catalog.=) 'deposit' THEN 'withdraw' ELSE 'deposit' END)
			AND (rc OPERATOR(pg_catalog.->) 'account') OPERATOR(pg_catalog.=) (oc OPERATOR(pg_catalog.->) 'account')
			AND (rc OPERATOR(pg_catalog.->) 'amount') OPERATOR(pg_catalog.=) (oc OPERATOR(pg_catalog.->) 'amount')
		WHEN otype OPERATOR(pg_catalog.=) 'transfer' THEN
			rtype OPERATOR(pg_catalog.=) 'transfer'
			AND (rc OPERATOR(pg_catalog.->) 'from') OPERATOR(pg_catalog.=) (oc OPERATOR(pg_catalog.->) 'to')
			AND (rc OPERATOR(pg_catalog.->) 'to') OPERATOR(pg_catalog.=) (oc OPERATOR(pg_catalog.->) 'from')
			AND (rc OPERATOR(pg_catalog.->) 'amount') OPERATOR(pg_catalog.=) (oc OPERATOR(pg_catalog.->) 'amount')
		WHEN otype OPERATOR(pg_catalog.=) 'freeze_account' OR otype OPERATOR(pg_catalog.=) 'unfreeze_account' THEN
			rtype OPERATOR(pg_catalog.=) (CASE WHEN otype OPERATOR(pg_catalog.=) 'freeze_account' THEN 'unfreeze_account' ELSE 'freeze_account' END)
			AND (rc OPERATOR(pg_catalog.->) 'account') OPERATOR(pg_catalog.=) (oc OPERATOR(pg_catalog.->) 'account')
		WHEN otype OPERATOR(pg_catalog.=) 'set_limits' THEN
			rtype OPERATOR(pg_catalog.=) 'set_limits'
			AND (rc OPERATOR(pg_catalog.->) 'account') OPERATOR(pg_catalog.=) (oc OPERATOR(pg_catalog.->) 'account')
		ELSE false
	 END
	 ORDER BY reversed, seq
)
UPDATE es_commands c
   SET command = (c.command OPERATOR(pg_catalog.-) 'metadata')
                 OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('reverses', l.reversed)
  FROM legacy l
 WHERE c.command_id OPERATOR(pg_catalog.=) l.command_id;
ALTER TABLE es_commands ENABLE ALWAYS TRIGGER es_guard;
CREATE UNIQUE INDEX es_commands_reverses_idx
	ON es_commands ((command OPERATOR(pg_catalog.->>) 'reverses'))
	WHERE command OPERATOR(pg_catalog.?) 'reverses';
ALTER INDEX es_commands_reverses_idx DEPENDS ON EXTENSION es_ledger;
COMMENT ON INDEX es_commands_reverses_idx IS 'the command reversing each reversed command: es_reverse''s links, at most one per command';

-- ops (issue 15, section 2): es_projections says what an async projection's
-- lag waits for.  es_read's horizon is this database's running and prepared
-- transactions; a prepared transaction of this database holds every follower
-- back until it is committed or rolled back: waiting_for names the oldest
-- one (NULL when there is none, for inline projections, or without lag).
-- The column is appended, so the view keeps its other columns, grants and
-- comment.
-------------------------------------------------------------------------------
CREATE OR REPLACE VIEW es_projections AS
SELECT p.name,
	   p.owner::pg_catalog.regrole AS owner,
	   p.mode,
	   p.state,
	   p.handler::pg_catalog.regprocedure AS handler,
	   p.reset::pg_catalog.regprocedure AS reset,
	   CASE WHEN p.mode OPERATOR(pg_catalog.=) 'inline' AND p.state OPERATOR(pg_catalog.=) 'running'
			THEN h.head ELSE p.last_seq END AS last_seq,
	   p.cursor,
	   CASE WHEN p.mode OPERATOR(pg_catalog.=) 'async' THEN p.applied END AS applied,
	   l.lag_events,
	   l.lag_time,
	   p.applied_at,
	   p.last_error,
	   p.error_seq,
	   p.error_at,
	   p.created_at,
	   CASE WHEN p.mode OPERATOR(pg_catalog.=) 'async' AND l.lag_events OPERATOR(pg_catalog.>) 0 THEN
		(SELECT 'prepared transaction ' OPERATOR(pg_catalog.||) pg_catalog.quote_literal(x.gid)
				OPERATOR(pg_catalog.||) ' (xid ' OPERATOR(pg_catalog.||) x.transaction::pg_catalog.text
				OPERATOR(pg_catalog.||) ', prepared at ' OPERATOR(pg_catalog.||) x.prepared::pg_catalog.text
				OPERATOR(pg_catalog.||) ')'
		   FROM pg_catalog.pg_prepared_xacts x
		  WHERE x.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
		  ORDER BY pg_catalog.age(x.transaction) DESC LIMIT 1)
	   END AS waiting_for
  FROM es_projection_registry p
 CROSS JOIN LATERAL (SELECT pg_catalog.max(e.seq) AS head FROM es_events e) h
 CROSS JOIN LATERAL (
	SELECT pg_catalog.count(*) AS lag_events,
		   COALESCE(pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.min(e.recorded_at),
								'0'::pg_catalog.interval) AS lag_time
	  FROM es_events e
	 WHERE e.seq OPERATOR(pg_catalog.>) p.high_seq
	   AND NOT (p.mode OPERATOR(pg_catalog.=) 'inline' AND p.state OPERATOR(pg_catalog.=) 'running')) l;

-- Rejections as values (issue 16, section 1): es_apply_each's row of a
-- rejected command carries its DETAIL in a last column, detail.  A result
-- type cannot change in place: drop and create again, same grants.
-------------------------------------------------------------------------------

-- First-app frictions (issue 18, helper eco): shorthands with metadata and
-- effective_at; es_ledger_writer opens accounts without credit (the role
-- check is in C, EsDecideCommandRole); what a call returns finds its rows
-- (es_account_of, es_transfer_of); the balance at a valid time
-- (es_balance_effective_at); transfers by account and time indexed out of
-- the box.  Plain SQL functions, SECURITY INVOKER: they read what their
-- caller may read, with search_path pinned to pg_catalog, then the
-- extension's schema, then pg_temp.  pg_catalog first: the extension's
-- schema is often public, which the database owner owns, and a type it
-- planted there under a built-in name (a domain public.text whose CHECK
-- calls its function) would otherwise be read for '...'::text and run its
-- code as the caller, a superuser's included (sql/planted_types.sql).
-------------------------------------------------------------------------------
DROP FUNCTION es_open_account(text, text, bigint, bigint, text);
DROP FUNCTION es_deposit(text, bigint, text);
DROP FUNCTION es_withdraw(text, bigint, text);
DROP FUNCTION es_transfer(text, text, bigint, text);

CREATE FUNCTION es_open_account(account text, currency text,
		overdraft_limit bigint DEFAULT 0, max_balance bigint DEFAULT NULL,
		id text DEFAULT NULL, metadata jsonb DEFAULT NULL,
		effective_at timestamptz DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_open_account' LANGUAGE C VOLATILE;
CREATE FUNCTION es_deposit(account text, amount bigint, id text DEFAULT NULL,
		metadata jsonb DEFAULT NULL, effective_at timestamptz DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_deposit' LANGUAGE C VOLATILE;
CREATE FUNCTION es_withdraw(account text, amount bigint, id text DEFAULT NULL,
		metadata jsonb DEFAULT NULL, effective_at timestamptz DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_withdraw' LANGUAGE C VOLATILE;
CREATE FUNCTION es_transfer(from_account text, to_account text, amount bigint,
		id text DEFAULT NULL, metadata jsonb DEFAULT NULL,
		effective_at timestamptz DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_transfer' LANGUAGE C VOLATILE;

-- The account an event is on: es_account_of(es_open_account(...)) is the
-- account just opened; any seq a command returned names its last event.
-- es_account_of and es_transfer_of are VOLATILE so that they read with a
-- snapshot of their own and see rows written earlier in the same statement
-- (es_account_of(es_open_account(...)) in one SELECT); STABLE would read
-- with the statement's snapshot, taken before the command ran.
CREATE FUNCTION es_account_of(seq bigint) RETURNS SETOF es_accounts
	LANGUAGE sql VOLATILE STRICT SET search_path = pg_catalog, @extschema@, pg_temp
	AS $fn$
	SELECT a.* FROM es_accounts a
	 WHERE a.account_id OPERATOR(pg_catalog.=)
		   (SELECT e.account_id FROM es_events e WHERE e.seq OPERATOR(pg_catalog.=) $1)
$fn$;

-- The es_transfers row of a transfer one of whose events is seq: what
-- es_transfer, a pending transfer, post_pending or void_pending returned.
-- A transfer with an id is found by its id (every event of it carries
-- data->>'transfer_id'): its key is the first event of the command of that
-- id (es_events_command_id_idx), ids being unique for ever; one without is keyed by its TransferSent event,
-- which its TransferReceived event follows in the same transaction: the
-- nearest earlier TransferSent of that transaction between the same
-- accounts is its own (a command writes its two events in that order).
CREATE FUNCTION es_transfer_of(seq bigint) RETURNS SETOF es_transfers
	LANGUAGE sql VOLATILE STRICT SET search_path = pg_catalog, @extschema@, pg_temp
	AS $fn$
	WITH e AS (SELECT * FROM es_events e WHERE e.seq OPERATOR(pg_catalog.=) $1)
	SELECT t.* FROM es_transfers t
	 WHERE t.seq OPERATOR(pg_catalog.=)
		   (SELECT pg_catalog.min(s.seq) FROM e, es_events s
			 WHERE e.data OPERATOR(pg_catalog.?) 'transfer_id'
			   AND s.command_id OPERATOR(pg_catalog.=) (e.data OPERATOR(pg_catalog.->>) 'transfer_id'::text))
	UNION ALL
	SELECT t.* FROM es_transfers t, e
	 WHERE NOT e.data OPERATOR(pg_catalog.?) 'transfer_id' AND e.type OPERATOR(pg_catalog.=) 'TransferSent'::text
	   AND t.seq OPERATOR(pg_catalog.=) e.seq
	UNION ALL
	SELECT t.* FROM es_transfers t
	 WHERE t.seq OPERATOR(pg_catalog.=)
		   (SELECT s.seq FROM e, es_events s
			 WHERE NOT e.data OPERATOR(pg_catalog.?) 'transfer_id' AND e.type OPERATOR(pg_catalog.=) 'TransferReceived'::text
			   AND s.account_id OPERATOR(pg_catalog.=) ((e.data OPERATOR(pg_catalog.->>) 'from_account_id'::text)::bigint)
			   AND s.tx OPERATOR(pg_catalog.=) e.tx
			   AND s.seq OPERATOR(pg_catalog.<) e.seq
			   AND s.type OPERATOR(pg_catalog.=) 'TransferSent'::text
			   AND (s.data OPERATOR(pg_catalog.->>) 'to_account_id'::text)::bigint OPERATOR(pg_catalog.=) e.account_id
			 ORDER BY s.seq DESC LIMIT 1)
$fn$;

-- The balance at a valid time: the events effective by effective_at,
-- whenever they were recorded (a top-up back-dated to yesterday counts
-- for yesterday).  es_balance_at is transaction time.
CREATE FUNCTION es_balance_effective_at(account text, effective_at timestamptz) RETURNS bigint
	LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, @extschema@, pg_temp
	AS $fn$ SELECT (es_replay($1, NULL, $2)).balance $fn$;

-- Statements by account and time, out of the box (indexes a user adds to
-- the extension's tables are not in a dump: see README "Indexes").
CREATE INDEX es_transfers_from_created_idx ON es_transfers (from_account_id, created_at);
CREATE INDEX es_transfers_to_created_idx ON es_transfers (to_account_id, created_at);
ALTER INDEX es_transfers_from_created_idx DEPENDS ON EXTENSION es_ledger;
ALTER INDEX es_transfers_to_created_idx DEPENDS ON EXTENSION es_ledger;

REVOKE ALL ON FUNCTION es_open_account(text, text, bigint, bigint, text, jsonb, timestamptz),
	es_deposit(text, bigint, text, jsonb, timestamptz),
	es_withdraw(text, bigint, text, jsonb, timestamptz),
	es_transfer(text, text, bigint, text, jsonb, timestamptz),
	es_account_of(bigint), es_transfer_of(bigint),
	es_balance_effective_at(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION es_deposit(text, bigint, text, jsonb, timestamptz),
	es_withdraw(text, bigint, text, jsonb, timestamptz),
	es_transfer(text, text, bigint, text, jsonb, timestamptz)
	TO es_ledger_writer;
-- Writers open accounts without credit; es_apply checks the limits (42501).
GRANT EXECUTE ON FUNCTION es_open_account(text, text, bigint, bigint, text, jsonb, timestamptz)
	TO es_ledger_writer, es_ledger_admin;
GRANT EXECUTE ON FUNCTION es_account_of(bigint), es_transfer_of(bigint),
	es_balance_effective_at(text, timestamptz) TO es_ledger_reader;

-- es_history pages: after_version and max_count (es_history.c).
DROP FUNCTION es_history(text, timestamptz, timestamptz);
CREATE FUNCTION es_history(account text, since timestamptz DEFAULT NULL,
		until timestamptz DEFAULT NULL, after_version bigint DEFAULT NULL,
		max_count integer DEFAULT NULL)
	RETURNS TABLE(seq bigint, version bigint, type text, amount bigint, balance_after bigint,
		recorded_at timestamptz, effective_at timestamptz, command_id text, data jsonb)
	AS 'MODULE_PATHNAME', 'es_history' LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION es_history(text, timestamptz, timestamptz, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION es_history(text, timestamptz, timestamptz, bigint, integer) TO es_ledger_reader;

-------------------------------------------------------------------------------
DROP FUNCTION es_apply_each(jsonb);
CREATE FUNCTION es_apply_each(commands jsonb)
	RETURNS TABLE(ord int, seq bigint, sqlstate text, message text, detail text)
	AS 'MODULE_PATHNAME', 'es_apply_each' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION es_apply_each(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION es_apply_each(jsonb) TO es_ledger_writer, es_ledger_admin;

-------------------------------------------------------------------------------
-- Comments (issue 16, section 5): every function and every column of the
-- extension explained in the catalog, for \df+, \d+ and \dd.  Kept last so
-- that the sections of other topics stay apart; the regression test
-- sql/comments.sql fails when a member function, table or view, column or
-- sequence lacks a comment.  The same section ends es_ledger--0.4.0.sql.
-------------------------------------------------------------------------------

COMMENT ON SEQUENCE es_events_seq_seq IS 'numbers events: es_events.seq (gaps where a transaction rolled back)';
COMMENT ON SEQUENCE es_accounts_account_id_seq IS 'numbers accounts: es_accounts.account_id';

-- Functions: the commands
COMMENT ON FUNCTION es_apply(jsonb) IS
	'applies one command object, or an array of them as an atomic batch; returns the seq of the last event written (the original one for a repeated id); ES001-ES014 refusals, 42501 outside the caller''s role';
COMMENT ON FUNCTION es_apply_each(jsonb) IS
	'applies each command of an array on its own, in order; one row per command: its seq, or the sqlstate and message of its refusal (which wrote nothing)';
COMMENT ON FUNCTION es_open_account(text, text, bigint, bigint, text, jsonb, timestamptz) IS
	'es_apply of an open_account command: account, currency, overdraft_limit (default 0), max_balance (default none), id; returns the seq';
COMMENT ON FUNCTION es_deposit(text, bigint, text, jsonb, timestamptz) IS
	'es_apply of a deposit command: account, amount (minor units), id; returns the seq';
COMMENT ON FUNCTION es_withdraw(text, bigint, text, jsonb, timestamptz) IS
	'es_apply of a withdraw command: account, amount (minor units), id; returns the seq (ES001 past the overdraft limit)';
COMMENT ON FUNCTION es_transfer(text, text, bigint, text, jsonb, timestamptz) IS
	'es_apply of an immediate transfer command: from_account, to_account, amount, id; returns the seq of its last event';
COMMENT ON FUNCTION es_expire_pending() IS
	'releases every pending transfer past its timeout (TransferExpired on both accounts) and returns how many; never waits for a row lock';

-- Functions: reading the log
COMMENT ON FUNCTION es_replay(text, timestamptz, timestamptz) IS
	'the account folded from es_events alone (from its newest usable snapshot): all events, or those recorded by as_of and/or effective by effective_until; ES003 if not open by then';
COMMENT ON FUNCTION es_history(text, timestamptz, timestamptz, bigint, int) IS
	'the account''s events in version order, each with the balance after it; only those recorded within [since, until]';
COMMENT ON FUNCTION es_balance_at(text, timestamptz) IS
	'the account''s balance folded from the events recorded at or before as_of (NULL: now); NULL if it was opened later';
COMMENT ON FUNCTION es_accounts_at(timestamptz) IS
	'the whole ledger as of as_of: one es_accounts row per account opened by then, folded from the log; NULL: now';

-- Functions: snapshots, undo, administration
COMMENT ON FUNCTION es_snapshot(text) IS
	'stores a snapshot of the account at its current version, folded from the log, and returns the version';
COMMENT ON FUNCTION es_drop_snapshots(text) IS
	'deletes the account''s snapshots (NULL: all) and returns how many; replay is only slower';
COMMENT ON FUNCTION es_reverse(text, text) IS
	'undoes the command applied under command_id by applying its compensating command under the id id; returns its seq; a command is reversed at most once';
COMMENT ON FUNCTION es_rebuild_projections() IS
	'rewrites es_accounts and es_transfers from the log in place and returns the events read; superusers and the extension owner only';
COMMENT ON FUNCTION es_restore_to(timestamptz, text) IS
	'creates schema target_schema with tables accounts and transfers as they stood at as_of, folded from the log; returns the rows written';

-- Functions: integrity
COMMENT ON FUNCTION es_verify(text) IS
	'recomputes checksums, hash chains, versions, folds, projections, conservation, the idempotency register and snapshots from the log (whole ledger or one account); one row per check with the first bad seq';
COMMENT ON FUNCTION es_digest() IS
	'a digest of the log at the largest seq drawn, recomputed from the events; keep it outside the database for es_verify_digest';
COMMENT ON FUNCTION es_verify_digest(bigint, bytea) IS
	'true if no event at or before seq changed, vanished or was inserted since es_digest returned digest';

-- Functions: user projections
COMMENT ON FUNCTION es_projection_create(text, regprocedure, text, regprocedure) IS
	'registers a user projection owned by the caller: handler(es_events) called with every event, inline (in es_apply) or async (by a worker); reset() empties its tables first';
COMMENT ON FUNCTION es_projection_pause(text) IS
	'stops applying events to the projection; its position is kept';
COMMENT ON FUNCTION es_projection_resume(text) IS
	'applies events again from where the projection stopped and clears its error; an inline one catches up now (returns the count)';
COMMENT ON FUNCTION es_projection_rebuild(text) IS
	'calls the projection''s reset function and applies the whole log again (inline: now, async: by the worker)';
COMMENT ON FUNCTION es_projection_drop(text) IS
	'unregisters the projection; its tables stay';
COMMENT ON FUNCTION es_projection_run(text, bigint) IS
	'applies what a running async projection (NULL: each the caller owns) has not seen yet, in the caller''s transaction; returns the events applied';

-- Functions: internal
COMMENT ON FUNCTION es_log_handler(internal) IS
	'internal: handler of the es_log table access method (append-only heap)';
COMMENT ON FUNCTION es_guard_projection() IS
	'internal: statement trigger es_guard; refuses writes to the ledger''s tables from outside es_apply (ES011)';
COMMENT ON FUNCTION es_guard_ddl() IS
	'internal: event triggers es_guard_ddl and es_guard_rewrite; refuse DDL that would change or bypass the ledger (ES011)';
COMMENT ON FUNCTION es_guard_drop() IS
	'internal: event trigger es_guard_drop; refuses DROP TRIGGER of a guard trigger (ES011)';

-- es_events
COMMENT ON COLUMN es_events.seq IS 'global position, from es_events_seq_seq; primary key; within an account it increases with version';
COMMENT ON COLUMN es_events.account_id IS 'the account (stream) the event belongs to: es_accounts.account_id';
COMMENT ON COLUMN es_events.version IS 'position in the account''s stream: 1, 2, 3, ... without gaps';
COMMENT ON COLUMN es_events.type IS 'event type: AccountOpened, Deposited, Withdrawn, TransferSent, TransferReceived, TransferReserved, TransferPosted, ...';
COMMENT ON COLUMN es_events.amount IS 'money moved on this account in minor units: + credit, - debit, 0 where none';
COMMENT ON COLUMN es_events.data IS 'a JSON object: the event''s other fields (counterparty, limits, ...) and the command''s metadata';
COMMENT ON COLUMN es_events.command_id IS 'the id of the command that wrote the event, or NULL';
COMMENT ON COLUMN es_events.recorded_at IS 'transaction time: when the ledger learned of the event';
COMMENT ON COLUMN es_events.effective_at IS 'valid time: the command''s effective_at, else recorded_at';
COMMENT ON COLUMN es_events.checksum IS 'CRC-32C of the event''s canonical encoding';
COMMENT ON COLUMN es_events.hash IS 'SHA-256 of the account''s previous hash (32 zero bytes at version 1) and the encoding: the hash chain';
COMMENT ON COLUMN es_events.format IS 'version of the canonical encoding the event was sealed with';
COMMENT ON COLUMN es_events.tx IS 'full id of the transaction that wrote the event (es_read''s order); not covered by checksum or hash';

-- es_accounts
COMMENT ON COLUMN es_accounts.account_id IS 'primary key, from es_accounts_account_id_seq';
COMMENT ON COLUMN es_accounts.account IS 'the account''s name; unique';
COMMENT ON COLUMN es_accounts.currency IS 'the account''s currency; every transfer is between accounts of one currency';
COMMENT ON COLUMN es_accounts.status IS 'open, frozen or closed';
COMMENT ON COLUMN es_accounts.balance IS 'sum of the account''s event amounts, in minor units';
COMMENT ON COLUMN es_accounts.pending_out IS 'reserved by pending transfers out of the account';
COMMENT ON COLUMN es_accounts.pending_in IS 'reserved by pending transfers into the account';
COMMENT ON COLUMN es_accounts.available IS 'balance - pending_out';
COMMENT ON COLUMN es_accounts.overdraft_limit IS 'how far below zero available may go';
COMMENT ON COLUMN es_accounts.max_balance IS 'the cap on balance + pending_in; NULL: none';
COMMENT ON COLUMN es_accounts.version IS 'the version of the account''s last event';
COMMENT ON COLUMN es_accounts.last_seq IS 'the seq of the account''s last event';
COMMENT ON COLUMN es_accounts.opened_at IS 'recorded_at of the account''s AccountOpened event';
COMMENT ON COLUMN es_accounts.updated_at IS 'recorded_at of the account''s last event';
COMMENT ON COLUMN es_accounts.last_hash IS 'hash of the account''s last event: the head of its hash chain';

-- es_commands
COMMENT ON COLUMN es_commands.command_id IS 'the command''s id; primary key';
COMMENT ON COLUMN es_commands.command IS 'the command''s canonical form: the same id with another command fails with ES008';
COMMENT ON COLUMN es_commands.seq IS 'the seq es_apply returned for the command, returned again on a retry';

-- es_transfers
COMMENT ON COLUMN es_transfers.transfer_id IS 'the command''s id, or # followed by seq for a transfer applied without one';
COMMENT ON COLUMN es_transfers.from_account IS 'the debited account''s name';
COMMENT ON COLUMN es_transfers.to_account IS 'the credited account''s name';
COMMENT ON COLUMN es_transfers.amount IS 'the amount moved (immediate) or reserved (pending)';
COMMENT ON COLUMN es_transfers.posted_amount IS 'the amount moved: amount for an immediate transfer, what a post moved, 0 while pending or once voided or expired';
COMMENT ON COLUMN es_transfers.status IS 'posted, pending, voided or expired';
COMMENT ON COLUMN es_transfers.created_at IS 'recorded_at of the transfer''s first event';
COMMENT ON COLUMN es_transfers.expires_at IS 'created_at + timeout of a pending transfer; NULL without a timeout';
COMMENT ON COLUMN es_transfers.updated_at IS 'recorded_at of the transfer''s last event';
COMMENT ON COLUMN es_transfers.seq IS 'the seq of the transfer''s first event; primary key';
COMMENT ON COLUMN es_transfers.from_account_id IS 'the debited account''s id';
COMMENT ON COLUMN es_transfers.to_account_id IS 'the credited account''s id';
COMMENT ON COLUMN es_transfers.command_id IS 'the creating command''s id, or NULL';

-- es_snapshots
COMMENT ON COLUMN es_snapshots.account_id IS 'the account: es_accounts.account_id';
COMMENT ON COLUMN es_snapshots.account IS 'as es_accounts.account, at version';
COMMENT ON COLUMN es_snapshots.currency IS 'as es_accounts.currency, at version';
COMMENT ON COLUMN es_snapshots.status IS 'as es_accounts.status, at version';
COMMENT ON COLUMN es_snapshots.balance IS 'as es_accounts.balance, at version';
COMMENT ON COLUMN es_snapshots.pending_out IS 'as es_accounts.pending_out, at version';
COMMENT ON COLUMN es_snapshots.pending_in IS 'as es_accounts.pending_in, at version';
COMMENT ON COLUMN es_snapshots.available IS 'as es_accounts.available, at version';
COMMENT ON COLUMN es_snapshots.overdraft_limit IS 'as es_accounts.overdraft_limit, at version';
COMMENT ON COLUMN es_snapshots.max_balance IS 'as es_accounts.max_balance, at version';
COMMENT ON COLUMN es_snapshots.version IS 'the version of the account the snapshot holds; with account_id the primary key';
COMMENT ON COLUMN es_snapshots.last_seq IS 'the seq of the event at version';
COMMENT ON COLUMN es_snapshots.opened_at IS 'as es_accounts.opened_at';
COMMENT ON COLUMN es_snapshots.updated_at IS 'recorded_at of the event at version';
COMMENT ON COLUMN es_snapshots.last_hash IS 'the log''s hash at version';
COMMENT ON COLUMN es_snapshots.max_recorded_at IS 'greatest recorded_at of events 1..version: usable for as_of >= it';
COMMENT ON COLUMN es_snapshots.max_effective_at IS 'greatest effective_at of events 1..version: usable for effective_until >= it (or none)';
COMMENT ON COLUMN es_snapshots.format IS 'format version of the row';
COMMENT ON COLUMN es_snapshots.magic IS 'magic number 0x4553534E (ESSN)';
COMMENT ON COLUMN es_snapshots.checksum IS 'SHA-256 over all the other columns';

-- es_projection_registry
COMMENT ON COLUMN es_projection_registry.name IS 'the projection''s name; primary key';
COMMENT ON COLUMN es_projection_registry.owner IS 'the role that created it; its handlers run as this role';
COMMENT ON COLUMN es_projection_registry.mode IS 'inline or async';
COMMENT ON COLUMN es_projection_registry.state IS 'running, paused or failed';
COMMENT ON COLUMN es_projection_registry.handler IS 'the handler function, called with each event';
COMMENT ON COLUMN es_projection_registry.reset IS 'the reset function, called before the first event; NULL: none';
COMMENT ON COLUMN es_projection_registry.search_path IS 'the creator''s search_path, set for the handlers';
COMMENT ON COLUMN es_projection_registry.cursor IS 'async: the es_read cursor of the last event applied; NULL: from the start';
COMMENT ON COLUMN es_projection_registry.last_seq IS 'async: the seq of the last event applied; inline: the position of a pause';
COMMENT ON COLUMN es_projection_registry.high_seq IS 'async: the largest seq applied; inline: the position of a pause';
COMMENT ON COLUMN es_projection_registry.applied IS 'async: events applied since creation or the last rebuild';
COMMENT ON COLUMN es_projection_registry.applied_at IS 'async: when the last batch was applied';
COMMENT ON COLUMN es_projection_registry.last_error IS 'why it failed: SQLSTATE: message (context)';
COMMENT ON COLUMN es_projection_registry.error_seq IS 'the event its handler failed on';
COMMENT ON COLUMN es_projection_registry.error_at IS 'when it failed';
COMMENT ON COLUMN es_projection_registry.created_at IS 'when it was created';

-- es_projections (view)
COMMENT ON COLUMN es_projections.name IS 'the projection''s name';
COMMENT ON COLUMN es_projections.owner IS 'the role that created it; its handlers run as this role';
COMMENT ON COLUMN es_projections.mode IS 'inline or async';
COMMENT ON COLUMN es_projections.state IS 'running, paused or failed';
COMMENT ON COLUMN es_projections.handler IS 'the handler function';
COMMENT ON COLUMN es_projections.reset IS 'the reset function, or NULL';
COMMENT ON COLUMN es_projections.last_seq IS 'seq of the last event applied (a running inline projection: the head of the log)';
COMMENT ON COLUMN es_projections.cursor IS 'async: the es_read cursor of the last event applied';
COMMENT ON COLUMN es_projections.applied IS 'async: events applied since creation or the last rebuild';
COMMENT ON COLUMN es_projections.lag_events IS 'committed events with a seq above the largest applied (0 for a running inline projection)';
COMMENT ON COLUMN es_projections.lag_time IS 'age of the oldest event counted in lag_events; 0 if none';
COMMENT ON COLUMN es_projections.applied_at IS 'async: when the last batch was applied';
COMMENT ON COLUMN es_projections.last_error IS 'why it failed: SQLSTATE: message (context)';
COMMENT ON COLUMN es_projections.error_seq IS 'the event its handler failed on';
COMMENT ON COLUMN es_projections.error_at IS 'when it failed';
COMMENT ON COLUMN es_projections.created_at IS 'when it was created';
COMMENT ON COLUMN es_projections.waiting_for IS 'the prepared transaction of this database an async projection''s lag waits for, if any (es_read''s horizon)';
COMMENT ON FUNCTION es_account_of(bigint) IS
	'the es_accounts row of the account whose event is seq: es_account_of(es_open_account(...)) is the account just opened';
COMMENT ON FUNCTION es_transfer_of(bigint) IS
	'the es_transfers row of the transfer one of whose events is seq (what es_transfer, a pending transfer, a post or a void returned)';
COMMENT ON FUNCTION es_balance_effective_at(text, timestamptz) IS
	'an account''s balance at a valid time: the events that had happened by effective_at, from the log alone';

-------------------------------------------------------------------------------
-- Reading by name and filter (issue 18, "Reading"): es_read returns each
-- event's account name and takes the filters for_account and event_types.
-- Nothing in SQL depends on es_read, so it is dropped and created anew.
-------------------------------------------------------------------------------
DROP FUNCTION es_read(text, integer);
CREATE FUNCTION es_read(after text DEFAULT NULL, max_count int DEFAULT 1000,
		for_account text DEFAULT NULL, event_types text[] DEFAULT NULL)
	RETURNS TABLE(cursor text, seq bigint, account_id bigint, account text, version bigint,
		type text, amount bigint, data jsonb, command_id text, recorded_at timestamptz,
		effective_at timestamptz)
	AS 'MODULE_PATHNAME', 'es_read' LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION es_read(text, integer, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION es_read(text, integer, text, text[]) TO es_ledger_reader;
COMMENT ON FUNCTION es_read(text, integer, text, text[]) IS
	'the next max_count (1..100000) committed events after the cursor after (NULL: the start), in (tx, seq) order, each with its account''s name and the cursor continuing after it; nothing skipped, nothing repeated; for_account and event_types filter, and a filtered call that scanned past its last event ends with a checkpoint row (cursor only)';

-------------------------------------------------------------------------------
-- The operator's view (issue 18, item 4; es_stats.c, es_apply.c, es_each.c;
-- doc/reference.md "es_stats").  es_stats is a view of (section, key, value,
-- detail) rows cheap enough to poll every few seconds: the counters of
-- commands applied by type and rejections by SQLSTATE since es_stats_reset
-- (shared memory: only with shared_preload_libraries = 'es_ledger'), the
-- log's events by type (es_stats_events: counted incrementally per backend,
-- es_tally.c), the accounts with the most events, snapshot coverage, projection
-- lag and what holds it back, the largest open reservations.  A view binds
-- our relations by OID when it is created; it runs as its owner, so
-- es_ledger_reader sees the aggregates only through it.  es_stats_reset is
-- for es_ledger_admin.
-------------------------------------------------------------------------------
CREATE FUNCTION es_stats_counters()
	RETURNS TABLE(kind text, key text, value bigint, detail text)
	AS 'MODULE_PATHNAME', 'es_stats_counters' LANGUAGE C VOLATILE;
CREATE FUNCTION es_stats_reset() RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'es_stats_reset' LANGUAGE C VOLATILE;
CREATE FUNCTION es_stats_events() RETURNS TABLE(type text, events bigint)
	AS 'MODULE_PATHNAME', 'es_stats_events' LANGUAGE C VOLATILE;
CREATE VIEW es_stats AS
SELECT c.kind AS section, c.key, c.value, c.detail
  FROM es_stats_counters() c
UNION ALL
SELECT 'events', e.type, e.events, NULL
  FROM es_stats_events() e
UNION ALL
SELECT 'accounts', a.account, a.version,
	   pg_catalog.concat_ws(' ', a.status, a.currency, 'balance', a.balance)
  FROM (SELECT x.account, x.version, x.status, x.currency, x.balance
		  FROM es_accounts x
		 ORDER BY x.version DESC, x.account_id
		 LIMIT 10) a
UNION ALL
SELECT 'snapshots', k.key, k.value, k.detail
  FROM (SELECT pg_catalog.count(*) AS accounts,
			   pg_catalog.count(s.top) AS covered,
			   COALESCE(pg_catalog.sum(a.version OPERATOR(pg_catalog.-) COALESCE(s.top, 0)), 0)::pg_catalog.int8 AS past,
			   COALESCE(pg_catalog.max(a.version OPERATOR(pg_catalog.-) COALESCE(s.top, 0)), 0) AS most
		  FROM es_accounts a
		  LEFT JOIN (SELECT n.account_id, pg_catalog.max(n.version) AS top
					   FROM es_snapshots n GROUP BY n.account_id) s
			ON s.account_id OPERATOR(pg_catalog.=) a.account_id) x
 CROSS JOIN LATERAL (VALUES
		('accounts', x.accounts, 'accounts in es_accounts'),
		('covered', x.covered, 'accounts with at least one snapshot'),
		('events_past_snapshot', x.past, 'events a replay of every account folds after its newest snapshot'),
		('most_past_snapshot', x.most, 'the most events a replay of one account folds after its newest snapshot')
	) AS k(key, value, detail)
UNION ALL
SELECT 'projections', p.name, l.behind,
	   pg_catalog.concat_ws(', ', pg_catalog.concat(p.mode, ' ', p.state),
			pg_catalog.concat('lag ', COALESCE(pg_catalog.now() OPERATOR(pg_catalog.-) l.oldest,
											   '0'::pg_catalog.interval)),
			CASE WHEN p.mode OPERATOR(pg_catalog.=) 'async' AND l.behind OPERATOR(pg_catalog.>) 0 THEN
			(SELECT pg_catalog.concat('waiting for prepared transaction ', pg_catalog.quote_literal(x.gid),
									  ' (xid ', x.transaction, ', prepared at ', x.prepared, ')')
			   FROM pg_catalog.pg_prepared_xacts x
			  WHERE x.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
			  ORDER BY pg_catalog.age(x.transaction) DESC LIMIT 1) END,
			CASE WHEN p.last_error IS NOT NULL THEN pg_catalog.concat('error: ', p.last_error) END)
  FROM es_projection_registry p
 CROSS JOIN LATERAL (SELECT pg_catalog.max(e.seq) AS head FROM es_events e) h
 CROSS JOIN LATERAL (
	SELECT CASE WHEN p.mode OPERATOR(pg_catalog.=) 'inline' AND p.state OPERATOR(pg_catalog.=) 'running' THEN 0
				ELSE GREATEST(COALESCE(h.head, 0) OPERATOR(pg_catalog.-) p.high_seq, 0::pg_catalog.int8) END AS behind,
		   CASE WHEN p.mode OPERATOR(pg_catalog.=) 'inline' AND p.state OPERATOR(pg_catalog.=) 'running' THEN NULL
				ELSE (SELECT e.recorded_at FROM es_events e WHERE e.seq OPERATOR(pg_catalog.>) p.high_seq
					   ORDER BY e.seq LIMIT 1) END AS oldest) l
UNION ALL
SELECT 'pending', 'open', pg_catalog.count(*), 'pending transfers (reservations) not yet posted, voided or expired'
  FROM es_transfers t
 WHERE t.status OPERATOR(pg_catalog.=) 'pending'::pg_catalog.text
UNION ALL
SELECT 'pending', t.transfer_id, t.amount,
	   pg_catalog.concat(t.from_account, ' -> ', t.to_account, ', expires ', t.expires_at)
  FROM (SELECT y.transfer_id, y.amount, y.from_account, y.to_account, y.expires_at
		  FROM es_transfers y
		 WHERE y.status OPERATOR(pg_catalog.=) 'pending'::pg_catalog.text
		 ORDER BY y.amount DESC, y.seq
		 LIMIT 10) t;
REVOKE ALL ON TABLE es_stats FROM PUBLIC;
REVOKE ALL ON FUNCTION es_stats_counters(), es_stats_events(), es_stats_reset() FROM PUBLIC;
GRANT SELECT ON TABLE es_stats TO es_ledger_reader;
GRANT EXECUTE ON FUNCTION es_stats_counters(), es_stats_events() TO es_ledger_reader;
GRANT EXECUTE ON FUNCTION es_stats_reset() TO es_ledger_admin;
COMMENT ON VIEW es_stats IS
	'the operator''s view: (section, key, value, detail) rows of counters since es_stats_reset (with shared_preload_libraries), events by type, busiest accounts, snapshot coverage, projection lag, largest open reservations';
COMMENT ON COLUMN es_stats.section IS 'counters, commands, rejections, events, accounts, snapshots, projections or pending';
COMMENT ON COLUMN es_stats.key IS 'what is counted: a command or event type, a SQLSTATE, an account, a projection, a transfer id, or a measure''s name';
COMMENT ON COLUMN es_stats.value IS 'the count (commands applied, rejections, events, an account''s events, a projection''s lag as seqs behind the head, a reservation''s amount)';
COMMENT ON COLUMN es_stats.detail IS 'what the row means or shows besides the value (a SQLSTATE''s meaning, an account''s status, a projection''s state and what holds it back), or NULL';
COMMENT ON FUNCTION es_stats_counters() IS
	'this database''s shared counters since es_stats_reset: commands applied by type, rejections by SQLSTATE; one row preloaded = 0 without shared_preload_libraries';
COMMENT ON FUNCTION es_stats_events() IS
	'the log''s events by type, as far as es_read has them (finished transactions); each backend reads only the events appended since its previous call';
COMMENT ON FUNCTION es_stats_reset() IS
	'zeroes this database''s es_stats counters and returns the time they count from; NULL without shared_preload_libraries';
