/* es_ledger--0.2.0--0.3.0.sql: update es_ledger from 0.2.0 to 0.3.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION es_ledger UPDATE TO '0.3.0'" to load this file. \quit

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
