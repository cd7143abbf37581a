-- comments: every member of the extension is explained in the catalog
-- (\df+, \d+, \dd).  Lists each member function, table, view or sequence,
-- and each column of a member table or view, that has no COMMENT: the
-- lists must be empty.  A new object added without its COMMENT ON (in both
-- es_ledger--X.sql and the update script) fails here.
-- (schema.sql, before, drops the extension; upgrade.sql, after, starts
-- without one)
CREATE EXTENSION es_ledger;
CREATE TEMP VIEW c_members AS
SELECT d.classid, d.objid
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'es_ledger')
   AND d.deptype = 'e';
-- enough members to mean something (31 functions, 7 tables and views and
-- 96 columns in 0.4.0)
SELECT count(*) FILTER (WHERE classid = 'pg_proc'::regclass) >= 31 AS functions,
	   count(*) FILTER (WHERE classid = 'pg_class'::regclass) >= 9 AS relations
  FROM c_members;
SELECT count(*) >= 96 AS columns
  FROM c_members m JOIN pg_attribute a ON a.attrelid = m.objid
 WHERE m.classid = 'pg_class'::regclass AND a.attnum > 0 AND NOT a.attisdropped;
-- functions without a comment
SELECT m.objid::regprocedure AS function_without_comment
  FROM c_members m
 WHERE m.classid = 'pg_proc'::regclass
   AND obj_description(m.objid, 'pg_proc') IS NULL
 ORDER BY 1::text;
-- tables, views and sequences without a comment
SELECT m.objid::regclass AS relation_without_comment
  FROM c_members m JOIN pg_class c ON c.oid = m.objid
 WHERE m.classid = 'pg_class'::regclass AND c.relkind IN ('r', 'v', 'm', 'S', 'p')
   AND obj_description(m.objid, 'pg_class') IS NULL
 ORDER BY 1::text;
-- columns without a comment
SELECT m.objid::regclass || '.' || a.attname AS column_without_comment
  FROM c_members m
  JOIN pg_class c ON c.oid = m.objid
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE m.classid = 'pg_class'::regclass AND c.relkind IN ('r', 'v', 'm', 'p')
   AND col_description(c.oid, a.attnum) IS NULL
 ORDER BY 1;
-- the access method, types and event triggers are members too
SELECT m.classid::regclass AS catalog, m.objid AS member_without_comment
  FROM c_members m
 WHERE m.classid IN ('pg_am'::regclass, 'pg_type'::regclass)
   AND obj_description(m.objid, m.classid::regclass::name) IS NULL
   AND NOT (m.classid = 'pg_type'::regclass
			AND EXISTS (SELECT FROM pg_type t WHERE t.oid = m.objid AND t.typrelid <> 0))
 ORDER BY 1, 2;
-- what \df+ shows
SELECT p.oid::regprocedure, obj_description(p.oid, 'pg_proc')
  FROM pg_proc p WHERE p.proname = 'es_deposit';
DROP VIEW c_members;
DROP EXTENSION es_ledger;
