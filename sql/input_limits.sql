-- input_limits: what es_apply and the shorthands refuse before reading the
-- database (es_command.c): batches longer than es_ledger.max_batch_commands,
-- metadata larger than es_ledger.max_metadata_bytes or deeper than
-- es_ledger.max_metadata_depth, and account names and currencies that are
-- not NFC, hold control or format characters, or begin or end with white
-- space.  Each is ES009 with nothing written.
--
-- Needs a UTF8 database (the NFC check, and U&'' escapes above U+007F):
-- pg_regress creates contrib_regression in the cluster's encoding, which is
-- UTF8 under .ci/test (LANG=C.UTF-8).  In another encoding this test fails
-- on the first line; the character checks are then done on the text
-- converted to UTF-8, and NFC is not required.
SELECT getdatabaseencoding();

-- ------------------------------------------------------------ the GUCs
-- Only a superuser may change them.  Set before the library is loaded, a
-- non-superuser's value is only a placeholder, dropped with a warning when
-- the library loads (here, on the first call of an es_ledger function).
CREATE ROLE il_writer IN ROLE es_ledger_writer;
SET ROLE il_writer;
SET es_ledger.max_batch_commands = 10000000;
SELECT try($$SELECT es_apply('{"type": "deposit", "account": "il-nobody", "amount": 1}')::text$$);
SHOW es_ledger.max_batch_commands;
SELECT name, setting, unit, context, vartype, min_val, max_val, boot_val FROM pg_settings
 WHERE name IN ('es_ledger.max_batch_commands', 'es_ledger.max_metadata_bytes', 'es_ledger.max_metadata_depth')
 ORDER BY name;
-- once loaded, the prefix is reserved and the GUCs refuse a non-superuser
SELECT try($$SELECT set_config('es_ledger.max_batch_commands', '10000000', false)$$);
SELECT try($$SELECT set_config('es_ledger.max_metadata_bytes', '1GB', false)$$);
SELECT try($$SELECT set_config('es_ledger.max_metadata_depth', '100', false)$$);
SELECT try($$SELECT set_config('es_ledger.no_such_setting', '1', false)$$);
RESET ROLE;
DROP ROLE il_writer;
-- the bounds of the GUCs themselves
SELECT try($$SELECT set_config('es_ledger.max_batch_commands', '0', false)$$);
SELECT try($$SELECT set_config('es_ledger.max_metadata_depth', '101', false)$$);
SELECT count(*) AS events_before FROM es_events \gset

-- ------------------------------------------------------------ batch size
SELECT es_open_account('il-a', 'EUR') > 0 AS ok;
SET es_ledger.max_batch_commands = 5;
-- exactly the limit: applied
SELECT es_apply(jsonb_agg(jsonb_build_object('type', 'deposit', 'account', 'il-a', 'amount', 1))) > 0 AS ok
  FROM generate_series(1, 5);
-- one more: refused
SELECT try($$SELECT es_apply(jsonb_agg(jsonb_build_object('type', 'deposit', 'account', 'il-a', 'amount', 1)))::text
  FROM generate_series(1, 6)$$);
-- refused from the count alone, before any element is read (none is a command)
SELECT try($$SELECT es_apply('[1, 2, 3, 4, 5, 6]')::text$$);
SELECT try($$SELECT es_apply('[1, 2, 3, 4, 5]')::text$$);
-- a single command is not a batch
SET es_ledger.max_batch_commands = 1;
SELECT es_apply('{"type": "deposit", "account": "il-a", "amount": 1}') > 0 AS ok;
SELECT es_apply('[{"type": "deposit", "account": "il-a", "amount": 1}]') > 0 AS ok;
SELECT try($$SELECT es_apply('[{"type": "deposit", "account": "il-a", "amount": 1},
                               {"type": "deposit", "account": "il-a", "amount": 1}]')::text$$);
RESET es_ledger.max_batch_commands;
SELECT balance, version FROM es_accounts WHERE account = 'il-a';

-- ------------------------------------------------------------ metadata size
-- The size is that of the object's jsonb form: pg_column_size of the object
-- on its own.  {"note": "xx...x"} is 20 bytes plus the note.
SELECT pg_column_size(jsonb_build_object('note', repeat('x', 8172))) AS bytes_at_limit;
SELECT es_apply(jsonb_build_object('type', 'deposit', 'account', 'il-a', 'amount', 1,
       'metadata', jsonb_build_object('note', repeat('x', 8172)))) > 0 AS ok;
SELECT try(format('SELECT es_apply(%L)::text', jsonb_build_object('type', 'deposit', 'account', 'il-a', 'amount', 1,
       'metadata', jsonb_build_object('note', repeat('x', 8173)))));
-- multibyte text counts in bytes
SELECT try(format('SELECT es_apply(%L)::text', jsonb_build_object('type', 'deposit', 'account', 'il-a', 'amount', 1,
       'metadata', jsonb_build_object('note', repeat(U&'\00E9', 4087)))));
-- in a batch, the message names the command
SELECT try(format('SELECT es_apply(%L)::text', jsonb_build_array(
       jsonb_build_object('type', 'deposit', 'account', 'il-a', 'amount', 1),
       jsonb_build_object('type', 'deposit', 'account', 'il-a', 'amount', 1,
                          'metadata', jsonb_build_object('note', repeat('x', 9000))))));
-- a lower limit; 0 refuses any metadata ({} is 8 bytes)
SET es_ledger.max_metadata_bytes = 8;
SELECT es_apply('{"type": "deposit", "account": "il-a", "amount": 1, "metadata": {}}') > 0 AS ok;
SELECT try($$SELECT es_apply('{"type": "deposit", "account": "il-a", "amount": 1, "metadata": {"a": 1}}')::text$$);
SET es_ledger.max_metadata_bytes = 0;
SELECT try($$SELECT es_apply('{"type": "deposit", "account": "il-a", "amount": 1, "metadata": {}}')::text$$);
SELECT es_apply('{"type": "deposit", "account": "il-a", "amount": 1}') > 0 AS ok;
RESET es_ledger.max_metadata_bytes;

-- ------------------------------------------------------------ metadata depth
-- The object itself is level 1; each object or array inside it one more.
-- At the default (8): 8 levels applied, 9 refused, objects or arrays.
SELECT es_apply(('{"type": "deposit", "account": "il-a", "amount": 1, "metadata": '
       || repeat('{"a": ', 8) || '1' || repeat('}', 8) || '}')::jsonb) > 0 AS ok;
SELECT try(format('SELECT es_apply(%L)::text', '{"type": "deposit", "account": "il-a", "amount": 1, "metadata": '
       || repeat('{"a": ', 9) || '1' || repeat('}', 9) || '}'));
SELECT es_apply(('{"type": "deposit", "account": "il-a", "amount": 1, "metadata": {"a": '
       || repeat('[', 7) || repeat(']', 7) || '}}')::jsonb) > 0 AS ok;
SELECT try(format('SELECT es_apply(%L)::text', '{"type": "deposit", "account": "il-a", "amount": 1, "metadata": {"a": '
       || repeat('[', 8) || repeat(']', 8) || '}}'));
-- depth counts nesting, not width: many containers side by side are level 2
SELECT es_apply(jsonb_build_object('type', 'deposit', 'account', 'il-a', 'amount', 1,
       'metadata', (SELECT jsonb_object_agg('k' || i, '[]'::jsonb) FROM generate_series(1, 200) i))) > 0 AS ok;
-- a lower limit
SET es_ledger.max_metadata_depth = 1;
SELECT es_apply('{"type": "deposit", "account": "il-a", "amount": 1, "metadata": {"a": 1, "b": "x"}}') > 0 AS ok;
SELECT try($$SELECT es_apply('{"type": "deposit", "account": "il-a", "amount": 1, "metadata": {"a": []}}')::text$$);
RESET es_ledger.max_metadata_depth;
-- 10000 levels (as deep as jsonb input takes at max_stack_depth 2MB), with
-- the size limit lifted so that the depth is what refuses it: ES009, the
-- walk stops at level 9
SET es_ledger.max_metadata_bytes = '1MB';
SELECT try(format('SELECT es_apply(%L)::text', '{"type": "deposit", "account": "il-a", "amount": 1, "metadata": '
       || repeat('{"a": ', 10000) || '1' || repeat('}', 10000) || '}'));
SELECT try(format('SELECT es_apply(%L)::text', '{"type": "deposit", "account": "il-a", "amount": 1, "metadata": {"a": '
       || repeat('[', 10000) || repeat(']', 10000) || '}}'));
RESET es_ledger.max_metadata_bytes;
-- 100000 levels: jsonb's own input refuses it (stack depth) before
-- es_apply is called; at the default limits the size would refuse it anyway
SELECT try(format('SELECT es_apply(%L)::text', '{"type": "deposit", "account": "il-a", "amount": 1, "metadata": '
       || repeat('{"a": ', 100000) || '1' || repeat('}', 100000) || '}'));
-- the session is fine
SELECT balance, version FROM es_accounts WHERE account = 'il-a';

-- ------------------------------------------------------------ account names
-- Refused: not NFC, a control (Cc) or format (Cf) character or a line or
-- paragraph separator anywhere, white space at either end.  Each through
-- es_apply (open_account, deposit, transfer "from" and "to") and through the
-- shorthands, with the same message; nothing written.
CREATE TEMP TABLE bad_names (n serial, label text, name text);
INSERT INTO bad_names (label, name) VALUES
	('NFD: e + combining acute', 'caf' || 'e' || U&'\0301'),
	('NFD: A + combining ring', 'A' || U&'\030A' || 'rhus'),
	('zero-width space', 'il' || U&'\200B' || 'b'),
	('zero-width joiner', 'il' || U&'\200D' || 'b'),
	('right-to-left override', U&'\202E' || 'il-b'),
	('left-to-right mark', 'il-b' || U&'\200E'),
	('first strong isolate', 'il-' || U&'\2068' || 'b'),
	('byte order mark', U&'\FEFF' || 'il-b'),
	('soft hyphen', 'il' || U&'\00AD' || 'b'),
	('tag character', 'il-b' || U&'\+0E0041'),
	('tab', E'il\tb'),
	('newline', E'il\nb'),
	('chr(1)', 'il' || chr(1) || 'b'),
	('DEL', 'il' || chr(127) || 'b'),
	('C1 control U+0085', 'il' || U&'\0085' || 'b'),
	('line separator', 'il' || U&'\2028' || 'b'),
	('leading space', ' il-b'),
	('trailing space', 'il-b '),
	('trailing no-break space', 'il-b' || U&'\00A0'),
	('leading ideographic space', U&'\3000' || 'il-b'),
	('trailing thin space', 'il-b' || U&'\2009'),
	('combining grapheme joiner', 'il' || U&'\034F' || 'b'),
	('variation selector-16', 'il' || U&'\FE0F' || 'b'),
	('Hangul choseong filler', 'il' || U&'\115F' || 'b'),
	('Hangul filler', 'il' || U&'\3164' || 'b'),
	('leading halfwidth Hangul filler', U&'\FFA0' || 'il-b'),
	('trailing Braille blank', 'il-b' || U&'\2800'),
	('inner no-break space', 'il' || U&'\00A0' || 'b'),
	('inner ideographic space', 'il' || U&'\3000' || 'b'),
	('only a space', ' ');
SELECT es_open_account('il-b', 'EUR') > 0 AS ok;
SELECT count(*) AS events_here FROM es_events \gset
SELECT n, label,
       try(format('SELECT es_apply(%L)::text',
                  jsonb_build_object('type', 'open_account', 'account', name, 'currency', 'EUR'))) AS open_via_apply
  FROM bad_names ORDER BY n;
-- the same message whichever way the name comes in
SELECT n, label,
       try(format('SELECT es_open_account(%L, %L)::text', name, 'EUR')) = o AS es_open_account,
       try(format('SELECT es_deposit(%L, 1)::text', name)) = o AS es_deposit,
       try(format('SELECT es_apply(%L)::text', jsonb_build_object('type', 'deposit', 'account', name, 'amount', 1))) = o AS deposit,
       try(format('SELECT es_withdraw(%L, 1)::text', name)) = o AS es_withdraw,
       try(format('SELECT es_apply(%L)::text', jsonb_build_object('type', 'freeze_account', 'account', name))) = o AS freeze,
       try(format('SELECT es_transfer(%L, %L, 1)::text', name, 'il-b')) = replace(o, '"account"', '"from"') AS from_,
       try(format('SELECT es_transfer(%L, %L, 1)::text', 'il-b', name)) = replace(o, '"account"', '"to"') AS to_
  FROM (SELECT n, label, name,
               try(format('SELECT es_apply(%L)::text',
                          jsonb_build_object('type', 'open_account', 'account', name, 'currency', 'EUR'))) AS o
          FROM bad_names) s
 ORDER BY n;
-- in a batch, the message names the command
SELECT try(format('SELECT es_apply(%L)::text', jsonb_build_array(
       jsonb_build_object('type', 'deposit', 'account', 'il-b', 'amount', 1),
       jsonb_build_object('type', 'transfer', 'from', 'il-b', 'to', 'il-b' || U&'\00A0', 'amount', 1))));
-- nothing was written
SELECT count(*) - :events_here AS written FROM es_events;
SELECT count(*) AS accounts FROM es_accounts WHERE account LIKE '%il%b%';

-- ------------------------------------------------------------ currencies
-- held to the same rules as names
SELECT try($$SELECT es_open_account('il-c', 'EUR ')::text$$);
SELECT try($$SELECT es_open_account('il-c', U&'\00A0EUR')::text$$);
SELECT try(format('SELECT es_apply(%L)::text',
       jsonb_build_object('type', 'open_account', 'account', 'il-c', 'currency', 'E' || U&'\200B' || 'UR')));
SELECT try(format('SELECT es_open_account(%L, %L)::text', 'il-c', E'EUR\n'));
SELECT try(format('SELECT es_open_account(%L, %L)::text', 'il-c', 'E' || U&'\0301'));

-- ------------------------------------------------------------ ids
-- An id is an opaque key compared byte for byte: only control characters
-- are refused (they would disturb messages and logs); NFC, format
-- characters and white space are left alone, so ids in use stay usable.
SELECT try(format('SELECT es_deposit(%L, 1, %L)::text', 'il-b', E'id\n1'));
SELECT try(format('SELECT es_apply(%L)::text',
       jsonb_build_object('type', 'deposit', 'account', 'il-b', 'amount', 1, 'id', 'id' || chr(27) || '[2J')));
SELECT try(format('SELECT es_apply(%L)::text',
       jsonb_build_object('type', 'deposit', 'account', 'il-b', 'amount', 1, 'id', 'id' || U&'\0085')));
SELECT es_deposit('il-b', 1, ' il-id-1 ') > 0 AS ok;
SELECT es_deposit('il-b', 1, 'il-id-' || U&'\200B') > 0 AS ok;
SELECT es_deposit('il-b', 1, 'il-id-e' || U&'\0301') > 0 AS ok;
SELECT count(*) AS ids FROM es_events WHERE command_id LIKE '%il-id-%';

-- ------------------------------------------------------------ good names
-- Non-ASCII names in NFC are accepted, as are spaces inside a name, and a
-- combining mark with no precomposed form (x + U+0301 is NFC).
SELECT es_open_account(U&'caf\00E9', 'EUR') > 0 AS ok;
SELECT es_apply(jsonb_build_object('type', 'open_account', 'account', U&'Z\00FCrich', 'currency', 'CHF')) > 0 AS ok;
SELECT es_open_account(U&'\6771\4EAC', 'JPY') > 0 AS ok;
SELECT es_open_account('il two words', 'EUR') > 0 AS ok;
SELECT es_open_account('il-x' || U&'\0301', 'EUR') > 0 AS ok;
-- normalize() gives the form a refused NFD name needed
SELECT es_deposit(normalize('caf' || 'e' || U&'\0301', NFC), 100) > 0 AS ok;
SELECT es_apply(jsonb_build_object('type', 'deposit', 'account', U&'Z\00FCrich', 'amount', 200)) > 0 AS ok;
SELECT es_deposit(U&'\6771\4EAC', 300) > 0 AS ok;
SELECT es_transfer(U&'caf\00E9', 'il two words', 40) > 0 AS ok;
SELECT account, account IS NFC NORMALIZED AS nfc, length(account) AS chars, currency, balance
  FROM es_accounts
 WHERE account IN (U&'caf\00E9', U&'Z\00FCrich', U&'\6771\4EAC', 'il two words', 'il-x' || U&'\0301')
 ORDER BY account_id;

-- ------------------------------------------------------------ 100,000 commands
-- A batch of es_ledger.max_batch_commands (default 100000) deposits, spread
-- over 1000 accounts (many updates of one account in one transaction are
-- slow today; see es_command.c for the memory this takes), and one more.
SELECT count(es_open_account('il-big-' || i, 'USD')) AS opened FROM generate_series(1, 1000) i;
SELECT es_apply(jsonb_agg(jsonb_build_object('type', 'deposit', 'account', 'il-big-' || (i % 1000 + 1), 'amount', i)))
       > 0 AS ok
  FROM generate_series(1, 100000) i;
SELECT count(*) AS accounts, sum(balance) AS total, min(version) AS min_version, max(version) AS max_version
  FROM es_accounts WHERE account LIKE 'il-big-%';
SELECT try($$SELECT es_apply(jsonb_agg(jsonb_build_object('type', 'deposit', 'account', 'il-big-1', 'amount', 1)))::text
  FROM generate_series(1, 100001)$$);
SELECT count(*) - :events_before AS written FROM es_events;
