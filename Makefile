# es_ledger: PGXS build.  `make && make install`, then see README.md.
EXTENSION = es_ledger
MODULE_big = es_ledger
OBJS = \
	src/model/es_event.o \
	src/model/es_fold.o \
	src/model/es_decide.o \
	src/model/es_name.o \
	src/store/es_row.o \
	src/store/es_catalog.o \
	src/store/es_guard.o \
	src/store/es_cache.o \
	src/store/es_scan.o \
	src/store/es_write.o \
	src/store/es_transfer_write.o \
	src/store/es_notify.o \
	src/store/es_heal.o \
	src/store/es_snap.o \
	src/store/es_stats.o \
	src/protect/es_hooks.o \
	src/protect/es_ddl.o \
	src/protect/es_restore.o \
	src/protect/es_am.o \
	src/apply/es_command.o \
	src/apply/es_handler.o \
	src/apply/es_apply.o \
	src/apply/es_shorthand.o \
	src/apply/es_expire.o \
	src/apply/es_each.o \
	src/apply/es_reverse.o \
	src/apply/es_dba.o \
	src/query/es_replay.o \
	src/query/es_history.o \
	src/query/es_read.o \
	src/query/es_verify.o \
	src/query/es_digest.o \
	src/query/es_tally.o \
	src/projection/es_projection_registry.o \
	src/projection/es_projection_step.o \
	src/projection/es_projection.o \
	src/projection/es_worker.o \
	src/es_module.o

DATA = $(wildcard sql/es_ledger--*.sql)

# pg_regress suite: one file per concern, run in this order in one database.
REGRESS = setup commands errors idempotency batches shorthands limits cancel shape \
	projections projection_attacks input_limits immutability guard superuser_guard roles malformed history reverse pending dba verify verify_index apply_each read stats snapshots first_app schema comments upgrade lookalikes planted_types

# Warnings on; CI adds -Werror (`make COPT=-Werror`, .ci/lib.sh), so that a
# newer compiler's new warning does not break a user's build.
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-sign-compare -Wno-cast-function-type
# `make installcheck ES_ALL=1` runs the Perl TAP suite (test/t/, clusters of
# its own, as pgvector's prove_installcheck) and the pgTAP suite (test/pgtap/,
# in a database es_tap of the running server; needs pgtap) after pg_regress.
ifdef ES_ALL
TAP_TESTS = 1
PROVE_TESTS ?= test/t/*.pl
endif

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

ifdef ES_ALL
installcheck: installcheck-pgtap
endif
.PHONY: installcheck-pgtap
installcheck-pgtap:
	$(bindir)/psql -X -q -d postgres -c 'DROP DATABASE IF EXISTS es_tap' -c 'CREATE DATABASE es_tap'
	$(bindir)/psql -X -q -d es_tap -c 'CREATE EXTENSION pgtap'
	pg_prove -d es_tap test/pgtap/*.sql

# Every object depends on the shared header (PGXS tracks no header deps).
# After the include, so that `all` stays the default target.
$(OBJS): $(wildcard src/*/*.h)

# The layer rule: no #include and no call between files runs up the folders
# of src/ (model < store < protect < apply < query < projection < src/).
# Reads the built objects; LAYERS_MATRIX=1 also prints calls by folder.
.PHONY: check-layers
check-layers: all
	perl tools/check_layers.pl

# PostgreSQL's code layout, as its pgindent makes it: `make indent` rewrites
# src/*.c and src/*.h (needs pg_bsd_indent: apt-get install pg-bsd-indent).
# `make typedefs` refreshes our type names in tools/typedefs.list; run it
# after adding a typedef, before `make indent`.
.PHONY: indent typedefs
indent:
	tools/indent.sh $(sort $(wildcard src/*.c src/*/*.c src/*/*.h))
typedefs:
	tools/indent.sh --typedefs

# The suites with the extension built under AddressSanitizer and
# UndefinedBehaviorSanitizer (as root, like .ci/test; see tools/sanitize.sh).
.PHONY: sanitize
sanitize:
	ES_PGBIN=$(shell $(PG_CONFIG) --bindir) bash tools/sanitize.sh

# PGXN: `make dist` writes es_ledger-<version>.zip (the committed tree at
# HEAD, under es_ledger-<version>/) after checking META.json against the
# control file (tools/check_meta.py, also run by .ci/test).
DIST_VERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" es_ledger.control)
.PHONY: dist
dist:
	python3 tools/check_meta.py
	git archive --format zip --prefix=es_ledger-$(DIST_VERSION)/ -o es_ledger-$(DIST_VERSION).zip HEAD
	@echo "es_ledger-$(DIST_VERSION).zip"
