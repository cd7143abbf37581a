-- planted_types: the extension's SQL functions (es_account_of,
-- es_transfer_of, es_balance_effective_at) resolve the names in their
-- bodies in pg_catalog first.  A type the database owner plants in the
-- extension's schema (public, which it owns in PostgreSQL 15) under a
-- built-in type's name, here a domain public.text whose CHECK calls the
-- owner's function, is not read in pg_catalog's place: it would run the
-- owner's code with the rights of whoever calls the functions, a
-- superuser's included.  Runs last: it needs the database's owner changed.
\set VERBOSITY terse
CREATE ROLE pt_owner;
CREATE FUNCTION pg_temp.set_db_owner(r text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN EXECUTE format('ALTER DATABASE %I OWNER TO %I', current_database(), r); END $$;
SELECT pg_temp.set_db_owner('pt_owner');
SET ROLE pt_owner;
CREATE FUNCTION public.pt_escalate(pg_catalog.text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
		ALTER ROLE pt_owner SUPERUSER;
	END IF;
	RETURN true;
END $$;
CREATE DOMAIN public.text AS pg_catalog.text CHECK (public.pt_escalate(VALUE));
RESET ROLE;

-- a superuser calls the three functions, each through every branch that
-- names a type: a transfer with an id, one without (its TransferSent and
-- its TransferReceived event), an account, a balance
SELECT es_open_account('pt-a', 'USD') > 0 AS opened, es_open_account('pt-b', 'USD') > 0 AS opened,
	   es_deposit('pt-a', 100) > 0 AS deposited;
SELECT transfer_id, from_account, to_account, amount
  FROM es_transfer_of(es_transfer('pt-a', 'pt-b', 5, 'pt-t1'));
SELECT from_account, to_account, amount FROM es_transfer_of(es_transfer('pt-a', 'pt-b', 7));
SELECT from_account, to_account, amount
  FROM es_transfer_of((SELECT max(seq) FROM es_events WHERE type = 'TransferSent'));
SELECT account, balance FROM es_account_of(es_deposit('pt-b', 1));
SELECT es_balance_effective_at('pt-a', now()) AS balance;

-- the planted type was never read: the owner is still not a superuser
SELECT rolsuper AS pt_owner_is_superuser FROM pg_roles WHERE rolname = 'pt_owner';
-- pg_catalog comes first in each function's search_path
SELECT p.proname, p.proconfig FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'es_ledger'
 WHERE p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')
 ORDER BY 1;

-- leave the database with its owner
SELECT pg_temp.set_db_owner(current_user);
DROP DOMAIN public.text;
DROP FUNCTION public.pt_escalate(pg_catalog.text);
DROP ROLE pt_owner;
