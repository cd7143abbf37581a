/* es_ledger--0.1.0.sql: install script of es_ledger 0.1.0 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION es_ledger" to load this file. \quit

-------------------------------------------------------------------------------
-- Look-alikes, before anything is created.  es_ledger is called and read with
-- unqualified names, so a function of one of its functions' names (whatever
-- its argument types), or a relation, view, type or domain of one of its
-- relations' names, that is not the extension's own would capture a
-- superuser's call or query once the extension is there, and run with the
-- superuser's rights.  The DDL guard reserves these names only from the
-- moment they are members; what was created before is found here: the
-- install is refused while any such object stands in a schema that a
-- non-superuser owns or may create in, or is owned by a non-superuser.
-- The lists are every name es_ledger 0.1.0 reserves (sql/lookalikes.sql
-- checks them against the members after the install).
-------------------------------------------------------------------------------
DO $lookalikes$
DECLARE
	functions CONSTANT pg_catalog.text[] := '{es_apply,es_deposit,es_guard_ddl,es_guard_drop,es_guard_projection,
		es_log_handler,es_open_account,es_replay,es_transfer,es_withdraw}';
	relations CONSTANT pg_catalog.text[] := '{es_accounts,es_accounts_account_id_seq,es_accounts_account_key,
		es_accounts_pkey,es_commands,es_commands_pkey,es_events,
		es_events_account_version_key,es_events_command_id_idx,
		es_events_opened_idx,es_events_pkey,es_events_seq_seq}';
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
			MESSAGE = 'cannot install es_ledger 0.1.0: objects bearing names it reserves already exist',
			DETAIL = 'Found: ' OPERATOR(pg_catalog.||) found OPERATOR(pg_catalog.||) '.  Each could capture an unqualified call or query meant for es_ledger and run with its caller''s rights.',
			HINT = 'Drop or rename each of them (or, as a superuser, move it to a schema that only superusers own and may create in), then run CREATE EXTENSION es_ledger again.';
	END IF;
END
$lookalikes$;

-------------------------------------------------------------------------------
-- Roles (cluster-wide, so created only when missing; CONTRACT section 9)
-------------------------------------------------------------------------------
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'es_ledger_reader') THEN
		CREATE ROLE es_ledger_reader NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'es_ledger_writer') THEN
		CREATE ROLE es_ledger_writer NOLOGIN;
	END IF;
END
$roles$;
GRANT es_ledger_reader TO es_ledger_writer;
GRANT USAGE ON SCHEMA @extschema@ TO es_ledger_reader;

-------------------------------------------------------------------------------
-- The es_log table access method
-------------------------------------------------------------------------------
CREATE FUNCTION es_log_handler(internal) RETURNS table_am_handler
	AS 'MODULE_PATHNAME', 'es_log_handler' LANGUAGE C STRICT;
CREATE ACCESS METHOD es_log TYPE TABLE HANDLER es_log_handler;
COMMENT ON ACCESS METHOD es_log IS 'append-only heap: INSERT and COPY only, never UPDATE, DELETE, TRUNCATE or rewrite';

-------------------------------------------------------------------------------
-- The log
-------------------------------------------------------------------------------
CREATE TABLE es_events (
	seq				bigint		NOT NULL,
	account_id		bigint		NOT NULL,
	version			bigint		NOT NULL,
	type			text		NOT NULL,
	amount			bigint		NOT NULL,
	data			jsonb		NOT NULL,
	command_id		text,
	recorded_at		timestamptz	NOT NULL,
	effective_at	timestamptz	NOT NULL,
	checksum		bigint		NOT NULL,
	hash			bytea		NOT NULL,
	format			smallint	NOT NULL,
	tx				xid8		NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
	CONSTRAINT es_events_pkey PRIMARY KEY (seq),
	CONSTRAINT es_events_account_version_key UNIQUE (account_id, version)
) USING es_log;
CREATE SEQUENCE es_events_seq_seq AS bigint OWNED BY es_events.seq;
CREATE INDEX es_events_command_id_idx ON es_events (command_id) WHERE command_id IS NOT NULL;
CREATE UNIQUE INDEX es_events_opened_idx ON es_events ((data ->> 'account'))
	WHERE type = 'AccountOpened';
COMMENT ON TABLE es_events IS 'the event log: one immutable row per event, written only by es_apply';

-------------------------------------------------------------------------------
-- Projections
-------------------------------------------------------------------------------
CREATE TABLE es_accounts (
	account_id		bigint		NOT NULL PRIMARY KEY,
	account			text		NOT NULL UNIQUE,
	currency		text		NOT NULL,
	status			text		NOT NULL,	-- open, frozen or closed (EsStatusName)
	balance			bigint		NOT NULL,
	pending_out		bigint		NOT NULL,
	pending_in		bigint		NOT NULL,
	available		bigint		NOT NULL,
	overdraft_limit	bigint		NOT NULL,
	max_balance		bigint,
	version			bigint		NOT NULL,
	last_seq		bigint		NOT NULL,
	opened_at		timestamptz	NOT NULL,
	updated_at		timestamptz	NOT NULL,
	last_hash		bytea		NOT NULL
) WITH (fillfactor = 50);
CREATE SEQUENCE es_accounts_account_id_seq AS bigint OWNED BY es_accounts.account_id;
COMMENT ON TABLE es_accounts IS 'projection: one row per account, the fold of its events, kept in step by es_apply';

CREATE TABLE es_commands (
	command_id		text		NOT NULL PRIMARY KEY,
	command			jsonb		NOT NULL,
	seq				bigint		NOT NULL
);
COMMENT ON TABLE es_commands IS 'idempotency register: the canonical command and result seq of every command applied with an id';

CREATE FUNCTION es_guard_projection() RETURNS trigger
	AS 'MODULE_PATHNAME', 'es_guard_projection' LANGUAGE C;
CREATE TRIGGER es_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON es_accounts
	FOR EACH STATEMENT EXECUTE FUNCTION es_guard_projection();
CREATE TRIGGER es_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON es_commands
	FOR EACH STATEMENT EXECUTE FUNCTION es_guard_projection();

CREATE FUNCTION es_guard_ddl() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'es_guard_ddl' LANGUAGE C;
CREATE EVENT TRIGGER es_guard_ddl ON ddl_command_start
	WHEN TAG IN ('ALTER TABLE', 'ALTER TRIGGER', 'ALTER INDEX', 'ALTER SEQUENCE')
	EXECUTE FUNCTION es_guard_ddl();
CREATE EVENT TRIGGER es_guard_rewrite ON table_rewrite
	EXECUTE FUNCTION es_guard_ddl();

-- es_guard_drop(): refuses DROP TRIGGER of a guard trigger (sql_drop cannot
-- be filtered by the C trigger above without reading dropped objects).
CREATE FUNCTION es_guard_drop() RETURNS event_trigger LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
	dropped record;
BEGIN
	IF EXISTS (SELECT FROM pg_event_trigger_dropped_objects()
				WHERE object_type = 'extension' AND object_identity = 'es_ledger') THEN
		RETURN;
	END IF;
	FOR dropped IN
		SELECT object_identity FROM pg_event_trigger_dropped_objects()
		 WHERE object_type = 'trigger' AND address_names[3] = 'es_guard'
		   AND address_names[1] = '@extschema@'
	LOOP
		RAISE EXCEPTION 'cannot drop guard trigger %', dropped.object_identity
			USING ERRCODE = 'ES011',
				  DETAIL = 'Projections are written only by es_apply; the guard triggers enforce it.';
	END LOOP;
END
$fn$;
CREATE EVENT TRIGGER es_guard_drop ON sql_drop EXECUTE FUNCTION es_guard_drop();

-------------------------------------------------------------------------------
-- Commands
-------------------------------------------------------------------------------
CREATE FUNCTION es_apply(command jsonb) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_apply' LANGUAGE C VOLATILE
	SECURITY DEFINER SET search_path = @extschema@, pg_temp;

CREATE FUNCTION es_open_account(account text, currency text,
		overdraft_limit bigint DEFAULT 0, max_balance bigint DEFAULT NULL,
		id text DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_open_account' LANGUAGE C VOLATILE
	SECURITY DEFINER SET search_path = @extschema@, pg_temp;

CREATE FUNCTION es_deposit(account text, amount bigint, id text DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_deposit' LANGUAGE C VOLATILE
	SECURITY DEFINER SET search_path = @extschema@, pg_temp;

CREATE FUNCTION es_withdraw(account text, amount bigint, id text DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_withdraw' LANGUAGE C VOLATILE
	SECURITY DEFINER SET search_path = @extschema@, pg_temp;

CREATE FUNCTION es_transfer(from_account text, to_account text, amount bigint,
		id text DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'es_transfer' LANGUAGE C VOLATILE
	SECURITY DEFINER SET search_path = @extschema@, pg_temp;

-------------------------------------------------------------------------------
-- Replay
-------------------------------------------------------------------------------
CREATE FUNCTION es_replay(account text, as_of timestamptz DEFAULT NULL,
		effective_until timestamptz DEFAULT NULL) RETURNS es_accounts
	AS 'MODULE_PATHNAME', 'es_replay' LANGUAGE C STABLE
	SECURITY DEFINER SET search_path = @extschema@, pg_temp;

-------------------------------------------------------------------------------
-- Privileges: PUBLIC gets nothing; readers read, writers apply commands.
-------------------------------------------------------------------------------
REVOKE ALL ON TABLE es_events, es_accounts, es_commands FROM PUBLIC;
REVOKE ALL ON SEQUENCE es_events_seq_seq, es_accounts_account_id_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION es_log_handler(internal), es_guard_projection(), es_guard_ddl(), es_guard_drop(),
	es_apply(jsonb), es_open_account(text, text, bigint, bigint, text),
	es_deposit(text, bigint, text), es_withdraw(text, bigint, text),
	es_transfer(text, text, bigint, text), es_replay(text, timestamptz, timestamptz)
	FROM PUBLIC;

GRANT SELECT ON TABLE es_events, es_accounts TO es_ledger_reader;
GRANT EXECUTE ON FUNCTION es_replay(text, timestamptz, timestamptz) TO es_ledger_reader;
GRANT EXECUTE ON FUNCTION es_apply(jsonb), es_open_account(text, text, bigint, bigint, text),
	es_deposit(text, bigint, text), es_withdraw(text, bigint, text),
	es_transfer(text, text, bigint, text)
	TO es_ledger_writer;
