"""Tests of the payments example against a running PostgreSQL with es_ledger
installed (CI: .ci/test's scratch cluster).

    PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres python3 test_payments.py

Connects over TCP (host ES_EXAMPLE_HOST, default 127.0.0.1; port PGPORT) as
PGUSER (a superuser, for the setup and the kills), creates the database
payments_example (dropped first), the extension in schema ledger, and two
roles with only what they need: payments_app (es_ledger_writer) and
payments_follower (es_ledger_reader).  Exits non-zero on a failure and prints
"examples: N tests passed" (or "examples: N of M tests failed").
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import payments         # noqa: E402
from follower import Follower           # noqa: E402

HOST = os.environ.get('ES_EXAMPLE_HOST', '127.0.0.1')
PORT = int(os.environ.get('PGPORT', '5432'))
SUPER = os.environ.get('PGUSER', 'postgres')
DB = 'payments_example'


def dsn(user, port=PORT, db=DB):
    return 'host=%s port=%d user=%s dbname=%s sslmode=disable connect_timeout=5' % (HOST, port, user, db)


def admin(db=DB):
    conn = psycopg2.connect(dsn(SUPER, db=db), application_name='payments-test-admin')
    conn.autocommit = True
    return conn


def q(conn, sql, params=()):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None


def setUpModule():
    conn = admin('postgres')
    q(conn, 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
    q(conn, 'CREATE DATABASE %s' % DB)
    for role, grant in (('payments_app', 'es_ledger_writer'), ('payments_follower', 'es_ledger_reader')):
        if not q(conn, 'SELECT 1 FROM pg_roles WHERE rolname = %s', (role,)):
            q(conn, 'CREATE ROLE %s LOGIN' % role)
    conn.close()
    conn = admin()
    q(conn, 'CREATE SCHEMA ledger')
    q(conn, 'CREATE EXTENSION es_ledger SCHEMA ledger')
    q(conn, 'GRANT es_ledger_writer TO payments_app')
    q(conn, 'GRANT es_ledger_reader TO payments_follower')
    for role in ('payments_app', 'payments_follower'):
        q(conn, 'ALTER ROLE %s IN DATABASE %s SET search_path = ledger' % (role, DB))
    conn.close()


class Proxy:
    """A TCP proxy between the client and PostgreSQL that, once armed with a
    pattern, withholds every reply after the client sends a message holding
    it: the client waits for an answer that never comes while the server goes
    on (e.g. commits); when the server's side closes (pg_terminate_backend),
    the client's connection is closed without the withheld reply."""

    def __init__(self, port):
        self.target = (HOST, port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.pattern = None
        self.holding = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, pattern):
        self.holding.clear()
        self.pattern = pattern

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            state = {'hold': False}
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state), daemon=True).start()

    def _up(self, client, server, state):
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if self.pattern is not None and self.pattern in data:
                    self.pattern = None         # one shot
                    state['hold'] = True
                    self.holding.set()
                server.sendall(data)
        except OSError:
            pass
        finally:
            _close(server)

    def _down(self, server, client, state):
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                if not state['hold']:
                    client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)

    def close(self):
        _close(self.listener)


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def wait_for(what, predicate, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError('timed out waiting for ' + what)


class RetryPaysOnce(unittest.TestCase):
    """Test 1: the connection of a payment is killed (pg_terminate_backend)
    while the statement waits for a lock, after the statement ran but before
    COMMIT, and after COMMIT but before the client read the reply; each time
    the client's retry (same id) pays exactly once."""

    @classmethod
    def setUpClass(cls):
        cls.admin = admin()
        setup = payments.Ledger(dsn('payments_app'), application_name='payments-test-setup')
        for name in ('ann', 'bo'):
            setup.open_wallet(name, 'EUR')
        setup.top_up('ann', 100000, metadata={'card': 'visa-4242'})
        setup.close()
        cls.proxy = Proxy(PORT)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.admin.close()

    def balances(self):
        return dict(q(self.admin, "SELECT account, balance FROM ledger.es_accounts WHERE account IN ('ann', 'bo')"))

    def backend(self, app, state=None, wait_event_type=None):
        rows = q(self.admin, 'SELECT pid, state, wait_event_type FROM pg_stat_activity WHERE application_name = %s',
                 (app,))
        for pid, st, wet in rows:
            if (state is None or st == state) and (wait_event_type is None or wet == wait_event_type):
                return pid
        return None

    def pay_in_thread(self, ledger, amount, pay_id):
        result = {}

        def run():
            try:
                result['row'] = ledger.pay('ann', 'bo', amount, order='A-%s' % pay_id, id=pay_id)
            except BaseException as e:      # reported by check_paid_once
                result['error'] = e
        t = threading.Thread(target=run)
        t.start()
        return t, result

    def check_paid_once(self, before, amount, pay_id, t, result, ledger, killed_pid):
        t.join(30)
        self.assertFalse(t.is_alive(), 'the payment did not return')
        self.assertNotIn('error', result, 'the payment failed: %r' % result.get('error'))
        row = result['row']
        self.assertEqual(row['transfer_id'], pay_id)
        self.assertEqual(row['amount'], amount)
        self.assertEqual(row['status'], 'posted')
        self.assertGreaterEqual(ledger.attempts, 2, 'the kill was not seen by the client')
        self.assertGreaterEqual(ledger.reconnects, 1)
        self.assertNotEqual(ledger.conn.get_backend_pid(), killed_pid)
        after = self.balances()
        self.assertEqual(after['ann'], before['ann'] - amount)
        self.assertEqual(after['bo'], before['bo'] + amount)
        events = q(self.admin, 'SELECT type, amount FROM ledger.es_events WHERE command_id = %s ORDER BY seq',
                   (pay_id,))
        self.assertEqual(events, [('TransferSent', -amount), ('TransferReceived', amount)])
        self.assertEqual(q(self.admin, 'SELECT count(*) FROM ledger.es_commands WHERE command_id = %s',
                           (pay_id,))[0][0], 1)
        self.assertEqual(q(self.admin, 'SELECT count(*) FROM ledger.es_transfers WHERE transfer_id = %s',
                           (pay_id,))[0][0], 1)
        # the retry answered with the seq of the first (and only) application
        seq = q(self.admin, 'SELECT seq FROM ledger.es_commands WHERE command_id = %s', (pay_id,))[0][0]
        self.assertEqual(q(self.admin, 'SELECT seq FROM ledger.es_transfer_of(%s)', (seq,))[0][0], row['seq'])

    def test_kill_while_waiting_for_a_lock(self):
        before = self.balances()
        pay_id = payments.new_id('pay')
        # another transaction holds ann's row lock: the payment waits in es_transfer
        blocker = psycopg2.connect(dsn(SUPER))
        q(blocker, "SELECT ledger.es_deposit('ann', 1)")
        ledger = payments.Ledger(dsn('payments_app'), application_name='payer-lock')
        t, result = self.pay_in_thread(ledger, 1234, pay_id)
        pid = wait_for('the payer to wait for the lock', lambda: self.backend('payer-lock', wait_event_type='Lock'))
        self.assertTrue(q(self.admin, 'SELECT pg_terminate_backend(%s)', (pid,))[0][0])
        wait_for('the payer to reconnect', lambda: self.backend('payer-lock') not in (None, pid))
        blocker.rollback()
        blocker.close()
        self.check_paid_once(before, 1234, pay_id, t, result, ledger, pid)
        ledger.close()

    def test_kill_before_commit(self):
        before = self.balances()
        pay_id = payments.new_id('pay')
        ledger = payments.Ledger(dsn('payments_app', port=self.proxy.port), application_name='payer-precommit')
        ledger.wallet('ann')        # connected through the proxy
        self.proxy.arm(b'es_transfer(')
        t, result = self.pay_in_thread(ledger, 2500, pay_id)
        # es_transfer ran, its reply is withheld: the transaction is open, not committed
        pid = wait_for('the payment to run', lambda: self.proxy.holding.is_set()
                       and self.backend('payer-precommit', state='idle in transaction'))
        self.assertEqual(q(self.admin, 'SELECT count(*) FROM ledger.es_commands WHERE command_id = %s',
                           (pay_id,))[0][0], 0)
        self.assertTrue(q(self.admin, 'SELECT pg_terminate_backend(%s)', (pid,))[0][0])
        self.check_paid_once(before, 2500, pay_id, t, result, ledger, pid)
        ledger.close()

    def test_kill_after_commit_before_reply(self):
        before = self.balances()
        pay_id = payments.new_id('pay')
        ledger = payments.Ledger(dsn('payments_app', port=self.proxy.port), application_name='payer-postcommit')
        ledger.wallet('ann')
        self.proxy.arm(b'COMMIT')
        t, result = self.pay_in_thread(ledger, 4000, pay_id)
        # COMMIT was sent and done, but its reply is withheld from the client
        wait_for('the payment to commit', lambda: self.proxy.holding.is_set() and q(
            self.admin, 'SELECT count(*) FROM ledger.es_commands WHERE command_id = %s', (pay_id,))[0][0] == 1)
        self.assertEqual(self.balances()['bo'], before['bo'] + 4000)
        pid = wait_for('the payer backend', lambda: self.backend('payer-postcommit'))
        self.assertTrue(q(self.admin, 'SELECT pg_terminate_backend(%s)', (pid,))[0][0])
        self.check_paid_once(before, 4000, pay_id, t, result, ledger, pid)
        ledger.close()


class FollowerResumes(unittest.TestCase):
    """Test 2: a follower process is killed (SIGKILL) while commands flow,
    more commands are applied while it is down, it is restarted, and its read
    model equals es_accounts; no event was applied twice or skipped."""

    def test_stop_apply_restart(self):
        tmp = tempfile.mkdtemp(prefix='payments-follower-')
        path = os.path.join(tmp, 'wallets.sqlite')
        app = payments.Ledger(dsn('payments_app'), application_name='payments-test-load')
        names = ['f-%02d' % i for i in range(12)]
        for n in names:
            app.open_wallet(n, 'EUR')
            app.top_up(n, 50000)

        def start():
            return subprocess.Popen([sys.executable, os.path.join(HERE, 'follower.py'),
                                     '--dsn', dsn('payments_follower'), '--db', path, '--batch', '7'])

        def load(k, n):
            for i in range(n):
                a, b = names[(k + i) % 12], names[(k + 3 * i + 1) % 12]
                if a == b:
                    continue
                app.pay(a, b, 1 + (k + i) % 97)
                if i % 10 == 0:
                    h = app.hold(a, b, 300)
                    if i % 20 == 0:
                        app.capture(h['transfer_id'], 100)
                    else:
                        app.release(h['transfer_id'])

        proc = start()
        try:
            stream = threading.Thread(target=load, args=(0, 80))
            stream.start()
            # kill it (a crash) once it has applied something, while commands flow
            wait_for('the follower to apply events', lambda: _applied(path))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            stream.join()
            load(5, 60)                             # while it is down
            self.assertLess(_applied(path), q_count_events())
            hold = app.hold(names[0], names[1], 777)        # one left pending
            proc = start()
            load(9, 20)
            ledger_rows = admin()
            expected = {r[0]: tuple(r[1:]) for r in q(
                ledger_rows, 'SELECT account, currency, status, balance, pending_out, pending_in, version '
                'FROM ledger.es_accounts')}
            total = q(ledger_rows, 'SELECT count(*) FROM ledger.es_events')[0][0]
            ledger_rows.close()
            model = Follower(dsn('payments_follower'), path)
            wait_for('the read model to equal es_accounts', lambda: model.wallets() == expected)
            events = model.db.execute('SELECT events FROM follower_state').fetchone()[0]
            self.assertEqual(events, total, 'events applied by the follower against events in the log')
            self.assertEqual(expected[names[0]][3], 777)        # pending_out: the hold left open
            self.assertEqual(hold['status'], 'pending')
            self.assertEqual(proc.poll(), None, 'the follower exited')
        finally:
            proc.terminate()
            proc.wait(10)
            app.close()
            shutil.rmtree(tmp, ignore_errors=True)


def _applied(path):
    """Events the follower has committed to its read model (0 before it made
    its file)."""
    try:
        import sqlite3
        db = sqlite3.connect(path, timeout=5)
        try:
            return db.execute('SELECT events FROM follower_state').fetchone()[0]
        finally:
            db.close()
    except Exception:
        return 0


def q_count_events():
    conn = admin()
    try:
        return q(conn, 'SELECT count(*) FROM ledger.es_events')[0][0]
    finally:
        conn.close()


class ServiceTour(unittest.TestCase):
    """The HTTP service, as its users call it: wallets, a top-up back-dated to
    yesterday, a payment replayed with its Idempotency-Key, a hold then its
    capture, a statement, the balance as of yesterday, and refusals mapped to
    their status and outcome."""

    @classmethod
    def setUpClass(cls):
        import service
        cls.server = service.serve(dsn('payments_app'), port=0)
        cls.base = 'http://127.0.0.1:%d' % cls.server.server_address[1]
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def call(self, method, path, body=None, key=None):
        import json
        import urllib.error
        import urllib.request
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        if key:
            req.add_header('Idempotency-Key', key)
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def test_tour(self):
        self.assertEqual(self.call('POST', '/wallets', {'name': 'carla', 'currency': 'EUR'})[0], 201)
        status, shop = self.call('POST', '/wallets', {'name': 'shop', 'currency': 'EUR'}, key='open-shop')
        self.assertEqual((status, shop['account'], shop['balance']), (201, 'shop', 0))
        # the same key again: the same wallet, nothing written (ES004 without a key)
        self.assertEqual(self.call('POST', '/wallets', {'name': 'shop', 'currency': 'EUR'}, key='open-shop'),
                         (201, shop))
        status, err = self.call('POST', '/wallets', {'name': 'shop', 'currency': 'EUR'})
        self.assertEqual((status, err['error'], err['sqlstate']), (409, 'wallet_exists', 'ES004'))
        conn = admin()
        yesterday = q(conn, "SELECT (now() - interval '1 day')::text")[0][0]
        conn.close()
        self.assertEqual(self.call('POST', '/wallets/carla/top-ups',
                                   {'amount': 10000, 'effective_at': yesterday})[0], 201)
        status, paid = self.call('POST', '/payments', {'from': 'carla', 'to': 'shop', 'amount': 1250,
                                                       'order': 'A-1001'}, key='order-A-1001')
        self.assertEqual((status, paid['transfer_id'], paid['status']), (201, 'order-A-1001', 'posted'))
        # the client lost the reply and sends the request again: the same answer, paid once
        self.assertEqual(self.call('POST', '/payments', {'from': 'carla', 'to': 'shop', 'amount': 1250,
                                                         'order': 'A-1001'}, key='order-A-1001'), (201, paid))
        # the same key for another request: refused
        status, err = self.call('POST', '/payments', {'from': 'carla', 'to': 'shop', 'amount': 99},
                                key='order-A-1001')
        self.assertEqual((status, err['sqlstate']), (422, 'ES008'))
        status, err = self.call('POST', '/payments', {'from': 'carla', 'to': 'shop', 'amount': 10 ** 6})
        self.assertEqual((status, err['error'], err['sqlstate']), (402, 'insufficient_funds', 'ES001'))
        self.assertTrue(err['command_id'].startswith('pay-'))
        status, held = self.call('POST', '/holds', {'from': 'carla', 'to': 'shop', 'amount': 5000})
        self.assertEqual((status, held['status']), (201, 'pending'))
        self.assertEqual(self.call('GET', '/wallets/carla')[1]['available'], 10000 - 1250 - 5000)
        status, captured = self.call('POST', '/holds/%s/capture' % held['transfer_id'], {'amount': 4200})
        self.assertEqual((status, captured['status'], captured['posted_amount']), (200, 'posted', 4200))
        status, err = self.call('POST', '/holds/%s/release' % held['transfer_id'], {})
        self.assertEqual((status, err['error'], err['sqlstate']), (409, 'hold_not_pending', 'ES010'))
        self.assertEqual(self.call('GET', '/wallets/carla')[1]['balance'], 10000 - 1250 - 4200)
        status, lines = self.call('GET', '/wallets/carla/statement?limit=10')
        self.assertEqual([(r['type'], r['amount'], r['balance_after']) for r in lines],
                         [('AccountOpened', 0, 0), ('Deposited', 10000, 10000), ('TransferSent', -1250, 8750),
                          ('TransferReserved', 0, 8750), ('TransferPosted', -4200, 4550)])
        self.assertEqual(lines[2]['metadata'], {'order': 'A-1001'})
        status, page2 = self.call('GET', '/wallets/carla/statement?after_version=3&limit=10')
        self.assertEqual([r['version'] for r in page2], [4, 5])
        # as of yesterday: the ledger knew nothing yet, but the back-dated top-up
        # had happened
        status, then = self.call('GET', '/wallets/carla/balance?at=%s' % urllib_quote(yesterday))
        self.assertEqual((status, then), (200, {'known_then': None, 'effective_then': 10000}))
        status, err = self.call('GET', '/wallets/nobody')
        self.assertEqual((status, err['error']), (404, 'wallet_not_found'))
        status, err = self.call('POST', '/payments', {'from': 'carla', 'to': 'carla', 'amount': 1})
        self.assertEqual((status, err['sqlstate']), (400, 'ES009'))


def urllib_quote(s):
    from urllib.parse import quote
    return quote(s)


class OutcomeTable(unittest.TestCase):
    """The README's table maps every SQLSTATE of the error table of
    doc/reference.md (section 11) and the client's code does the same."""

    def test_every_sqlstate_mapped(self):
        root = os.path.dirname(os.path.dirname(HERE))
        with open(os.path.join(root, 'doc', 'reference.md')) as f:
            ref = f.read()
        section = ref[ref.index('## 11. Errors'):ref.index('## 12.')]
        documented = set(re.findall(r'^\| `([0-9A-Z]{5})`', section, re.M))
        self.assertIn('ES001', documented)
        with open(os.path.join(HERE, 'README.md')) as f:
            readme = f.read()
        table = set(re.findall(r'^\| `([0-9A-Z]{5})`', readme, re.M))
        for code in sorted(documented | set(payments.OUTCOMES) | {'40001', '40P01'}):
            self.assertIn(code, table, 'SQLSTATE %s missing from README.md' % code)
        for code in sorted(table):
            self.assertIn(code, payments.OUTCOMES, 'SQLSTATE %s of README.md unknown to payments.py' % code)
            outcome, status, _ = payments.OUTCOMES[code]
            self.assertIn('`%s` | `%s` | %d' % (code, outcome, status), readme)


if __name__ == '__main__':
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    if failed or not result.wasSuccessful():
        print('examples: %d of %d tests failed' % (failed, result.testsRun))
        sys.exit(1)
    print('examples: %d tests passed' % result.testsRun)
