/* es_ledger--0.2.0--0.3.0.sql: update es_ledger from 0.2.0 to 0.3.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION es_ledger UPDATE TO '0.3.0'" to load this file. \quit

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
-- The lists are every name es_ledger 0.3.0 reserves (sql/lookalikes.sql
-- checks them against the members after the update).
-------------------------------------------------------------------------------
DO $lookalikes$
DECLARE
	functions CONSTANT pg_catalog.text[] := '{es_accounts_at,es_apply,es_apply_each,es_balance_at,es_check_shape,
		es_deposit,es_digest,es_drop_snapshots,es_expire_pending,
		es_guard_ddl,es_guard_drop,es_guard_projection,es_history,
		es_log_handler,es_open_account,es_projection_create,
		es_projection_drop,es_projection_pause,es_projection_rebuild,
		es_projection_resume,es_projection_run,es_read,
		es_rebuild_projections,es_replay,es_restore_to,es_reverse,
		es_snapshot,es_transfer,es_verify,es_verify_digest,es_withdraw}';
	relations CONSTANT pg_catalog.text[] := '{es_accounts,es_accounts_account_id_seq,es_accounts_account_key,
		es_accounts_pkey,es_commands,es_commands_pkey,es_events,
		es_events_account_version_key,es_events_command_id_idx,
		es_events_opened_idx,es_events_pkey,es_events_seq_seq,
		es_events_tx_seq_idx,es_projection_registry,
		es_projection_registry_pkey,es_projections,es_snapshots,
		es_snapshots_pkey,es_transfers,es_transfers_expires_idx,
		es_transfers_from_pending_idx,es_transfers_pkey,
		es_transfers_to_pending_idx}';
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
			MESSAGE = 'cannot update es_ledger to 0.3.0: objects bearing names it reserves already exist',
			DETAIL = 'Found: ' OPERATOR(pg_catalog.||) found OPERATOR(pg_catalog.||) '.  Each could capture an unqualified call or query meant for es_ledger and run with its caller''s rights.',
			HINT = 'Drop or rename each of them (or, as a superuser, move it to a schema that only superusers own and may create in), then run ALTER EXTENSION es_ledger UPDATE again.';
	END IF;
END
$lookalikes$;

-- 0.3.0 adds objects only; each section below matches a section of
-- es_ledger--0.3.0.sql, and sql/upgrade.sql checks that an updated ledger
-- ends with exactly the objects of a fresh install.

-------------------------------------------------------------------------------
-- es_apply_each (es_each.c): the commands of an array applied one by one,
-- a result row each; a rejected command writes nothing and the others go
-- on.  For writers and admins, like es_apply: each command is still checked
-- against the caller's role (42501 as its row).
-------------------------------------------------------------------------------
CREATE FUNCTION es_apply_each(commands jsonb)
	RETURNS TABLE(ord int, seq bigint, sqlstate text, message text)
	AS 'MODULE_PATHNAME', 'es_apply_each' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION es_apply_each(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION es_apply_each(jsonb) TO es_ledger_writer, es_ledger_admin;

-------------------------------------------------------------------------------
-- Following the log (es_read.c): es_read returns the committed events after
-- a cursor, in (tx, seq) order, bounded by the reader's snapshot xmin, so a
-- follower never misses nor repeats an event; it walks es_events_tx_seq_idx.
-- Each appending transaction sends NOTIFY es_events (es_write.c).
-------------------------------------------------------------------------------
CREATE INDEX es_events_tx_seq_idx ON es_events (tx, seq);
ALTER INDEX es_events_tx_seq_idx DEPENDS ON EXTENSION es_ledger;
CREATE FUNCTION es_read(after text DEFAULT NULL, max_count int DEFAULT 1000)
	RETURNS TABLE(cursor text, seq bigint, account_id bigint, version bigint, type text,
		amount bigint, data jsonb, command_id text, recorded_at timestamptz,
		effective_at timestamptz)
	AS 'MODULE_PATHNAME', 'es_read' LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION es_read(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION es_read(text, integer) TO es_ledger_reader;

-------------------------------------------------------------------------------
-- User projections (es_handler.c, es_projection.c, es_worker.c; doc/projections.md).
-- A user's read model kept in step with the log by a handler function the
-- user writes, called with each event: inline, inside es_apply's
-- transaction, or async, by a background worker (or es_projection_run)
-- following es_read.  The registry is ours and guarded like es_accounts;
-- it is not dumped: its cursors hold transaction ids, which a logical
-- restore does not keep (re-register after a restore, doc/projections.md).
-------------------------------------------------------------------------------
CREATE TABLE es_projection_registry (
	name			text		NOT NULL PRIMARY KEY,
	owner			oid			NOT NULL,	-- the role that registered it; handlers run as it
	mode			text		NOT NULL,	-- inline or async
	state			text		NOT NULL,	-- running, paused or failed
	handler			oid			NOT NULL,	-- function(es_events)
	reset			oid,					-- function() called before the first event, or NULL
	search_path		text		NOT NULL,	-- the registrant's search_path, for the handlers
	cursor			text,					-- es_read cursor of the last event applied (async)
	last_seq		bigint		NOT NULL,	-- seq of the last event applied (async), position at pause (inline)
	high_seq		bigint		NOT NULL,	-- largest seq applied (async), position at pause (inline)
	applied			bigint		NOT NULL,	-- events applied since creation or rebuild (async)
	applied_at		timestamptz,			-- when the last batch was applied (async)
	last_error		text,					-- the error that stopped it (state failed)
	error_seq		bigint,					-- the event its handler failed on
	error_at		timestamptz,
	created_at		timestamptz	NOT NULL,
	CONSTRAINT es_projection_registry_mode_check
		CHECK (mode OPERATOR(pg_catalog.=) ANY (ARRAY['inline', 'async']::pg_catalog.text[])),
	CONSTRAINT es_projection_registry_state_check
		CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['running', 'paused', 'failed']::pg_catalog.text[]))
);
COMMENT ON TABLE es_projection_registry IS 'user projections: name, owner, handler, mode, state and position of each; written only by the es_projection_* functions';
ALTER INDEX es_projection_registry_pkey DEPENDS ON EXTENSION es_ledger;
CREATE TRIGGER es_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON es_projection_registry
	FOR EACH STATEMENT EXECUTE FUNCTION es_guard_projection();
ALTER TABLE es_projection_registry ENABLE ALWAYS TRIGGER es_guard;

CREATE FUNCTION es_projection_create(name text, handler regprocedure, mode text DEFAULT 'async',
		reset regprocedure DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_projection_create' LANGUAGE C VOLATILE;
CREATE FUNCTION es_projection_pause(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'es_projection_pause' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION es_projection_resume(name text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_projection_resume' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION es_projection_rebuild(name text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_projection_rebuild' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION es_projection_drop(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'es_projection_drop' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION es_projection_run(name text DEFAULT NULL, max_events bigint DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_projection_run' LANGUAGE C VOLATILE;

-- What a projection's follower sees: position and lag.  Lag counts the
-- committed events above the largest seq applied (an event of a
-- transaction that committed late, below it, is not counted but is
-- applied all the same); an inline projection that runs is never behind.
CREATE VIEW es_projections AS
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
	   p.created_at
  FROM es_projection_registry p
 CROSS JOIN LATERAL (SELECT pg_catalog.max(e.seq) AS head FROM es_events e) h
 CROSS JOIN LATERAL (
	SELECT pg_catalog.count(*) AS lag_events,
		   COALESCE(pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.min(e.recorded_at),
								'0'::pg_catalog.interval) AS lag_time
	  FROM es_events e
	 WHERE e.seq OPERATOR(pg_catalog.>) p.high_seq
	   AND NOT (p.mode OPERATOR(pg_catalog.=) 'inline' AND p.state OPERATOR(pg_catalog.=) 'running')) l;
COMMENT ON VIEW es_projections IS 'user projections: owner, mode, state, position, lag and last error';

REVOKE ALL ON TABLE es_projection_registry, es_projections FROM PUBLIC;
REVOKE ALL ON FUNCTION es_projection_create(text, regprocedure, text, regprocedure),
	es_projection_pause(text), es_projection_resume(text), es_projection_rebuild(text),
	es_projection_drop(text), es_projection_run(text, bigint)
	FROM PUBLIC;
GRANT SELECT ON TABLE es_projections TO es_ledger_reader;
-- Registering runs user code on every append (inline) or in a worker
-- (async): account administration, like opening accounts.  Each function
-- also checks that the caller owns the projection (or is a superuser).
GRANT EXECUTE ON FUNCTION es_projection_create(text, regprocedure, text, regprocedure),
	es_projection_pause(text), es_projection_resume(text), es_projection_rebuild(text),
	es_projection_drop(text), es_projection_run(text, bigint)
	TO es_ledger_admin;

-- Two-phase transfers: the es_transfers projection and es_expire_pending
-- (as in es_ledger--0.3.0.sql)
-------------------------------------------------------------------------------
CREATE TABLE es_transfers (
	transfer_id		text		NOT NULL,
	from_account	text		NOT NULL,
	to_account		text		NOT NULL,
	amount			bigint		NOT NULL,
	posted_amount	bigint		NOT NULL,
	status			text		NOT NULL,	-- posted, pending, voided or expired
	created_at		timestamptz	NOT NULL,
	expires_at		timestamptz,
	updated_at		timestamptz	NOT NULL,
	seq				bigint		NOT NULL,
	from_account_id	bigint		NOT NULL,
	to_account_id	bigint		NOT NULL,
	command_id		text,
	CONSTRAINT es_transfers_pkey PRIMARY KEY (seq)
);
CREATE INDEX es_transfers_expires_idx ON es_transfers (expires_at)
	WHERE status OPERATOR(pg_catalog.=) 'pending'::pg_catalog.text;
CREATE INDEX es_transfers_from_pending_idx ON es_transfers (from_account_id, expires_at)
	WHERE status OPERATOR(pg_catalog.=) 'pending'::pg_catalog.text;
CREATE INDEX es_transfers_to_pending_idx ON es_transfers (to_account_id, expires_at)
	WHERE status OPERATOR(pg_catalog.=) 'pending'::pg_catalog.text;
COMMENT ON TABLE es_transfers IS 'projection: one row per transfer (posted, pending, voided or expired), kept in step by es_apply';

-- The transfers already in the log (all immediate: 0.2.0 had no pending
-- ones), each the fold of its TransferSent event, as es_apply writes them
-- (EsFoldTransfer): the debit account's name from its AccountOpened event,
-- the rest from the event.  Written before the guard trigger exists.
INSERT INTO es_transfers (transfer_id, from_account, to_account, amount, posted_amount,
		status, created_at, expires_at, updated_at, seq, from_account_id, to_account_id,
		command_id)
SELECT coalesce(e.data OPERATOR(pg_catalog.->>) 'transfer_id'::pg_catalog.text,
				'#'::pg_catalog.text OPERATOR(pg_catalog.||) e.seq::pg_catalog.text),
	   o.data OPERATOR(pg_catalog.->>) 'account'::pg_catalog.text,
	   e.data OPERATOR(pg_catalog.->>) 'to'::pg_catalog.text,
	   OPERATOR(pg_catalog.-) e.amount, OPERATOR(pg_catalog.-) e.amount,
	   'posted', e.recorded_at, NULL, e.recorded_at, e.seq, e.account_id,
	   (e.data OPERATOR(pg_catalog.->>) 'to_account_id'::pg_catalog.text)::pg_catalog.int8,
	   e.data OPERATOR(pg_catalog.->>) 'transfer_id'::pg_catalog.text
  FROM es_events e
  JOIN es_events o ON o.account_id OPERATOR(pg_catalog.=) e.account_id
				  AND o.version OPERATOR(pg_catalog.=) 1
 WHERE e.type OPERATOR(pg_catalog.=) 'TransferSent'::pg_catalog.text
 ORDER BY e.seq;

SELECT pg_catalog.pg_extension_config_dump('es_transfers', '');
CREATE TRIGGER es_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON es_transfers
	FOR EACH STATEMENT EXECUTE FUNCTION es_guard_projection();
ALTER TABLE es_transfers ENABLE ALWAYS TRIGGER es_guard;
ALTER INDEX es_transfers_pkey DEPENDS ON EXTENSION es_ledger;
ALTER INDEX es_transfers_expires_idx DEPENDS ON EXTENSION es_ledger;
ALTER INDEX es_transfers_from_pending_idx DEPENDS ON EXTENSION es_ledger;
ALTER INDEX es_transfers_to_pending_idx DEPENDS ON EXTENSION es_ledger;
REVOKE ALL ON TABLE es_transfers FROM PUBLIC;
GRANT SELECT ON TABLE es_transfers TO es_ledger_reader;

CREATE FUNCTION es_expire_pending() RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_expire_pending' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION es_expire_pending() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION es_expire_pending() TO es_ledger_writer, es_ledger_admin;

-- Snapshots (es_snap.c): an account's state stored at a version, so that
-- replay reads the newest usable one and the events after it.  Derived
-- data: written only by es_apply (every es_ledger.snapshot_interval events
-- of an account) and es_snapshot, dropped by es_drop_snapshots, checked by
-- es_verify.  Not kept by pg_dump (no pg_extension_config_dump): a restored
-- ledger replays from the log until new snapshots are written.
-------------------------------------------------------------------------------
CREATE TABLE es_snapshots (
	-- the columns of es_accounts, in its order: the state at version
	account_id		bigint		NOT NULL,
	account			text		NOT NULL,
	currency		text		NOT NULL,
	status			text		NOT NULL,
	balance			bigint		NOT NULL,
	pending_out		bigint		NOT NULL,
	pending_in		bigint		NOT NULL,
	available		bigint		NOT NULL,
	overdraft_limit	bigint		NOT NULL,
	max_balance		bigint,
	version			bigint		NOT NULL,
	last_seq		bigint		NOT NULL,	-- seq of the event at version
	opened_at		timestamptz	NOT NULL,
	updated_at		timestamptz	NOT NULL,	-- recorded_at of the event at version
	last_hash		bytea		NOT NULL,	-- the log's hash at version
	-- what replay needs to choose and trust it
	max_recorded_at		timestamptz	NOT NULL,	-- greatest recorded_at of events 1..version
	max_effective_at	timestamptz	NOT NULL,	-- greatest effective_at of events 1..version
	format			smallint	NOT NULL,
	magic			integer		NOT NULL,
	checksum		bytea		NOT NULL,	-- SHA-256 over all the columns above
	CONSTRAINT es_snapshots_pkey PRIMARY KEY (account_id, version)
);
ALTER INDEX es_snapshots_pkey DEPENDS ON EXTENSION es_ledger;
COMMENT ON TABLE es_snapshots IS 'derived: account states stored at a version, read by replay; written only by es_apply and es_snapshot';
CREATE TRIGGER es_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON es_snapshots
	FOR EACH STATEMENT EXECUTE FUNCTION es_guard_projection();
ALTER TABLE es_snapshots ENABLE ALWAYS TRIGGER es_guard;

CREATE FUNCTION es_snapshot(account text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_snapshot' LANGUAGE C VOLATILE;
CREATE FUNCTION es_drop_snapshots(account text DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_drop_snapshots' LANGUAGE C VOLATILE;

REVOKE ALL ON TABLE es_snapshots FROM PUBLIC;
REVOKE ALL ON FUNCTION es_snapshot(text), es_drop_snapshots(text) FROM PUBLIC;
GRANT SELECT ON TABLE es_snapshots TO es_ledger_reader;
GRANT EXECUTE ON FUNCTION es_snapshot(text), es_drop_snapshots(text) TO es_ledger_admin;
