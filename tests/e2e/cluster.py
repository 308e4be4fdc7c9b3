"""Helpers for the tests of several brokers: starting a cluster, asking who
leads what, waiting, and a TCP relay that can cut one broker off from
PostgreSQL while the others keep their connections."""

import selectors
import socket
import threading
import time

from confluent_kafka.admin import AdminClient

LEASE_MS = 3000


def start_cluster(floe_factory, tmp_path, metadata, ids=(1, 2, 3), object_store=None, extra=(), metadata_for=None):
    """Brokers `ids` on one metadata store and one object store (a local
    directory unless `object_store` names one). `metadata_for(id)` may give
    a broker its own URL for the same store (through a relay)."""
    store = object_store or str(tmp_path / "objects")
    return {
        i: floe_factory(f"--metadata={metadata_for(i) if metadata_for else metadata}", f"--broker-id={i}",
                        f"--object-store={store}", f"--broker-lease-ms={LEASE_MS}", *extra,
                        data_dir=tmp_path / f"broker{i}")
        for i in ids
    }


def leaders(bootstrap, topics):
    """{topic: leader id} as Metadata from `bootstrap` says."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {t: md.topics[t].partitions[0].leader for t in topics if t in md.topics}


def wait_for(what, check, timeout=30):
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def settled_leaders(bootstrap, topics, quiet=3.0, timeout=60):
    """{topic: leader id} once every topic is led and no leader changed for
    `quiet` seconds (topics created a moment ago are still being spread)."""
    deadline = time.time() + timeout
    last, since = None, time.time()
    while time.time() < deadline:
        now = leaders(bootstrap, topics)
        if now != last or len(now) < len(topics) or -1 in now.values():
            last, since = now, time.time()
        elif time.time() - since >= quiet:
            return now
        time.sleep(0.2)
    raise AssertionError(f"the leaders of {topics} did not settle: {last}")


class Relay:
    """A TCP relay to `target` (host, port) on a free loopback port. `cut()`
    behaves like a network partition: bytes stop flowing both ways and new
    connections hang (nothing is refused or reset, so the client only
    learns by its own timeouts); `heal()` drops the stalled connections, as
    a partition that lasted long enough does, and relays again."""

    def __init__(self, target):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_off = threading.Event()
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.pairs = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, postgres_url):
        """`postgres_url` with its host and port replaced by the relay's."""
        scheme, rest = postgres_url.split("://", 1)
        user, hostpath = rest.split("@", 1)
        path = hostpath.split("/", 1)[1]
        return f"{scheme}://{user}@127.0.0.1:{self.port}/{path}"

    def cut(self):
        self.cut_off.set()

    def heal(self):
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass
        self.cut_off.clear()

    def close(self):
        self.closed.set()
        self.heal()
        self.listener.close()

    def _accept(self):
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a, b):
        sel = selectors.DefaultSelector()
        try:
            sel.register(a, selectors.EVENT_READ, b)
            sel.register(b, selectors.EVENT_READ, a)
            while not self.closed.is_set():
                if self.cut_off.is_set():
                    time.sleep(0.05)  # hold the bytes: a partition, not a reset
                    continue
                for key, _ in sel.select(0.1):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    if not self.cut_off.is_set():
                        key.data.sendall(data)
                    # else caught mid-flight by the cut: the bytes are lost
        except (OSError, ValueError):
            return
        finally:
            sel.close()
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass
