#!/usr/bin/env python3
"""A small stand-in for the LoginTC Admin REST API, for `make demo` only.

No LoginTC server can run here. This serves the calls roster makes, as the vendor documents
them (https://www.logintc.com/docs/rest-api/): `Authorization: LoginTC key="..."` (401
otherwise), errors as {"errors": [{"code", "message"}]}, users with 40-hex ids, domain
members page by page, tokens issued pending with a 10-character code, leaving a domain
revokes the token. The tests use the fuller double in tests/support/logintc.rs.

Usage: logintc_double.py PORT API_KEY DOMAIN_ID DOMAIN_NAME
"""

import itertools
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PORT, KEY, DOMAIN, DOMAIN_NAME = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
PAGE = 2
users = {}  # id -> {id, username, name, email}
members = set()
tokens = {}  # id -> {state, code}
ids = itertools.count(1)
lock = threading.Lock()  # one request at a time: the state is shared


def user_json(u):
    return dict(u, domains=[DOMAIN] if u["id"] in members else [])


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.logintc.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, message):
        self.answer(status, {"errors": [{"code": code, "message": message}]})

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return {}

    def route(self, method):
        if self.headers.get("Authorization") != f'LoginTC key="{KEY}"':
            return self.error(401, "api.error.unauthorized", "Invalid API key")
        url = urlparse(self.path)
        query = parse_qs(url.query)
        parts = url.path.removeprefix("/api/").strip("/").split("/")
        match (method, parts):
            case ("GET", ["domains", d]) if d == DOMAIN:
                return self.answer(200, {"id": DOMAIN, "name": DOMAIN_NAME})
            case ("GET", ["domains", d, "users"]) if d == DOMAIN:
                page = int(query.get("page", ["1"])[0])
                listed = [user_json(users[i]) for i in sorted(members)]
                return self.answer(200, listed[(page - 1) * PAGE : page * PAGE])
            case (_, ["domains", d, *_]) if d != DOMAIN:
                return self.error(404, "api.error.notfound.domain", "No such domain")
            case ("POST", ["users"]):
                b = self.body()
                if not all(1 <= len(str(b.get(f) or "")) <= 128 for f in ("username", "name", "email")):
                    return self.error(400, "api.error.invalid.user", "username, name and email are 1 to 128 characters")
                if any(u["username"] == b["username"] for u in users.values()):
                    return self.error(409, "api.error.conflict.user", "A user with this username already exists")
                uid = f"{0xabc00000 + next(ids):040x}"
                users[uid] = {"id": uid, "username": b["username"], "name": b["name"], "email": b["email"]}
                return self.answer(200, user_json(users[uid]))
            case ("GET", ["users"]):
                found = [u for u in users.values() if u["username"] == query.get("username", [""])[0]]
                if not found:
                    return self.error(404, "api.error.notfound.user", "No such user")
                return self.answer(200, user_json(found[0]))
            case (_, ["users", uid, *_]) | (_, ["domains", _, "users", uid, *_]) if uid not in users:
                return self.error(404, "api.error.notfound.user", "No such user")
            case ("GET", ["users", uid]):
                return self.answer(200, user_json(users[uid]))
            case ("PUT", ["users", uid]):
                previous = user_json(users[uid])
                users[uid].update({k: v for k, v in self.body().items() if k in ("name", "email")})
                return self.answer(200, previous)
            case ("DELETE", ["users", uid]):
                users.pop(uid)
                members.discard(uid)
                tokens.pop(uid, None)
                return self.answer(200)
            case ("PUT", ["domains", _, "users", uid]):
                members.add(uid)
                return self.answer(200)
            case ("DELETE", ["domains", _, "users", uid]):
                if uid not in members:
                    return self.error(404, "api.error.notfound.domainuser", "Not a member")
                members.discard(uid)
                tokens.pop(uid, None)
                return self.answer(200)
            case ("PUT", ["domains", _, "users", uid, "token"]) if uid in members:
                token = tokens.setdefault(uid, {"state": "pending", "code": f"{len(tokens) + 1:010d}"})
                return self.answer(200, token)
            case ("GET", ["domains", _, "users", uid, "token"]) if uid in tokens:
                return self.answer(200, tokens[uid])
        return self.error(404, "api.error.notfound", "Not found")

    def do_GET(self):
        with lock:
            self.route("GET")

    def do_POST(self):
        with lock:
            self.route("POST")

    def do_PUT(self):
        with lock:
            self.route("PUT")

    def do_DELETE(self):
        with lock:
            self.route("DELETE")


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
