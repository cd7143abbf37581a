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
	functions CONSTANT pg_catalog.text[] := '{es_accounts_at,es_apply,es_apply_each,es_balance_at,es_check_shape,
		es_deposit,es_digest,es_drop_snapshots,es_expire_pending,
		es_guard_ddl,es_guard_drop,es_guard_projection,es_history,
		es_log_handler,es_open_account,es_projection_create,
		es_projection_drop,es_projection_pause,es_projection_rebuild,
		es_projection_resume,es_projection_run,es_read,
		es_rebuild_projections,es_replay,es_restore_to,es_reverse,
		es_snapshot,es_transfer,es_verify,es_verify_digest,es_withdraw}';
	relations CONSTANT pg_catalog.text[] := '{es_accounts,es_accounts_account_id_seq,es_accounts_account_key,
		es_accounts_pkey,es_commands,es_commands_pkey,es_commands_reverses_idx,es_events,
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
DROP FUNCTION es_apply_each(jsonb);
CREATE FUNCTION es_apply_each(commands jsonb)
	RETURNS TABLE(ord int, seq bigint, sqlstate text, message text, detail text)
	AS 'MODULE_PATHNAME', 'es_apply_each' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION es_apply_each(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION es_apply_each(jsonb) TO es_ledger_writer, es_ledger_admin;
