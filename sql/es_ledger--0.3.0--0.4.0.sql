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
		es_snapshot,es_transfer,es_transfer_of,es_verify,
		es_verify_digest,es_withdraw}';
	relations CONSTANT pg_catalog.text[] := '{es_accounts,es_accounts_account_id_seq,
		es_accounts_account_key,es_accounts_pkey,es_commands,
		es_commands_pkey,es_events,es_events_account_version_key,
		es_events_command_id_idx,es_events_opened_idx,es_events_pkey,
		es_events_seq_seq,es_events_tx_seq_idx,
		es_projection_registry,es_projection_registry_pkey,
		es_projections,es_snapshots,es_snapshots_pkey,es_transfers,
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
-- First-app frictions (issue 18, helper eco): shorthands with metadata and
-- effective_at; es_ledger_writer opens accounts without credit (the role
-- check is in C, EsDecideCommandRole); what a call returns finds its rows
-- (es_account_of, es_transfer_of); the balance at a valid time
-- (es_balance_effective_at); transfers by account and time indexed out of
-- the box.  Plain SQL functions, SECURITY INVOKER: they read what their
-- caller may read, with search_path pinned to the extension's schema.
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
CREATE FUNCTION es_account_of(seq bigint) RETURNS SETOF es_accounts
	LANGUAGE sql STABLE STRICT SET search_path = @extschema@, pg_catalog, pg_temp
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
	LANGUAGE sql STABLE STRICT SET search_path = @extschema@, pg_catalog, pg_temp
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
	LANGUAGE sql STABLE STRICT SET search_path = @extschema@, pg_catalog, pg_temp
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
