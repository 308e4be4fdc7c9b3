"""An Iceberg REST catalog for the tests of floe's external registration.

The catalog itself is PyIceberg's SQL catalog (SQLite): it validates the
commit requirements, applies the metadata updates and writes the metadata
files. This file only puts the REST routes in front of it, as Apache
Iceberg's own REST test fixture does in front of its JDBC catalog (that
fixture is Java, from Maven Central, which this machine does not reach).

It serves its routes under a prefix announced by `GET /v1/config`, and with
`--credential id:secret` it demands an OAuth2 bearer token from
`/v1/oauth/tokens` (client credentials), as Polaris does.

    python rest_catalog.py --port 8181 --dir /tmp/cat [--credential id:secret]
"""

import argparse
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.table import CommitTableRequest

PREFIX = "ext"


class Catalog:
    def __init__(self, folder: Path, credential: str | None):
        folder.mkdir(parents=True, exist_ok=True)
        self.sql = SqlCatalog(
            "ext",
            uri=f"sqlite:///{folder / 'catalog.db'}",
            warehouse=f"file://{folder / 'warehouse'}",
        )
        self.lock = threading.Lock()
        self.credential = credential
        self.tokens: set[str] = set()
        self.log: list[tuple[str, str, int]] = []


def table_body(table) -> dict:
    return {
        "metadata-location": table.metadata_location,
        "metadata": json.loads(table.metadata.model_dump_json()),
        "config": {},
    }


def error(code: int, kind: str, message: str) -> tuple[int, dict]:
    return code, {"error": {"message": message, "type": kind, "code": code}}


class Handler(BaseHTTPRequestHandler):
    catalog: Catalog

    def log_message(self, *args):
        pass

    def reply(self, code: int, body: dict | None, method: str):
        data = b"" if body is None or method == "HEAD" else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method: str):
        url = urlparse(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        cat = self.catalog
        with cat.lock:
            if url.path == "/v1/oauth/tokens" and method == "POST":
                code, body = self.token(parse_qs(raw.decode()))
            elif url.path == "/debug/requests":
                # The tests' view of what the catalog was asked.
                self.reply(200, {"requests": cat.log}, method)
                return
            elif cat.credential and not self.authorized():
                code, body = error(401, "NotAuthorizedException", "a bearer token is needed")
            else:
                try:
                    code, body = self.route(method, url, raw)
                except (NoSuchTableError, NoSuchNamespaceError) as e:
                    code, body = error(404, type(e).__name__, str(e))
                except (TableAlreadyExistsError, NamespaceAlreadyExistsError) as e:
                    code, body = error(409, "AlreadyExistsException", str(e))
                except CommitFailedException as e:
                    code, body = error(409, "CommitFailedException", str(e))
                except Exception as e:  # noqa: BLE001 - a bad request, told to the caller
                    code, body = error(400, "BadRequestException", f"{type(e).__name__}: {e}")
            cat.log.append((method, url.path, code))
        self.reply(code, body, method)

    def authorized(self) -> bool:
        auth = self.headers.get("authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in self.catalog.tokens

    def token(self, form: dict) -> tuple[int, dict]:
        given = f"{form.get('client_id', [''])[0]}:{form.get('client_secret', [''])[0]}"
        if self.catalog.credential is None or given != self.catalog.credential:
            return 401, {"error": "invalid_client", "error_description": "unknown client"}
        token = secrets.token_hex(16)
        self.catalog.tokens.add(token)
        return 200, {"access_token": token, "token_type": "bearer", "expires_in": 3600,
                     "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}

    def route(self, method: str, url, raw: bytes) -> tuple[int, dict | None]:
        sql = self.catalog.sql
        if url.path == "/v1/config" and method == "GET":
            return 200, {"defaults": {}, "overrides": {"prefix": PREFIX}}
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts[:2] != ["v1", PREFIX] or len(parts) < 3 or parts[2] != "namespaces":
            return error(404, "NoSuchResource", f"no route {method} {url.path}")
        rest = parts[3:]
        body = json.loads(raw) if raw else {}
        if not rest:
            if method == "GET":
                return 200, {"namespaces": [list(n) for n in sql.list_namespaces()]}
            if method == "POST":
                sql.create_namespace(tuple(body["namespace"]), body.get("properties") or {})
                return 200, {"namespace": body["namespace"], "properties": {}}
        ns = tuple(rest[0].split("\x1f"))
        if rest[1:] == ["register"] and method == "POST":
            table = sql.register_table(ns + (body["name"],), body["metadata-location"])
            return 200, table_body(table)
        if rest[1:] == ["tables"] and method == "GET":
            return 200, {"identifiers": [{"namespace": list(i[:-1]), "name": i[-1]}
                                         for i in sql.list_tables(ns)]}
        if len(rest) == 3 and rest[1] == "tables":
            ident = ns + (rest[2],)
            if method == "GET":
                return 200, table_body(sql.load_table(ident))
            if method == "HEAD":
                sql.load_table(ident)
                return 204, None
            if method == "DELETE":
                sql.drop_table(ident)
                return 204, None
            if method == "POST":
                body.setdefault("identifier", {"namespace": list(ns), "name": rest[2]})
                req = CommitTableRequest.model_validate(body)
                table = sql.load_table(ident)
                resp = sql.commit_table(table, req.requirements, req.updates)
                return 200, {"metadata-location": resp.metadata_location,
                             "metadata": json.loads(resp.metadata.model_dump_json())}
        return error(404, "NoSuchResource", f"no route {method} {url.path}")

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def do_HEAD(self):
        self.handle_any("HEAD")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--credential")
    args = ap.parse_args()
    Handler.catalog = Catalog(args.dir, args.credential)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
