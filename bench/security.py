"""Throughput over SASL_SSL (SCRAM-SHA-512 logins, TLS) against PLAINTEXT,
and over SASL_SSL with --acls and 10 000 ACLs (the cost of the checks):
one broker, the same producers, consumer and records as bench/cluster.py
(idempotent, acks=all, unique random values), the SQLite metadata store and
a local-directory object store. What it measures is what TLS and the login
cost floe and its clients on this machine's cores (the clients share them),
and what checking every request against 10 000 ACLs adds: the bench user
gets its own grants, and 10 000 others (other users, literal and prefixed
topics and groups, allows and denies) fill the index. It also times the
creation of those ACLs and a Metadata request with them in place.

Run with bench/security.sh (it builds floe and the Python environment);
needs `openssl` for the throwaway certificates."""

import argparse
import base64
import json
import os
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import time

from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   NewTopic, ResourcePatternType, ResourceType)

from cluster import PARTITIONS, measure, report, start_broker


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def certificates(d):
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=floe bench CA", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=d)
    return d / "ca.pem", d / "server.pem", d / "server.key"


def add_user(http, name, auth=None):
    body = json.dumps({"password": f"{name}-secret"}).encode()
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    req = urllib.request.Request(f"http://{http}/floe/users/{name}", data=body, method="PUT",
                                 headers=headers)
    urllib.request.urlopen(req, timeout=10).read()


def filler_acls(n):
    """n ACLs for other users: literal and prefixed, topics and groups,
    allows and a deny in every ten."""
    out = []
    for i in range(n):
        kind = ResourceType.TOPIC if i % 2 == 0 else ResourceType.GROUP
        pattern = ResourcePatternType.PREFIXED if i % 3 == 0 else ResourcePatternType.LITERAL
        permission = AclPermissionType.DENY if i % 10 == 0 else AclPermissionType.ALLOW
        op = (AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE)[i % 3]
        out.append(AclBinding(kind, f"team{i % 500}-svc{i}", pattern, f"User:user{i % 1000}", "*",
                              op, permission))
    return out


def grant_bench(admin, acls):
    """The bench user's grants, then `acls` more; returns seconds taken."""
    own = [AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.PREFIXED, "User:bench", "*", op,
                      AclPermissionType.ALLOW)
           for op in (AclOperation.WRITE, AclOperation.READ, AclOperation.CREATE)]
    own.append(AclBinding(ResourceType.GROUP, "bench-", ResourcePatternType.PREFIXED, "User:bench",
                          "*", AclOperation.READ, AclPermissionType.ALLOW))
    start = time.time()
    for batch in range(0, len(own + acls), 1000):
        for f in admin.create_acls((own + acls)[batch:batch + 1000]).values():
            f.result(60)
    return time.time() - start


def run_once(a, mode):
    root = Path(tempfile.mkdtemp(prefix="floe-security-bench-"))
    proc = None
    try:
        args = []
        if mode != "plain":
            ca, cert, key = certificates(root)
            args = ["--kafka-security-protocol", "SASL_SSL", "--tls-cert", str(cert), "--tls-key", str(key)]
        if mode == "acls":
            args += ["--acls", "--super-users", "User:admin", "--http-authentication", "required",
                     "--initial-user", "admin:admin-secret"]
        proc, bootstrap, http = start_broker(a.floe, 0, args, root)
        conf = {"bootstrap.servers": bootstrap}
        if mode != "plain":
            add_user(http, "bench", auth="admin:admin-secret" if mode == "acls" else None)
            conf.update({"security.protocol": "SASL_SSL", "ssl.ca.location": str(ca),
                         "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "bench",
                         "sasl.password": "bench-secret"})
        if mode == "acls":
            admin = AdminClient({**conf, "sasl.username": "admin", "sasl.password": "admin-secret"})
            took = grant_bench(admin, filler_acls(a.acls))
            print(f"  created {a.acls + 4} ACLs in {took:.1f} s")
        topics = [f"t{i}" for i in range(a.topics)]
        admin = AdminClient(conf)
        for f in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics]).values():
            f.result(30)
        if mode == "acls":
            start, n = time.time(), 50
            for _ in range(n):
                assert set(topics) <= set(admin.list_topics(timeout=10).topics)
            print(f"  Metadata of every topic: {(time.time() - start) / n * 1000:.2f} ms per request")
        return measure(conf, topics, a)
    finally:
        if proc:
            proc.kill()
            proc.wait()
        subprocess.run(["rm", "-rf", str(root)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--floe", required=True)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--record-bytes", type=int, default=1024)
    ap.add_argument("--topics", type=int, default=6)
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--acls", type=int, default=10_000)
    a = ap.parse_args()
    print(f"security throughput: {os.cpu_count()} cores, {a.records} records x {a.record_bytes} B "
          f"(unique random), {a.topics} topics x {PARTITIONS} partitions, {a.producers} producers, one broker")
    modes = (("plain", "PLAINTEXT              "), ("sasl", "SASL_SSL (SCRAM)       "),
             ("acls", f"SASL_SSL + {a.acls} ACLs"))
    for mode, label in modes:
        report(label, [run_once(a, mode) for _ in range(a.runs)])


if __name__ == "__main__":
    main()
