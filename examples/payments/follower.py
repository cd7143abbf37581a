"""follower: a local read model of the wallets, kept by following the log.

Reads the ledger's events with es_read(cursor, n) and folds them into a
SQLite file (standard library): a row per wallet with its balance, holds,
status and version.  The es_read cursor of the last event applied is stored
in the SAME SQLite transaction as the rows it produced, so a follower killed
at any point resumes after a restart exactly where its last commit left it:
no event is applied twice or skipped (es_read's promise, checked here: each
wallet's versions must arrive as 1, 2, 3, ...).

It waits on LISTEN es_events, with a poll every second as a fallback (a
notification is a hint that may be skipped).  A cursor refused with 55000
(the ledger was restored from a dump) rebuilds the read model from the start.

Needs only es_ledger_reader.

    python3 follower.py --dsn "host=... dbname=... user=..." --db wallets.sqlite
"""

import argparse
import select
import signal
import sqlite3
import sys
import time

import psycopg2
import psycopg2.extras

SCHEMA = """
CREATE TABLE IF NOT EXISTS wallets (
    account_id  INTEGER PRIMARY KEY,
    account     TEXT NOT NULL UNIQUE,
    currency    TEXT NOT NULL,
    status      TEXT NOT NULL,
    balance     INTEGER NOT NULL,
    pending_out INTEGER NOT NULL,
    pending_in  INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS follower_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    cursor      TEXT,
    events      INTEGER NOT NULL
);
INSERT OR IGNORE INTO follower_state VALUES (1, NULL, 0);
"""

STATUS = {'AccountFrozen': 'frozen', 'AccountUnfrozen': 'open', 'AccountClosed': 'closed'}
RELEASES = ('TransferPosted', 'TransferVoided', 'TransferExpired')


class ReadModelError(Exception):
    """An event that does not follow the wallet's last one (never expected)."""


class Follower:
    def __init__(self, dsn, path, batch=500, application_name='payments-follower'):
        self.dsn = dsn
        self.batch = batch
        self.application_name = application_name
        self.db = sqlite3.connect(path, isolation_level=None)   # transactions by hand
        self.db.executescript(SCHEMA)
        self.conn = None

    # -- the ledger connection ----------------------------------------------

    def _connection(self):
        if self.conn is None or self.conn.closed:
            self.conn = psycopg2.connect(self.dsn, application_name=self.application_name)
            self.conn.autocommit = True     # READ COMMITTED, a transaction per es_read
            with self.conn.cursor() as cur:
                cur.execute('LISTEN es_events')
        return self.conn

    def cursor(self):
        return self.db.execute('SELECT cursor FROM follower_state').fetchone()[0]

    # -- folding ------------------------------------------------------------

    def _apply(self, e):
        """Folds one event (a dict of es_read's columns) into wallets."""
        data = e['data']
        if e['type'] == 'AccountOpened':
            if e['version'] != 1:
                raise ReadModelError('AccountOpened at version %d' % e['version'])
            self.db.execute('INSERT INTO wallets VALUES (?, ?, ?, ?, ?, 0, 0, 1, ?)',
                            (e['account_id'], data['account'], data['currency'], 'open',
                             e['amount'], e['seq']))
            return
        row = self.db.execute('SELECT version FROM wallets WHERE account_id = ?', (e['account_id'],)).fetchone()
        if row is None or row[0] + 1 != e['version']:
            raise ReadModelError('event seq %d: version %d of account %d after %s'
                                 % (e['seq'], e['version'], e['account_id'], row and row[0]))
        out = 'to' in data          # a two-phase event's side: to = the debit side
        d_out = d_in = 0
        if e['type'] == 'TransferReserved':
            d_out, d_in = (data['reserved'], 0) if out else (0, data['reserved'])
        elif e['type'] in RELEASES:
            d_out, d_in = (-data['released'], 0) if out else (0, -data['released'])
        self.db.execute('UPDATE wallets SET balance = balance + ?, pending_out = pending_out + ?, '
                        'pending_in = pending_in + ?, status = coalesce(?, status), version = ?, last_seq = ? '
                        'WHERE account_id = ?',
                        (e['amount'], d_out, d_in, STATUS.get(e['type']), e['version'], e['seq'],
                         e['account_id']))

    def step(self):
        """Reads and applies the next batch; returns how many events."""
        with self._connection().cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute('SELECT cursor, seq, account_id, version, type, amount, data FROM es_read(%s, %s)',
                        (self.cursor(), self.batch))
            events = cur.fetchall()
        if not events:
            return 0
        self.db.execute('BEGIN IMMEDIATE')
        try:
            for e in events:
                self._apply(e)
            self.db.execute('UPDATE follower_state SET cursor = ?, events = events + ?',
                            (events[-1]['cursor'], len(events)))
            self.db.execute('COMMIT')
        except BaseException:
            self.db.execute('ROLLBACK')
            raise
        return len(events)

    def catch_up(self):
        """Applies events until es_read returns fewer than a batch; returns
        how many."""
        total = 0
        while True:
            n = self.step()
            total += n
            if n < self.batch:
                return total

    def reset(self):
        """Forgets everything: the next step reads from the first event."""
        self.db.execute('BEGIN IMMEDIATE')
        self.db.execute('DELETE FROM wallets')
        self.db.execute('UPDATE follower_state SET cursor = NULL, events = 0')
        self.db.execute('COMMIT')

    def run(self, stop=lambda: False, poll=1.0):
        """Follows the log until stop() is true: catch up, then wait for a
        notification (or poll seconds). Reconnects after a lost connection."""
        while not stop():
            try:
                self.catch_up()
                conn = self._connection()
                if select.select([conn], [], [], poll)[0]:
                    conn.poll()
                    conn.notifies.clear()
            except psycopg2.Error as err:
                if err.pgcode == '55000' and 'cursor' in str(err):
                    self.reset()        # restored from a dump: rebuild
                    continue
                if self.conn is None or self.conn.closed or err.pgcode is None or err.pgcode.startswith('08'):
                    self.conn = None
                    time.sleep(poll)
                    continue
                raise

    def wallets(self):
        """The read model: {name: (currency, status, balance, pending_out,
        pending_in, version)}."""
        return {r[0]: tuple(r[1:]) for r in self.db.execute(
            'SELECT account, currency, status, balance, pending_out, pending_in, version FROM wallets')}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dsn', required=True)
    ap.add_argument('--db', required=True, help='the SQLite file of the read model')
    ap.add_argument('--once', action='store_true', help='catch up and exit')
    ap.add_argument('--batch', type=int, default=500)
    args = ap.parse_args(argv)
    f = Follower(args.dsn, args.db, args.batch)
    if args.once:
        print('applied %d events' % f.catch_up())
        return 0
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    f.run(stop=lambda: bool(stopping))
    return 0


if __name__ == '__main__':
    sys.exit(main())
