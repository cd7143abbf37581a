"""payments: a small payment API on an es_ledger database (psycopg2).

Wallets are es_ledger accounts.  Every money movement is one es_ledger command
whose idempotency id is generated here, on the client, BEFORE the first
attempt; every retry (after a dropped connection, a serialization failure
40001 or a deadlock 40P01) sends the same command with the same id, so the
ledger applies it exactly once: a retry of a command that did commit returns
the seq of the first time and writes nothing.

Each call runs in a transaction of its own (READ COMMITTED) and commits
before it returns.  Errors are mapped to application outcomes (OUTCOMES, the
table of README.md); the caller gets a PaymentError carrying the outcome, an
HTTP status, the SQLSTATE and the command id (to retry later with the same id).

Needs only es_ledger_writer (money movements, wallets without credit); the
role's search_path must find the ledger's schema (README: ALTER ROLE ... SET
search_path = ledger, public).
"""

import json
import random
import time
import uuid

import psycopg2
import psycopg2.extras

# SQLSTATE -> (outcome, HTTP status, what the application does).
# Every SQLSTATE es_ledger documents (doc/reference.md, section 11 "Errors"),
# plus the transient ones this client retries by itself.
OUTCOMES = {
    'ES001': ('insufficient_funds', 402, 'decline the payment; the payer must top up first'),
    'ES002': ('wallet_limit_exceeded', 409, 'decline: the payee wallet would pass its cap'),
    'ES003': ('wallet_not_found', 404, 'unknown wallet name'),
    'ES004': ('wallet_exists', 409, 'the name is taken (by another command id)'),
    'ES005': ('wallet_not_open', 423, 'the wallet is frozen or closed; refer to support'),
    'ES006': ('currency_mismatch', 422, 'the two wallets hold different currencies'),
    'ES007': ('version_conflict', 409, 'the wallet changed since it was read: re-read, decide again, new id'),
    'ES008': ('idempotency_conflict', 422, 'the id was already used for another request: a client bug, never retry'),
    'ES009': ('invalid_request', 400, 'bad input (amount, name, field); fix the request'),
    'ES010': ('hold_not_pending', 409, 'the hold is unknown, or already captured, released or expired'),
    'ES011': ('internal_error', 500, 'a direct write of the ledger tables was refused: a bug, alert'),
    'ES012': ('ledger_integrity_error', 500, 'the log is damaged: stop writing, page the operator (es_verify)'),
    'ES013': ('hold_expired', 410, 'the hold timed out; authorise again'),
    'ES014': ('wallet_not_empty', 409, 'close refused: balance or holds remain'),
    '22003': ('amount_out_of_range', 422, 'an amount or a resulting balance leaves the bigint range'),
    '22023': ('invalid_parameter', 400, 'a bad paging value or es_read cursor'),
    '42501': ('forbidden', 403, 'the service role lacks the grant (e.g. a wallet with credit needs es_ledger_admin)'),
    '55000': ('ledger_unavailable', 503, 'extension missing or not updated; for a follower: cursor from before a restore, rebuild'),
    '57014': ('timeout', 504, 'statement_timeout or cancel; nothing written: retry later with the same id'),
    '25000': ('internal_error', 500, 'not raised by the calls of this service (user projections): a bug'),
    '22004': ('internal_error', 500, 'not raised by the calls of this service (user projections): a bug'),
    '42704': ('internal_error', 500, 'not raised by the calls of this service (user projections): a bug'),
    '42710': ('internal_error', 500, 'not raised by the calls of this service (user projections): a bug'),
    '42P13': ('internal_error', 500, 'not raised by the calls of this service (user projections): a bug'),
    '25006': ('read_only', 503, 'connected to a standby; reconnected and retried with the same id'),
    '40001': ('retried', 503, 'serialization failure: retried with the same id (503 once the attempts run out)'),
    '40P01': ('retried', 503, 'deadlock: retried with the same id (503 once the attempts run out)'),
    '08000': ('retried', 503, 'connection lost (class 08, 57P01-57P03, no reply): reconnected and retried with the same id'),
}

# Retried here, in a new transaction, with the same command id.
RETRY_SQLSTATES = {'40001', '40P01'}
# Retried on a new connection (the old one is unusable or on a standby).
RECONNECT_SQLSTATES = {'57P01', '57P02', '57P03', '25006'}


# What a command returned (its last event's seq) finds its row (es_ledger
# 0.4.0's es_account_of/es_transfer_of also work in the command's own
# statement; a second statement keeps the command's SQL separate).
ACCOUNT_OF = 'SELECT account_id, account, currency, status, balance, available, version FROM es_account_of(%s)'
TRANSFER_OF = ('SELECT transfer_id, seq, from_account, to_account, amount, posted_amount, status, expires_at '
               'FROM es_transfer_of(%s)')


class PaymentError(Exception):
    """A request the ledger refused, or that could not be completed."""

    def __init__(self, outcome, status, message, sqlstate=None, command_id=None, detail=None):
        super().__init__(message)
        self.outcome = outcome
        self.status = status
        self.message = message
        self.sqlstate = sqlstate
        self.command_id = command_id
        self.detail = detail

    def as_dict(self):
        return {'error': self.outcome, 'sqlstate': self.sqlstate, 'message': self.message,
                'detail': self.detail, 'command_id': self.command_id}


def new_id(kind):
    """A client-generated command id: kind and a random UUID."""
    return '%s-%s' % (kind, uuid.uuid4())


def is_connection_loss(err, conn):
    """True if err means the connection is gone (the outcome is unknown)."""
    code = getattr(err, 'pgcode', None)
    if conn is None or conn.closed:
        return True
    if code is None:
        return isinstance(err, (psycopg2.OperationalError, psycopg2.InterfaceError))
    return code.startswith('08') or code in RECONNECT_SQLSTATES


def error_for(err, command_id=None):
    """The PaymentError of a psycopg2 error raised by the ledger."""
    code = err.pgcode
    outcome, status, _ = OUTCOMES.get(code, ('internal_error', 500, None))
    diag = getattr(err, 'diag', None)
    message = (diag.message_primary if diag and diag.message_primary else str(err)).strip()
    detail = diag.message_detail if diag else None
    return PaymentError(outcome, status, message, code, command_id, detail)


class Ledger:
    """The payment API: one connection, reopened when lost; not thread-safe
    (use one Ledger per thread)."""

    def __init__(self, dsn, max_attempts=8, backoff=0.05, application_name='payments'):
        self.dsn = dsn
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.application_name = application_name
        self.conn = None
        self.attempts = 0           # attempts of the last call
        self.reconnects = 0         # connections lost (and opened again), in all

    # -- plumbing --------------------------------------------------------

    def _connection(self):
        if self.conn is None or self.conn.closed:
            self.conn = psycopg2.connect(self.dsn, application_name=self.application_name,
                                         cursor_factory=psycopg2.extras.RealDictCursor)
        return self.conn

    def _drop(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg2.Error:
                pass
        self.conn = None

    def close(self):
        self._drop()

    def _rollback(self):
        """Ends the failed transaction; a connection that cannot is dropped
        (the next attempt opens another)."""
        try:
            self.conn.rollback()
        except psycopg2.Error:
            self._drop()

    def _transaction(self, work, command_id=None):
        """Runs work(cursor) in a transaction of its own and commits; returns
        what work returned.  On a lost connection, 40001 or 40P01 it runs work
        again in a new transaction: work must send the same statements with the
        same parameters, hence the same command id."""
        last = None
        for attempt in range(1, self.max_attempts + 1):
            self.attempts = attempt
            conn = None
            try:
                conn = self._connection()
                with conn.cursor() as cur:
                    result = work(cur)
                conn.commit()       # a lost reply here: committed or not, the retry tells
                return result
            except psycopg2.Error as err:
                last = err
                if is_connection_loss(err, conn):
                    self._drop()
                    self.reconnects += 1
                elif err.pgcode in RETRY_SQLSTATES:
                    self._rollback()
                else:
                    self._rollback()
                    raise error_for(err, command_id) from None
            # back off, with jitter, before the next attempt
            time.sleep(self.backoff * (2 ** min(attempt - 1, 6)) * (0.5 + random.random()))
        raise PaymentError('unavailable', 503, 'gave up after %d attempts: %s' % (self.max_attempts, str(last).strip()),
                           getattr(last, 'pgcode', None) or '08000', command_id)

    def _run(self, sql, params=(), command_id=None):
        """The rows of one statement, in a transaction of its own."""
        def work(cur):
            cur.execute(sql, params)
            return [dict(r) for r in cur.fetchall()]
        return self._transaction(work, command_id)

    def _one(self, sql, params=(), command_id=None):
        rows = self._run(sql, params, command_id)
        return rows[0] if rows else None

    def _command(self, sql, params, command_id, row_sql):
        """Sends a command (sql returns its seq) and, in the same transaction
        but a later statement, reads the row the seq names with row_sql; returns that row."""
        def work(cur):
            cur.execute(sql, params)
            seq = cur.fetchone()['seq']
            cur.execute(row_sql, (seq,))
            return dict(cur.fetchone())
        return self._transaction(work, command_id)

    # -- commands ----------------------------------------------------------

    def open_wallet(self, name, currency, id=None, metadata=None):
        """Opens a wallet without credit; returns its es_accounts row."""
        id = id or new_id('open')
        return self._command('SELECT es_open_account(%s, %s, id => %s, metadata => %s::jsonb) AS seq',
                             (name, currency, id, _json(metadata)), id, ACCOUNT_OF)

    def top_up(self, wallet, amount, id=None, metadata=None, effective_at=None):
        """Credits the wallet from outside (a card top-up); returns the seq.
        effective_at back-dates it in valid time (a top-up of yesterday)."""
        id = id or new_id('topup')
        return self._one('SELECT es_deposit(%s, %s, id => %s, metadata => %s::jsonb, '
                         'effective_at => %s::timestamptz) AS seq',
                         (wallet, amount, id, _json(metadata), effective_at), id)['seq']

    def pay(self, payer, payee, amount, order=None, id=None):
        """Moves amount from payer to payee now; returns the es_transfers row
        (transfer_id is the command id)."""
        id = id or new_id('pay')
        metadata = {'order': order} if order is not None else None
        return self._command('SELECT es_transfer(%s, %s, %s, id => %s, metadata => %s::jsonb) AS seq',
                             (payer, payee, amount, id, _json(metadata)), id, TRANSFER_OF)

    def hold(self, payer, payee, amount, timeout=600, order=None, id=None):
        """Reserves amount (a card authorisation); returns the es_transfers
        row of the pending transfer, whose transfer_id names the hold."""
        id = id or new_id('hold')
        command = {'type': 'transfer', 'from': payer, 'to': payee, 'amount': amount,
                   'pending': True, 'id': id}
        if timeout is not None:
            command['timeout'] = timeout
        if order is not None:
            command['metadata'] = {'order': order}
        return self._command('SELECT es_apply(%s::jsonb) AS seq', (json.dumps(command),), id, TRANSFER_OF)

    def capture(self, hold_id, amount=None, id=None):
        """Posts the hold (all of it, or amount); the rest is released."""
        id = id or new_id('capture')
        command = {'type': 'post_pending', 'pending_id': hold_id, 'id': id}
        if amount is not None:
            command['amount'] = amount
        return self._command('SELECT es_apply(%s::jsonb) AS seq', (json.dumps(command),), id, TRANSFER_OF)

    def release(self, hold_id, id=None):
        """Voids the hold."""
        id = id or new_id('release')
        command = {'type': 'void_pending', 'pending_id': hold_id, 'id': id}
        return self._command('SELECT es_apply(%s::jsonb) AS seq', (json.dumps(command),), id, TRANSFER_OF)

    # -- reads -------------------------------------------------------------

    def wallet(self, name):
        """The wallet's es_accounts row (balance, available, holds), or a
        wallet_not_found PaymentError."""
        row = self._one('SELECT account, currency, status, balance, available, pending_out, pending_in, version '
                        'FROM es_accounts WHERE account = %s', (name,))
        if row is None:
            raise PaymentError('wallet_not_found', 404, 'wallet "%s" not found' % name, 'ES003')
        return row

    def statement(self, wallet, after_version=None, limit=50):
        """A page of the wallet's statement: its events with the balance after
        each; the next page passes the last row's version."""
        return self._run('SELECT version, type, amount, balance_after, effective_at, command_id, '
                         "data->'metadata' AS metadata "
                         'FROM es_history(%s, after_version => %s, max_count => %s)',
                         (wallet, after_version, limit))

    def balance_as_of(self, wallet, when):
        """The balance at a past time: as the ledger knew it then (transaction
        time) and as it was in the world (valid time, counting later
        back-dated top-ups)."""
        return self._one('SELECT es_balance_at(%s, %s::timestamptz) AS known_then, '
                         'es_balance_effective_at(%s, %s::timestamptz) AS effective_then',
                         (wallet, when, wallet, when))


def _json(value):
    return None if value is None else json.dumps(value)
