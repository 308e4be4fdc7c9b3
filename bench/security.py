"""Throughput over SASL_SSL (SCRAM-SHA-512 logins, TLS) against PLAINTEXT:
one broker, the same producers, consumer and records as bench/cluster.py
(idempotent, acks=all, unique random values), the SQLite metadata store and
a local-directory object store. What it measures is what TLS and the login
cost floe and its clients on this machine's cores (the clients share them).

Run with bench/security.sh (it builds floe and the Python environment);
needs `openssl` for the throwaway certificates."""

import argparse
import json
import os
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

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


def run_once(a, secure):
    root = Path(tempfile.mkdtemp(prefix="floe-security-bench-"))
    proc = None
    try:
        args = []
        if secure:
            ca, cert, key = certificates(root)
            args = ["--kafka-security-protocol", "SASL_SSL", "--tls-cert", str(cert), "--tls-key", str(key)]
        proc, bootstrap, http = start_broker(a.floe, 0, args, root)
        conf = {"bootstrap.servers": bootstrap}
        if secure:
            body = json.dumps({"password": "bench-secret"}).encode()
            req = urllib.request.Request(f"http://{http}/floe/users/bench", data=body, method="PUT",
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10).read()
            conf.update({"security.protocol": "SASL_SSL", "ssl.ca.location": str(ca),
                         "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "bench",
                         "sasl.password": "bench-secret"})
        topics = [f"t{i}" for i in range(a.topics)]
        admin = AdminClient(conf)
        for f in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics]).values():
            f.result(30)
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
    a = ap.parse_args()
    print(f"security throughput: {os.cpu_count()} cores, {a.records} records x {a.record_bytes} B "
          f"(unique random), {a.topics} topics x {PARTITIONS} partitions, {a.producers} producers, one broker")
    for secure, label in ((False, "PLAINTEXT        "), (True, "SASL_SSL (SCRAM)")):
        report(label, [run_once(a, secure) for _ in range(a.runs)])


if __name__ == "__main__":
    main()
