/* es_ledger--0.2.0--0.3.0.sql: update es_ledger from 0.2.0 to 0.3.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION es_ledger UPDATE TO '0.3.0'" to load this file. \quit

-- 0.3.0 adds objects only; each section below matches a section of
-- es_ledger--0.3.0.sql, and sql/upgrade.sql checks that an updated ledger
-- ends with exactly the objects of a fresh install.

-------------------------------------------------------------------------------
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
