-- verify: es_verify re-derives the ledger's promises from the log, and
-- es_digest / es_verify_digest prove later that the log up to a position is
-- unchanged.  Each tampering route a superuser has runs inside a
-- transaction that is rolled back, so the ledger stays intact for later
-- tests.
SELECT es_open_account('v-a', 'USD') > 0 AS ok, es_open_account('v-b', 'USD') > 0 AS ok,
       es_open_account('v-e', 'EUR') > 0 AS ok;
SELECT es_deposit('v-a', 1000) > 0 AS ok, es_transfer('v-a', 'v-b', 300) > 0 AS ok,
       es_withdraw('v-b', 50) > 0 AS ok, es_deposit('v-e', 70) > 0 AS ok;
-- an untouched ledger passes every check
CREATE VIEW v_checks AS
SELECT check_name, ok, checked > 0 AS checked_some, first_bad_seq IS NULL AS no_bad_seq
  FROM es_verify();
SELECT * FROM v_checks;
-- one account
SELECT check_name, ok, checked, first_bad_seq, detail FROM es_verify('v-b');
SELECT try($$SELECT count(*)::text FROM es_verify('v-nobody')$$);
-- a digest now, checked now and after more commands
SELECT seq AS d_seq, digest AS d_digest FROM es_digest() \gset
SELECT length(:'d_digest'::bytea) AS digest_bytes, :d_seq = (SELECT max(seq) FROM es_events) AS at_last_seq;
SELECT es_verify_digest(:d_seq, :'d_digest') AS digest_holds;
SELECT es_deposit('v-a', 5) > 0 AS ok;
SELECT es_verify_digest(:d_seq, :'d_digest') AS digest_holds_after_more_events;
SELECT regexp_replace(try(format('SELECT es_verify_digest(%s, %L)::text', :d_seq - 1, :'d_digest')),
                      '[0-9]+', 'N', 'g') AS other_seq;
SELECT try($$SELECT es_verify_digest(1, '\x00'::bytea)::text$$);
-- es_digest refuses to run in a transaction that has written
BEGIN;
SELECT es_deposit('v-a', 1) > 0 AS ok;
SELECT try($$SELECT count(*)::text FROM es_digest()$$);
ROLLBACK;
SELECT seq AS v_seq FROM es_events e JOIN es_accounts a USING (account_id)
 WHERE a.account = 'v-b' AND e.type = 'TransferReceived' \gset

-- 1. the access method switched to heap (event triggers off), then UPDATE
BEGIN;
ALTER EVENT TRIGGER es_guard_ddl DISABLE;
ALTER EVENT TRIGGER es_guard_rewrite DISABLE;
ALTER TABLE es_events SET ACCESS METHOD heap;
UPDATE es_events SET amount = amount * 10 WHERE seq = :v_seq;
SELECT check_name, ok, first_bad_seq = :v_seq AS at_the_event, first_bad_seq IS NULL AS no_seq
  FROM es_verify() ORDER BY check_name;
SELECT es_verify_digest(:d_seq, :'d_digest') AS digest_holds;
ROLLBACK;

-- 2. pg_class.relam edited, then UPDATE of the data, keeping hash and checksum
BEGIN;
UPDATE pg_class SET relam = (SELECT oid FROM pg_am WHERE amname = 'heap')
 WHERE oid = 'es_events'::regclass;
UPDATE es_events SET data = data || '{"note": "forged"}' WHERE seq = :v_seq;
SELECT check_name, ok, first_bad_seq = :v_seq AS at_the_event
  FROM es_verify() WHERE NOT ok ORDER BY check_name;
SELECT es_verify_digest(:d_seq, :'d_digest') AS digest_holds;
ROLLBACK;

-- 3. an event deleted: a gap in the versions, a broken link after it
BEGIN;
UPDATE pg_class SET relam = (SELECT oid FROM pg_am WHERE amname = 'heap')
 WHERE oid = 'es_events'::regclass;
DELETE FROM es_events WHERE seq = (SELECT min(e.seq) FROM es_events e JOIN es_accounts a USING (account_id)
                                    WHERE a.account = 'v-a' AND e.version = 2);
SELECT check_name, ok FROM es_verify() WHERE NOT ok ORDER BY check_name;
SELECT check_name, ok, regexp_replace(detail, '[0-9]+', 'N', 'g') AS detail
  FROM es_verify('v-a') WHERE check_name = 'versions';
SELECT es_verify_digest(:d_seq, :'d_digest') AS digest_holds;
ROLLBACK;

-- 4. a damaged row: a hash of the wrong length, an unknown format, a NULL
BEGIN;
UPDATE pg_class SET relam = (SELECT oid FROM pg_am WHERE amname = 'heap')
 WHERE oid = 'es_events'::regclass;
UPDATE es_events SET hash = '\x0102' WHERE seq = :v_seq;
SELECT check_name, ok, first_bad_seq = :v_seq AS at_the_event,
       regexp_replace(detail, '[0-9]+', 'N', 'g') AS detail
  FROM es_verify() WHERE check_name = 'checksum';
SELECT regexp_replace(try($$SELECT (es_replay('v-b')).balance::text$$), '[0-9]+', 'N', 'g') AS replay;
ALTER EVENT TRIGGER es_guard_ddl DISABLE;
ALTER TABLE es_events ALTER COLUMN hash DROP NOT NULL;
UPDATE es_events SET hash = NULL WHERE seq = :v_seq;
SELECT ok, first_bad_seq = :v_seq AS at_the_event, regexp_replace(detail, '[0-9]+', 'N', 'g') AS detail
  FROM es_verify() WHERE check_name = 'checksum';
ROLLBACK;
BEGIN;
UPDATE pg_class SET relam = (SELECT oid FROM pg_am WHERE amname = 'heap')
 WHERE oid = 'es_events'::regclass;
UPDATE es_events SET format = 9 WHERE seq = :v_seq;
SELECT ok, first_bad_seq = :v_seq AS at_the_event, regexp_replace(detail, '[0-9]+', 'N', 'g') AS detail
  FROM es_verify() WHERE check_name = 'checksum';
ROLLBACK;

-- 5. an amount on an event that moves no money: besides the checksum and
-- the link, the fold refuses it (as it would if the forger recomputed both)
BEGIN;
UPDATE pg_class SET relam = (SELECT oid FROM pg_am WHERE amname = 'heap')
 WHERE oid = 'es_events'::regclass;
UPDATE es_events SET amount = 500 WHERE seq = (SELECT min(e.seq) FROM es_events e JOIN es_accounts a USING (account_id)
                                                WHERE a.account = 'v-e' AND e.type = 'AccountOpened');
SELECT check_name, ok FROM es_verify('v-e') WHERE NOT ok ORDER BY check_name;
ROLLBACK;

-- 6. the projection written behind es_apply's back (guard trigger disabled
-- with the DDL guard off; session_replication_role alone no longer does it)
BEGIN;
SET LOCAL session_replication_role = replica;
SELECT try($$UPDATE es_accounts SET balance = balance + 1000000 WHERE account = 'v-b' RETURNING 'updated'$$);
RESET session_replication_role;
ALTER EVENT TRIGGER es_guard_ddl DISABLE;
ALTER TABLE es_accounts DISABLE TRIGGER es_guard;
UPDATE es_accounts SET balance = balance + 1000000, available = available + 1000000
 WHERE account = 'v-b';
SELECT check_name, ok, detail LIKE '%"v-b"%balance%' OR detail LIKE '%USD%' AS names_it
  FROM es_verify() WHERE NOT ok ORDER BY check_name;
SELECT es_verify_digest(:d_seq, :'d_digest') AS digest_holds;
ROLLBACK;

-- 7. an event moved to the end of the heap, content unchanged (an UPDATE
-- through the heap access method writes a new row version there): the
-- physical walk meets the account out of version order and checks it by
-- index; everything still verifies.  Then the same with its amount changed.
BEGIN;
UPDATE pg_class SET relam = (SELECT oid FROM pg_am WHERE amname = 'heap')
 WHERE oid = 'es_events'::regclass;
UPDATE es_events SET amount = amount WHERE seq = (SELECT min(e.seq) FROM es_events e JOIN es_accounts a USING (account_id)
                                                   WHERE a.account = 'v-a' AND e.version = 2);
SELECT check_name, ok, regexp_replace(detail, '[0-9]+', 'N', 'g') AS detail
  FROM es_verify() WHERE check_name IN ('versions', 'hash_chain', 'projection') ORDER BY check_name;
UPDATE es_events SET amount = amount + 1 WHERE seq = (SELECT min(e.seq) FROM es_events e JOIN es_accounts a USING (account_id)
                                                   WHERE a.account = 'v-a' AND e.version = 2);
SELECT check_name, ok FROM es_verify() WHERE NOT ok ORDER BY check_name;
ROLLBACK;

-- 9. an event copied into the table but hidden from its unique indexes
-- (their indisready turned off around the insert): the physical walk and
-- the digest count rows in the table itself
BEGIN;
UPDATE pg_class SET relam = (SELECT oid FROM pg_am WHERE amname = 'heap')
 WHERE oid = 'es_events'::regclass;
UPDATE pg_index SET indisready = false WHERE indrelid = 'es_events'::regclass;
INSERT INTO es_events SELECT * FROM es_events WHERE seq = :v_seq;
UPDATE pg_index SET indisready = true WHERE indrelid = 'es_events'::regclass;
SELECT check_name, ok, regexp_replace(detail, '[0-9]+', 'N', 'g') AS detail
  FROM es_verify() WHERE NOT ok ORDER BY check_name;
SET LOCAL client_min_messages = warning;
SELECT es_verify_digest(:d_seq, :'d_digest') AS digest_holds;
ROLLBACK;

-- 8. the idempotency register written behind es_apply's back: a row for
-- an id that wrote no event (a retry of it would return a seq and write
-- nothing), and a registered command's row removed
SELECT es_deposit('v-a', 3, 'v-dep-id') > 0 AS ok;
BEGIN;
ALTER EVENT TRIGGER es_guard_ddl DISABLE;
ALTER TABLE es_commands DISABLE TRIGGER es_guard;
INSERT INTO es_commands
SELECT 'v-swallowed', '{"id": "v-swallowed", "type": "deposit", "amount": 500, "account": "v-b"}', max(seq)
  FROM es_events;
SELECT check_name, ok, regexp_replace(detail, '[0-9]+', 'N', 'g') AS detail
  FROM es_verify() WHERE check_name = 'commands';
DELETE FROM es_commands WHERE command_id = 'v-swallowed';
DELETE FROM es_commands WHERE command_id = 'v-dep-id';
SELECT check_name, ok, regexp_replace(detail, '[0-9]+', 'N', 'g') AS detail
  FROM es_verify() WHERE check_name = 'commands';
ROLLBACK;

-- 9. a reversal link planted in the register (a restore copies es_commands
-- unchecked): its events do not carry it, so the commands check fails; the
-- planted link would have blocked es_reverse of v-dep-id (ES008)
SELECT es_deposit('v-a', 4, 'v-planted') > 0 AS ok;
BEGIN;
ALTER EVENT TRIGGER es_guard_ddl DISABLE;
ALTER TABLE es_commands DISABLE TRIGGER es_guard;
UPDATE es_commands SET command = command || '{"reverses": "v-dep-id"}' WHERE command_id = 'v-planted';
SELECT check_name, ok, regexp_replace(detail, '[0-9]+', 'N', 'g') AS detail
  FROM es_verify() WHERE check_name = 'commands';
ROLLBACK;
SELECT check_name, ok FROM es_verify() WHERE check_name = 'commands';

-- and after all that, untouched again
SELECT * FROM v_checks;
SELECT es_verify_digest(:d_seq, :'d_digest') AS digest_holds;
DROP VIEW v_checks;
