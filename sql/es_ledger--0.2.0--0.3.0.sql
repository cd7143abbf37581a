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
