"""Harness for end-to-end tests: starts the real `floe` binary on free ports
in a temporary directory and stops it, whatever happens."""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r"floe is ready kafka=(\S+) http=(\S+)")


def floe_binary() -> str:
    if os.environ.get("FLOE_BIN"):
        return os.environ["FLOE_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    return str(Path(target) / "release" / "floe")


class Floe:
    """One broker process over one data directory. `restart()` and `kill9()`
    keep the directory and the Kafka port, so clients reconnect unchanged."""

    def __init__(self, data_dir: Path, extra_args=()):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.kafka_addr = "127.0.0.1:0"
        self.http_addr = "127.0.0.1:0"
        self.proc = None
        self.lines = []
        self.log_path = data_dir.parent / "floe.log"

    @property
    def bootstrap(self) -> str:
        return self.kafka_addr

    @property
    def http(self) -> str:
        return "http://" + self.http_addr

    def start(self, timeout=30):
        # --listeners replaces --kafka-listen (and names fixed ports).
        named = any(a.split("=", 1)[0] == "--listeners" for a in self.extra_args)
        args = [
            floe_binary(), "serve",
            "--data-dir", str(self.data_dir),
            *([] if named else ["--kafka-listen", self.kafka_addr]),
            "--http-listen", self.http_addr,
            *self.extra_args,
        ]
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.PIPE, text=True)
        ready = threading.Event()

        def pump(proc):
            for line in proc.stderr:
                log.write(line)
                log.flush()
                self.lines.append(line)
                m = READY.search(line)
                if m:
                    self.kafka_addr, self.http_addr = m.group(1), m.group(2)
                    ready.set()

        threading.Thread(target=pump, args=(self.proc,), daemon=True).start()
        deadline = time.time() + timeout
        while not ready.is_set():
            if self.proc.poll() is not None:
                raise RuntimeError(f"floe exited with {self.proc.returncode}:\n" + "".join(self.lines[-30:]))
            if time.time() > deadline:
                raise RuntimeError("floe did not become ready:\n" + "".join(self.lines[-30:]))
            ready.wait(0.05)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def restart(self, kill=False):
        self.kill9() if kill else self.stop()
        # The port was ours a moment ago; wait until it can be bound again.
        host, port = self.kafka_addr.rsplit(":", 1)
        for _ in range(100):
            try:
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((host, int(port)))
                break
            except OSError:
                time.sleep(0.1)
        return self.start()

    def log_text(self) -> str:
        return "".join(self.lines)

    def log_contains(self, text: str, within: float = 10.0) -> bool:
        """Whether the log shows `text` within `within` seconds: lines reach
        us through a reader thread, a moment after the broker wrote them."""
        deadline = time.time() + within
        while text not in self.log_text():
            if time.time() > deadline:
                return False
            time.sleep(0.05)
        return True


def floe_refuses_to_start(data_dir, *args, timeout=60):
    """Runs `floe serve` expecting it to stop on its own, non-zero; returns
    what it said."""
    named = any(a.split("=", 1)[0] == "--listeners" for a in args)
    listen = [] if named else ["--kafka-listen", "127.0.0.1:0"]
    done = subprocess.run([floe_binary(), "serve", "--data-dir", str(data_dir), *listen,
                           "--http-listen", "127.0.0.1:0", *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode != 0, done.stderr
    return done.stderr


@pytest.fixture
def floe_factory(tmp_path):
    started = []

    def make(*extra_args, data_dir=None):
        f = Floe(data_dir or tmp_path / f"data{len(started)}", extra_args)
        started.append(f)
        return f.start()

    yield make
    for f in started:
        f.kill9()


@pytest.fixture
def floe(floe_factory):
    return floe_factory()


S3RVER = os.environ.get("FLOE_S3RVER") or shutil.which("s3rver")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(tmp_path, monkeypatch):
    """A real S3-compatible server (s3rver, installed by scripts/test.sh)
    with a bucket `lake`, and the AWS environment pointing at it. Yields
    (endpoint, the server's directory)."""
    if not S3RVER:
        pytest.fail("s3rver is not installed: run scripts/test.sh")
    root = tmp_path / "s3"
    root.mkdir()
    port = free_port()
    proc = subprocess.Popen([S3RVER, "--directory", str(root), "--port", str(port), "--address", "127.0.0.1",
                             "--configure-bucket", "lake", "--silent"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("s3rver did not start")
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        for k, v in {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER", "AWS_REGION": "us-east-1",
                     "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true"}.items():
            monkeypatch.setenv(k, v)
        yield endpoint, root
    finally:
        proc.kill()
        proc.wait()


GARAGE_KEY_ID = "GK0000000000000000000f10e0"
GARAGE_SECRET = "0f10e" * 12 + "0f10"


@pytest.fixture
def garage(monkeypatch):
    """Garage, an S3-compatible store people run in production (built by
    scripts/garage.sh install, which scripts/test.sh runs), single-node
    with a bucket `lake`, and the AWS environment pointing at it. Yields
    the endpoint; the PyIceberg properties are `garage_catalog_props`."""
    started = subprocess.run([str(REPO / "scripts" / "garage.sh"), "start", "lake"], capture_output=True,
                             text=True, timeout=60)
    if started.returncode != 0:
        pytest.fail("could not start Garage (scripts/garage.sh install builds it): " + started.stderr)
    endpoint, directory = started.stdout.split()
    try:
        for k, v in {"AWS_ACCESS_KEY_ID": GARAGE_KEY_ID, "AWS_SECRET_ACCESS_KEY": GARAGE_SECRET,
                     "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true"}.items():
            monkeypatch.setenv(k, v)
        yield endpoint
    finally:
        subprocess.run([str(REPO / "scripts" / "garage.sh"), "stop", directory])


def garage_catalog_props():
    """PyIceberg's S3 settings for the `garage` fixture's store."""
    return {"s3.access-key-id": GARAGE_KEY_ID, "s3.secret-access-key": GARAGE_SECRET}


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server's superuser URL: the one scripts/test.sh started
    (FLOE_TEST_POSTGRES), or one started here for this session."""
    url = os.environ.get("FLOE_TEST_POSTGRES")
    if url:
        yield url
        return
    started = subprocess.run([str(REPO / "scripts" / "postgres.sh"), "start"], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail("could not start PostgreSQL: " + started.stderr)
    url, directory = started.stdout.split()
    try:
        yield url
    finally:
        subprocess.run([str(REPO / "scripts" / "postgres.sh"), "stop", directory])


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of this test's own, to crash and resume
    (scripts/postgres.sh crash|resume); yields (URL of a database, its
    directory)."""
    script = str(REPO / "scripts" / "postgres.sh")
    started = subprocess.run([script, "start"], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail("could not start PostgreSQL: " + started.stderr)
    url, directory = started.stdout.split()
    try:
        yield url, directory
    finally:
        subprocess.run([script, "stop", directory])


@pytest.fixture
def postgres(postgres_server):
    """A new empty database on the test server; yields its URL."""
    name = "floe_" + uuid.uuid4().hex
    psql(postgres_server, f"CREATE DATABASE {name}")
    yield postgres_server.rsplit("/", 1)[0] + "/" + name


def psql(url: str, sql: str) -> str:
    """Runs SQL with psql; returns its unaligned, tuples-only output."""
    done = subprocess.run(["psql", url, "-XAtqc", sql], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"psql failed: {done.stderr}")
    return done.stdout.strip()
