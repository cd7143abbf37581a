-- upgrade: a ledger created by 0.1.0 (or 0.2.0) and updated with ALTER
-- EXTENSION ends with the same objects as a fresh install of the default
-- version, keeps its events, and works.  Runs last: it drops and re-creates the extension.
SET es_ledger.allow_drop = on;
DROP EXTENSION IF EXISTS es_ledger CASCADE;
RESET es_ledger.allow_drop;
CREATE EXTENSION es_ledger VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'es_ledger';
SELECT es_open_account('u-a', 'USD') > 0 AS ok, es_open_account('u-b', 'USD') > 0 AS ok;
SELECT es_deposit('u-a', 100) > 0 AS ok, es_transfer('u-a', 'u-b', 30, 'u-t1') > 0 AS ok;
ALTER EXTENSION es_ledger UPDATE TO '0.2.0';
SELECT extversion FROM pg_extension WHERE extname = 'es_ledger';
SELECT es_deposit('u-a', 1) > 0 AS ok;
ALTER EXTENSION es_ledger UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'es_ledger';
-- the old events are there and replay to the projection
SELECT account, balance, version FROM es_accounts ORDER BY account;
SELECT bool_and((a.balance, a.version, a.last_hash) = (r.balance, r.version, r.last_hash)) AS replay_equals_projection
  FROM es_accounts a, LATERAL es_replay(a.account) r;
-- and the updated ledger works, including a retry of an old id
SELECT es_transfer('u-a', 'u-b', 30, 'u-t1') = (SELECT max(seq) FROM es_events WHERE command_id = 'u-t1') AS retry_same_seq;
SELECT es_deposit('u-b', 5) > 0 AS ok;
-- the update wrote the es_transfers rows of the transfers in the log
SELECT transfer_id, from_account, to_account, amount, posted_amount, status, expires_at
  FROM es_transfers ORDER BY seq;
SELECT check_name, ok FROM es_verify() WHERE check_name = 'projection';
SELECT try($$SELECT es_check_shape('es_events', 'es_events')::text$$);
-- the extension's catalog state, as facts that must be equal after an update
-- and after a fresh install: members, functions (source, ACL, volatility),
-- tables (ACL, access method, options, view text), triggers, event triggers,
-- dumped tables, roles, index definitions (partial predicates included),
-- columns (type, nullability, default, collation), constraints, sequence
-- parameters and comments (objects and columns)
CREATE FUNCTION pg_temp.u_facts() RETURNS SETOF text LANGUAGE sql AS $$
SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid) || ' ' || d.deptype::text
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'es_ledger')
UNION ALL
SELECT 'function ' || p.oid::regprocedure || ' secdef=' || p.prosecdef || ' config=' || coalesce(p.proconfig::text, '-')
       || ' acl=' || coalesce(p.proacl::text, '-') || ' strict=' || p.proisstrict || ' vol=' || p.provolatile::text
       || ' src=' || md5(p.prosrc)
  FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'es\_%'
UNION ALL
SELECT 'table ' || c.relname || ' acl=' || coalesce(c.relacl::text, '-') || ' am=' || coalesce(a.amname, '-')
  FROM pg_class c LEFT JOIN pg_am a ON a.oid = c.relam
 WHERE c.relnamespace = 'public'::regnamespace AND c.relname LIKE 'es\_%'
UNION ALL
SELECT 'trigger ' || tgrelid::regclass || '.' || tgname || ' ' || tgenabled::text
  FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE 'es\_%'
UNION ALL
SELECT 'event trigger ' || evtname || ' ' || evtevent || ' ' || evtenabled::text || ' ' || coalesce(evttags::text, '-')
  FROM pg_event_trigger WHERE evtname LIKE 'es\_%'
UNION ALL
SELECT 'dumped ' || c.relname || ' ' || x.cond
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(rel, cond)
  JOIN pg_class c ON c.oid = x.rel
 WHERE e.extname = 'es_ledger'
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid) || ' primary=' || i.indisprimary || ' valid=' || i.indisvalid
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
 WHERE c.relnamespace = 'public'::regnamespace AND c.relname LIKE 'es\_%'
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname || ' #' || a.attnum || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || ' default=' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-')
       || ' collation=' || a.attcollation::regcollation::text || ' storage=' || a.attstorage::text
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
 WHERE c.relnamespace = 'public'::regnamespace AND c.relname LIKE 'es\_%' AND c.relkind IN ('r', 'v')
UNION ALL
SELECT 'relation ' || c.relname || ' kind=' || c.relkind::text || ' persistence=' || c.relpersistence::text
       || ' options=' || coalesce(c.reloptions::text, '-')
       || ' view=' || coalesce(md5(pg_get_viewdef(c.oid)), '-')
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relname LIKE 'es\_%'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || '.' || conname || ' ' || contype::text || ' ' || pg_get_constraintdef(oid)
       || ' deferrable=' || condeferrable || ' validated=' || convalidated
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text LIKE 'es\_%'
UNION ALL
SELECT 'sequence ' || s.seqrelid::regclass || ' ' || format_type(s.seqtypid, NULL) || ' start=' || s.seqstart
       || ' inc=' || s.seqincrement || ' min=' || s.seqmin || ' max=' || s.seqmax || ' cache=' || s.seqcache
       || ' cycle=' || s.seqcycle || ' owned by=' || coalesce((SELECT d.refobjid::regclass || '.' || a.attname
			FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
			WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid AND d.deptype = 'a'), '-')
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
 WHERE c.relnamespace = 'public'::regnamespace AND c.relname LIKE 'es\_%'
UNION ALL
SELECT 'comment ' || pg_describe_object(ds.classoid, ds.objoid, ds.objsubid) || ': ' || ds.description
  FROM pg_depend d
  JOIN pg_description ds ON ds.classoid = d.classid AND ds.objoid = d.objid
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'es_ledger')
   AND d.deptype = 'e'
UNION ALL
SELECT 'role ' || r.rolname || ' member of ' || coalesce(string_agg(g.rolname, ',' ORDER BY g.rolname), '-')
  FROM pg_roles r LEFT JOIN pg_auth_members m ON m.member = r.oid LEFT JOIN pg_roles g ON g.oid = m.roleid
 WHERE r.rolname LIKE 'es\_ledger\_%' GROUP BY r.rolname
$$;
CREATE TEMP TABLE u_updated AS SELECT f AS fact FROM pg_temp.u_facts() f;
-- the same from a ledger created by 0.2.0
SET es_ledger.allow_drop = on;
DROP EXTENSION es_ledger CASCADE;
RESET es_ledger.allow_drop;
CREATE EXTENSION es_ledger VERSION '0.1.0';
ALTER EXTENSION es_ledger UPDATE TO '0.2.0';
SELECT es_open_account('v-a', 'USD') > 0 AS ok, es_deposit('v-a', 7) > 0 AS ok;
-- before the update nothing reserves the registry's name: a table of that
-- name that is not the extension's (whoever may create in the schema can
-- make one; the database owner owns public) does not stop es_apply with
-- the new library; it must be dropped before the update
CREATE TABLE public.es_projection_registry (x int);
SELECT es_deposit('v-a', 1) > 0 AS ok_beside_a_look_alike;
DROP TABLE public.es_projection_registry;
ALTER EXTENSION es_ledger UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'es_ledger';
SELECT account, balance, version FROM es_accounts ORDER BY account;
-- es_read follows the events written before the update (its index was built over them)
SELECT count(*) = (SELECT count(*) FROM es_events) AS es_read_all FROM es_read(NULL, 100000);
CREATE TEMP TABLE u_updated2 AS SELECT f AS fact FROM pg_temp.u_facts() f;
-- a fresh install, over look-alike operators someone planted in
-- the schema first: the script qualifies its operators, so it neither
-- fails on them nor builds its index with them
SET es_ledger.allow_drop = on;
DROP EXTENSION es_ledger CASCADE;
RESET es_ledger.allow_drop;
CREATE FUNCTION u_jj(jsonb, jsonb) RETURNS text LANGUAGE sql AS 'SELECT (1/0)::text';
CREATE OPERATOR public.->> (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = u_jj);
CREATE FUNCTION u_tj(text, jsonb) RETURNS boolean LANGUAGE sql AS 'SELECT (1/0) = 1';
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = jsonb, FUNCTION = u_tj);
CREATE EXTENSION es_ledger;
DROP OPERATOR public.->> (jsonb, jsonb);
DROP OPERATOR public.= (text, jsonb);
DROP FUNCTION u_jj(jsonb, jsonb), u_tj(text, jsonb);
CREATE TEMP TABLE u_fresh AS SELECT f AS fact FROM pg_temp.u_facts() f;
-- the two must not differ (no rows), and must not be empty
SELECT count(*) > 20 AS facts FROM u_fresh;
-- each kind of fact is there (a kind that found nothing compares nothing)
SELECT split_part(fact, ' ', 1) AS kind, count(*) > 0 AS found
  FROM u_fresh GROUP BY 1 ORDER BY 1;
(SELECT 'only updated: ' || fact FROM u_updated EXCEPT SELECT 'only updated: ' || fact FROM u_fresh)
UNION ALL
(SELECT 'only fresh: ' || fact FROM u_fresh EXCEPT SELECT 'only fresh: ' || fact FROM u_updated)
ORDER BY 1;
(SELECT 'only updated from 0.2.0: ' || fact FROM u_updated2 EXCEPT SELECT 'only updated from 0.2.0: ' || fact FROM u_fresh)
UNION ALL
(SELECT 'only fresh: ' || fact FROM u_fresh EXCEPT SELECT 'only fresh: ' || fact FROM u_updated2)
ORDER BY 1;
-- a sequence set back (setval needs no DDL, so no guard sees it) cannot
-- make appends fail on a duplicate key: es_apply moves it past its table
SELECT es_open_account('u-c', 'USD') > 0 AS ok, es_deposit('u-c', 1) > 0 AS ok;
SELECT setval('es_events_seq_seq', 1), setval('es_accounts_account_id_seq', 1);
SELECT es_open_account('u-d', 'USD') > 0 AS ok, es_deposit('u-d', 2) > 0 AS ok;
-- set back in the middle of a transaction that already drew from it
BEGIN;
SELECT es_deposit('u-c', 1) > 0 AS ok;
SELECT setval('es_events_seq_seq', 1) AS set_back;
SELECT es_deposit('u-d', 1) > 0 AS ok;
COMMIT;
SELECT count(*) = count(DISTINCT seq) AS seqs_unique FROM es_events;
SELECT account, balance, version FROM es_accounts ORDER BY account;

-- es_guard_drop looks the extension's schema up when it runs: a ledger whose
-- schema was renamed under 0.1.0 (which allowed it) keeps its guard
-- triggers after the update
SET es_ledger.allow_drop = on;
DROP EXTENSION es_ledger CASCADE;
RESET es_ledger.allow_drop;
CREATE SCHEMA u_ledger;
CREATE EXTENSION es_ledger VERSION '0.1.0' SCHEMA u_ledger;
ALTER SCHEMA u_ledger RENAME TO u_renamed;
ALTER EXTENSION es_ledger UPDATE;
SELECT try($$DROP TRIGGER es_guard ON u_renamed.es_accounts$$);
SELECT try($$DROP TRIGGER es_guard ON u_renamed.es_commands$$);
SELECT tgrelid::regclass AS "table", tgname FROM pg_trigger WHERE tgname = 'es_guard' ORDER BY 1;
DROP EXTENSION es_ledger;
DROP SCHEMA u_renamed;
CREATE EXTENSION es_ledger;

-- Reversal links of a 0.3.0 ledger (security issue 14): 0.3.0's es_reverse
-- wrote the link as metadata {"reverses": id}, as a writer could too.  The
-- update keeps the links that are exactly es_reverse's compensation (moved
-- to the top level), drops none of the log, and a writer's forged metadata
-- blocks no reversal after it.
SET es_ledger.allow_drop = on;
DROP EXTENSION es_ledger CASCADE;
RESET es_ledger.allow_drop;
CREATE EXTENSION es_ledger VERSION '0.3.0';
SELECT es_open_account('u3-a', 'USD') > 0 AS ok;
SELECT es_deposit('u3-a', 100, 'u3-dep') > 0 AS ok;
-- the compensating command 0.3.0's es_reverse('u3-dep', 'u3-rev') applied
SELECT es_apply('{"type": "withdraw", "account": "u3-a", "amount": 100, "id": "u3-rev", "metadata": {"reverses": "u3-dep"}}') > 0 AS legacy_reversal;
-- a writer's forged links: to a command not yet sent, and to u3-dep again
SELECT es_apply('{"type": "deposit", "account": "u3-a", "amount": 5, "id": "u3-forge", "metadata": {"reverses": "u3-pay"}}') > 0 AS forged;
SELECT es_apply('{"type": "deposit", "account": "u3-a", "amount": 6, "id": "u3-forge2", "metadata": {"reverses": "u3-dep"}}') > 0 AS forged;
SELECT es_deposit('u3-a', 7, 'u3-pay') > 0 AS ok;
SELECT count(*) AS events_before FROM es_events \gset
ALTER EXTENSION es_ledger UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'es_ledger';
SELECT count(*) = :events_before AS log_kept FROM es_events;
SELECT command_id, command->>'reverses' AS reverses, command->'metadata' AS metadata
  FROM es_commands WHERE command_id LIKE 'u3-%' ORDER BY command_id;
-- the old reversal is still found (ES008), its retry returns its seq, and
-- the command the writer named in advance can be reversed
SELECT try($$SELECT es_reverse('u3-dep', 'u3-rev2')::text$$) AS reversed_already;
SELECT es_reverse('u3-dep', 'u3-rev') = (SELECT seq FROM es_commands WHERE command_id = 'u3-rev') AS retry_same_seq;
SELECT es_reverse('u3-pay', 'u3-undo') > 0 AS reversed;
SELECT balance FROM es_accounts WHERE account = 'u3-a';
SELECT bool_and(ok) AS verify_ok FROM es_verify();
SET es_ledger.allow_drop = on;
DROP EXTENSION es_ledger CASCADE;
RESET es_ledger.allow_drop;
CREATE EXTENSION es_ledger;
