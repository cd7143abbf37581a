/* es_ledger--0.3.0--0.4.0.sql: update es_ledger from 0.3.0 to 0.4.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION es_ledger UPDATE TO '0.4.0'" to load this file. \quit

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
