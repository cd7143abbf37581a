/* es_ledger--0.3.0--0.4.0.sql: update es_ledger from 0.3.0 to 0.4.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION es_ledger UPDATE TO '0.4.0'" to load this file. \quit

-- Each section below matches a section of es_ledger--0.4.0.sql, and
-- sql/upgrade.sql checks that an updated ledger ends with exactly the
-- objects of a fresh install.
