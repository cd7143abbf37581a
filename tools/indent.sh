#!/bin/sh
# tools/indent.sh: format C sources in PostgreSQL's style, the way
# PostgreSQL 15's src/tools/pgindent/pgindent does it.
#
#   tools/indent.sh FILE...          indent FILEs in place
#   tools/indent.sh --diff FILE...   print what would change, touch nothing;
#                                    exit 2 if anything would change
#   tools/indent.sh --typedefs       refresh es_ledger's names at the end of
#                                    tools/typedefs.list from src/*.c, src/*/*.[ch]
#
# `make indent` and `make typedefs` call this.  Needs pg_bsd_indent 2.1.1,
# the version PostgreSQL 15 uses: apt-get install pg-bsd-indent (Debian 12).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
TYPEDEFS=${TYPEDEFS:-$here/typedefs.list}
PG_BSD_INDENT=${PG_BSD_INDENT:-pg_bsd_indent}

# pgindent's options, unchanged (PostgreSQL 15).
OPTS="-bad -bap -bbb -bc -bl -cli1 -cp33 -cdb -nce -d0 -di12 -nfc1 -i4 -l79 -lp -lpl -nip -npro -sac -tpg -ts4"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Print the name of every typedef in the given C files: the name in "(*Name)"
# of a function-pointer typedef, the last word before the ';' of any other
# one-line typedef, or the word after the closing "}" (in column 0) of a
# typedef'd struct, union or enum.
typedef_names() {
	awk '
	/^[ \t]*typedef[ \t]/ {
		if (match($0, /\([ \t]*\*[ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*\)/)) {
			s = substr($0, RSTART, RLENGTH)
			gsub(/[^A-Za-z0-9_]/, "", s)
			print s
		} else if (index($0, ";")) {
			s = $0
			sub(/[ \t]*(\[[^]]*\][ \t]*)*;.*$/, "", s)
			n = split(s, w, /[^A-Za-z0-9_]+/)
			print w[n]
		} else
			block = 1
		next
	}
	block && /^}[ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*;/ {
		s = $0
		sub(/^}[ \t]*/, "", s)
		sub(/[^A-Za-z0-9_].*$/, "", s)
		print s
		block = 0
	}' "$@"
}

if [ "${1:-}" = "--typedefs" ]; then
	# The list is PostgreSQL 15's typedefs.list, none of whose names starts
	# with "Es" and a capital, followed by ours.  Keep the former and redo
	# the latter.  (A type of ours named otherwise is added as well, but
	# would stay in the list once removed from the code: harmless.)
	grep -v '^Es[A-Z]' "$TYPEDEFS" >"$work/pg"
	typedef_names "$root"/src/*.c "$root"/src/*/*.c "$root"/src/*/*.h | LC_ALL=C sort -u |
		grep -vxF -f "$work/pg" >"$work/ours" || true
	cat "$work/pg" "$work/ours" >"$work/new"
	if cmp -s "$work/new" "$TYPEDEFS"; then
		echo "$TYPEDEFS is up to date"
	else
		cat "$work/new" >"$TYPEDEFS"
		echo "updated $TYPEDEFS ($(wc -l <"$work/ours") es_ledger names)"
	fi
	exit 0
fi

mode=write
if [ "${1:-}" = "--diff" ]; then
	mode=diff
	shift
fi
[ $# -gt 0 ] || { echo "usage: $0 [--diff] FILE... | --typedefs" >&2; exit 1; }

case $("$PG_BSD_INDENT" --version 2>/dev/null) in
*" 2.1.1 "*) ;;
*)
	echo "$0: needs pg_bsd_indent 2.1.1 (apt-get install pg-bsd-indent)" >&2
	exit 1
	;;
esac

# As pgindent does: treat "bool" as a typedef, and not a few names that
# PostgreSQL's list holds but that are common words in code.
{
	cat "$TYPEDEFS"
	echo bool
} | grep -vxE 'ANY|FD_SET|U|abs|allocfunc|boolean|date|digit|ilist|interval|iterator|other|pointer|printfunc|reference|string|timestamp|type|wrap' \
	>"$work/typedefs"

# Before indenting: turn whole-line // comments into /* */ ones, and make
# comments that begin "/* ---" (rulers and hand-laid-out blocks) start with
# "/*-", which pg_bsd_indent leaves as they are.
pre() {
	perl -pe 's{^([ \t]*)//(.*)$}{$1/* $2 */}; s{/\* +---}{/*---X_X}g'
}

# After indenting: undo the "/*-" marking, put a tab between two comments
# run together at the end of a line, and use a single space before the "*"
# of a pointer return type that stands on its own line ("char *").
post() {
	perl -pe 's{/\*---X_X}{/* ---}g; s{\*/(/\*.*\*/)$}{*/\t$1}; s{^([A-Za-z_]\S*)[ \t]+\*$}{$1 *}'
}

changed=0
failed=0
for f in "$@"; do
	pre <"$f" >"$work/in"
	# pg_bsd_indent reports problems on stderr; pgindent then keeps the file.
	if ! "$PG_BSD_INDENT" $OPTS -U"$work/typedefs" "$work/in" "$work/out" 2>"$work/err" ||
		[ -s "$work/err" ]; then
		echo "$f: pg_bsd_indent failed:" >&2
		cat "$work/err" >&2
		failed=1
		continue
	fi
	post <"$work/out" >"$work/new"
	cmp -s "$f" "$work/new" && continue
	changed=1
	if [ $mode = diff ]; then
		diff -u "$f" "$work/new" | sed "2s|^+++ .*|+++ $f|" || true
	else
		cat "$work/new" >"$f"
		echo "indented $f"
	fi
done
[ $failed = 0 ] || exit 3
[ $mode = diff ] && [ $changed = 1 ] && exit 2
exit 0
