-- test/fuzz/run.sql: one chunk of the parser fuzzer (test/fuzz.sh).
-- psql variables: n (inputs), seed (for setseed, in [-1, 1]).  Every input
-- goes through one parser of es_ledger in a subtransaction; its outcome
-- (ok or the SQLSTATE) is counted in fz.results, and an outcome outside
-- fz.allowed is kept in fz.bad.  A crash ends the session: the chunk's seed
-- reproduces it.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET search_path = public, fz;
SELECT set_config('fz.n', :'n', false), set_config('fz.seed', :'seed', false) \g /dev/null
DO $fuzz$
DECLARE
	n int := current_setting('fz.n')::int;
	tgt text;
	input text;
	state text;
	msg text;
	cur text;
	dseq bigint;
	dig bytea;
	b bytea;
	r record;
	counts jsonb := '{}';
BEGIN
	PERFORM setseed(current_setting('fz.seed')::float8);
	SELECT d.seq, d.digest INTO dseq, dig FROM es_digest() d;
	SELECT e.cursor INTO cur FROM es_read(NULL, 3) e OFFSET 2;
	FOR i IN 1 .. n LOOP
		tgt := fz.pick(ARRAY['apply', 'apply', 'apply', 'batch', 'each', 'name', 'open', 'cursor',
			'digest', 'time', 'reverse', 'projection']);
		input := NULL;
		BEGIN
			CASE tgt
				WHEN 'apply' THEN
					input := fz.command()::text;
					PERFORM es_apply(input::jsonb);
				WHEN 'batch' THEN
					input := (SELECT jsonb_agg(fz.command()) FROM generate_series(1, 1 + floor(random() * 4)::int))::text;
					PERFORM es_apply(input::jsonb);
				WHEN 'each' THEN
					input := (SELECT jsonb_agg(fz.command()) FROM generate_series(1, 1 + floor(random() * 4)::int))::text;
					PERFORM * FROM es_apply_each(input::jsonb);
				WHEN 'name' THEN
					input := fz.name();
					PERFORM es_deposit(input, 1 + floor(random() * 10)::int);
				WHEN 'open' THEN
					input := fz.name() || ' / ' || fz.name();
					PERFORM es_open_account(split_part(input, ' / ', 1), split_part(input, ' / ', 2));
				WHEN 'cursor' THEN
					input := CASE floor(random() * 4)::int
						WHEN 0 THEN overlay(cur PLACING fz.pick(ARRAY['0', '9', ':', 'a', 'f', '', '-', 'es2', 'é'])
										FROM 1 + floor(random() * length(cur))::int FOR floor(random() * 3)::int)
						WHEN 1 THEN left(cur, floor(random() * length(cur))::int)
						WHEN 2 THEN cur || fz.pick(ARRAY['0', ':1', ':', '00000000000000000000'])
						ELSE fz.pick(ARRAY['es1:', 'es1:0:0:0', 'es1:-1:-1:00000000', 'es1:99999999999999999999:1:0',
										   'es1:18446744073709551615:9223372036854775807:ffffffff', ''])
					END;
					PERFORM * FROM es_read(input, fz.pick(ARRAY['1', '1000', '100000', '0', '-1', '100001', '2147483647'])::int);
				WHEN 'digest' THEN
					b := dig;
					CASE floor(random() * 4)::int
						WHEN 0 THEN b := set_byte(b, floor(random() * length(b))::int, floor(random() * 256)::int);
						WHEN 1 THEN b := substr(b, 1, floor(random() * length(b))::int);
						WHEN 2 THEN b := b || '\x00'::bytea;
						ELSE b := decode(repeat('ab', floor(random() * 60)::int), 'hex');
					END CASE;
					input := fz.pick(ARRAY[dseq::text, '0', '-1', '1', '9223372036854775807', (dseq + 1)::text]) || ' ' || b::text;
					PERFORM es_verify_digest(split_part(input, ' ', 1)::bigint, split_part(input, ' ', 2)::bytea);
				WHEN 'time' THEN
					input := fz.pick(ARRAY['fa', 'fb', 'nope']) || ' ' || fz.ts();
					CASE floor(random() * 4)::int
						WHEN 0 THEN PERFORM es_replay(split_part(input, ' ', 1), substr(input, strpos(input, ' ') + 1)::timestamptz);
						WHEN 1 THEN PERFORM es_balance_at(split_part(input, ' ', 1), substr(input, strpos(input, ' ') + 1)::timestamptz);
						WHEN 2 THEN PERFORM * FROM es_history(split_part(input, ' ', 1), substr(input, strpos(input, ' ') + 1)::timestamptz);
						ELSE PERFORM es_replay(split_part(input, ' ', 1), NULL, substr(input, strpos(input, ' ') + 1)::timestamptz);
					END CASE;
				WHEN 'reverse' THEN
					input := fz.pick(ARRAY['seed-dep', 'seed-tr', 'seed-p1', 't1', fz.name()]);
					PERFORM es_reverse(input, 'rv-' || floor(random() * 1e9)::text);
				ELSE
					input := fz.name();
					PERFORM es_projection_pause(input);
			END CASE;
			state := 'ok';
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			IF EXISTS (SELECT FROM fz.known k WHERE k.target = tgt AND k.sqlstate = state
						 AND msg LIKE k.message_like) THEN
				state := 'known:' || state;
			ELSIF NOT EXISTS (SELECT FROM fz.allowed a WHERE a.sqlstate = state) THEN
				INSERT INTO fz.bad VALUES (tgt, state, msg, left(input, 2000));
			END IF;
		END;
		counts := jsonb_set(counts, ARRAY[tgt || ' ' || state],
							to_jsonb(coalesce((counts ->> (tgt || ' ' || state))::bigint, 0) + 1));
	END LOOP;
	INSERT INTO fz.results
	SELECT split_part(key, ' ', 1), split_part(key, ' ', 2), value::bigint FROM jsonb_each_text(counts)
	ON CONFLICT ON CONSTRAINT results_pkey DO UPDATE SET n = fz.results.n + excluded.n;
END
$fuzz$;
