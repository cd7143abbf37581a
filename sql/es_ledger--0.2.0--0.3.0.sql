/* es_ledger--0.2.0--0.3.0.sql: update es_ledger from 0.2.0 to 0.3.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION es_ledger UPDATE TO '0.3.0'" to load this file. \quit

-- 0.3.0 adds objects only; each section below matches a section of
-- es_ledger--0.3.0.sql, and sql/upgrade.sql checks that an updated ledger
-- ends with exactly the objects of a fresh install.

-------------------------------------------------------------------------------
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
