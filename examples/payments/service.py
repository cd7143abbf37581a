"""service: the payment API over HTTP/JSON (standard library http.server).

    python3 service.py --dsn "host=... dbname=... user=payments_app" --port 8080

    POST /wallets                  {"name": "ann", "currency": "EUR"}
    POST /wallets/ann/top-ups      {"amount": 5000, "effective_at": "2026-12-04T10:00Z"}
    POST /payments                 {"from": "ann", "to": "shop", "amount": 1250, "order": "A-1001"}
    POST /holds                    {"from": "ann", "to": "shop", "amount": 5000, "timeout": 600}
    POST /holds/<id>/capture       {"amount": 4200}
    POST /holds/<id>/release       {}
    GET  /wallets/ann              balance, available, holds
    GET  /wallets/ann/statement?after_version=&limit=
    GET  /wallets/ann/balance?at=2026-12-04T00:00Z

A POST may carry an `Idempotency-Key` header: it becomes the command id, so
a client that lost our reply can send the request again and is answered
with the first outcome, never a second payment.  Without it the service
generates the id (and retries with it on its own connection losses).
Refusals answer with the status and outcome of payments.OUTCOMES and a body
{"error", "sqlstate", "message", "detail", "command_id"}.
"""

import argparse
import datetime
import decimal
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

from payments import Ledger, PaymentError

ROUTES = []


def route(method, pattern):
    def register(fn):
        ROUTES.append((method, re.compile('^' + pattern + '$'), fn))
        return fn
    return register


@route('POST', '/wallets')
def open_wallet(api, body, key, query):
    return 201, api.open_wallet(body['name'], body['currency'], id=key, metadata=body.get('metadata'))


@route('POST', '/wallets/([^/]+)/top-ups')
def top_up(api, body, key, query, wallet):
    return 201, {'seq': api.top_up(wallet, body['amount'], id=key, metadata=body.get('metadata'),
                                   effective_at=body.get('effective_at'))}


@route('POST', '/payments')
def pay(api, body, key, query):
    return 201, api.pay(body['from'], body['to'], body['amount'], order=body.get('order'), id=key)


@route('POST', '/holds')
def hold(api, body, key, query):
    return 201, api.hold(body['from'], body['to'], body['amount'], timeout=body.get('timeout', 600),
                         order=body.get('order'), id=key)


@route('POST', '/holds/([^/]+)/capture')
def capture(api, body, key, query, hold_id):
    return 200, api.capture(hold_id, body.get('amount'), id=key)


@route('POST', '/holds/([^/]+)/release')
def release(api, body, key, query, hold_id):
    return 200, api.release(hold_id, id=key)


@route('GET', '/wallets/([^/]+)')
def wallet(api, body, key, query, name):
    return 200, api.wallet(name)


@route('GET', '/wallets/([^/]+)/statement')
def statement(api, body, key, query, name):
    after = query.get('after_version')
    return 200, api.statement(name, int(after) if after else None, int(query.get('limit', 50)))


@route('GET', '/wallets/([^/]+)/balance')
def balance_at(api, body, key, query, name):
    return 200, api.balance_as_of(name, query['at'])


def _default(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value)
    raise TypeError(type(value).__name__)


def make_handler(dsn):
    local = threading.local()       # a Ledger (one connection) per server thread

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method):
            if not hasattr(local, 'api'):
                local.api = Ledger(dsn, application_name='payments-http')
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                length = int(self.headers.get('Content-Length') or 0)
                body = json.loads(self.rfile.read(length) or b'{}') if method == 'POST' else {}
                for m, pattern, fn in ROUTES:
                    match = pattern.match(url.path)
                    if m == method and match:
                        args = [unquote(a) for a in match.groups()]
                        status, result = fn(local.api, body, self.headers.get('Idempotency-Key'), query, *args)
                        break
                else:
                    status, result = 404, {'error': 'no_such_route'}
            except PaymentError as e:
                status, result = e.status, e.as_dict()
            except (KeyError, ValueError, TypeError) as e:
                status, result = 400, {'error': 'invalid_request', 'message': 'bad or missing field: %s' % e}
            payload = json.dumps(result, default=_default).encode()
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self):
            self._serve('GET')

        def do_POST(self):
            self._serve('POST')

        def log_message(self, *args):
            pass

    return Handler


def serve(dsn, host='127.0.0.1', port=8080):
    """The HTTP server (call serve_forever() on it)."""
    return ThreadingHTTPServer((host, port), make_handler(dsn))


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dsn', required=True)
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=8080)
    args = ap.parse_args()
    serve(args.dsn, args.host, args.port).serve_forever()
