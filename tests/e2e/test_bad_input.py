"""Bad input gets the error Kafka would give and affects nothing else: raw
frames over a socket, no client library in between."""

import socket
import struct

from kafka.record.default_records import DefaultRecordBatchBuilder

from helpers import consume_all, create_topic


def frame(api_key, version, corr, body=b"", client_id=b"raw"):
    payload = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id + body
    return struct.pack(">i", len(payload)) + payload


def connect(floe):
    host, port = floe.bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    return s


def read_response(s):
    head = recv_exact(s, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">i", head)
    return recv_exact(s, size)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None if not buf else buf
        buf += chunk
    return buf


def api_versions_ok(s, corr=7):
    s.sendall(frame(18, 0, corr))
    resp = read_response(s)
    assert resp is not None
    c, err, n = struct.unpack(">ihi", resp[:10])
    return c == corr and err == 0 and n > 5


def test_unsupported_versions_and_apis_answer_and_keep_the_connection(floe):
    s = connect(floe)
    s.sendall(frame(18, 99, 1))
    resp = read_response(s)
    corr, err = struct.unpack(">ih", resp[:6])
    assert (corr, err) == (1, 35), "ApiVersions v99 answers UNSUPPORTED_VERSION in v0"
    (n,) = struct.unpack(">i", resp[6:10])
    keys = {struct.unpack(">h", resp[10 + 6 * i:12 + 6 * i])[0] for i in range(n)}
    assert {0, 1, 2, 3, 18, 19, 20}.issubset(keys)

    s.sendall(frame(0, 2, 2))  # Produce v2: below our minimum
    assert struct.unpack(">ih", read_response(s)[:6]) == (2, 35)
    s.sendall(frame(999, 0, 3))  # no such API
    assert struct.unpack(">ih", read_response(s)[:6]) == (3, 35)
    assert api_versions_ok(s), "the connection is still usable"
    s.close()


def test_malformed_frame_closes_only_that_connection(floe):
    good = connect(floe)
    bad = connect(floe)
    # Metadata v1 claiming 5 topics and then ending.
    bad.sendall(frame(3, 1, 9, struct.pack(">i", 5)))
    assert read_response(bad) is None, "the malformed connection is closed"
    assert api_versions_ok(good), "other connections are unaffected"
    garbage = connect(floe)
    garbage.sendall(struct.pack(">i", 3) + b"\x01\x02\x03")
    assert read_response(garbage) is None
    assert api_versions_ok(good)
    good.close()


def test_oversized_frame_is_refused(floe_factory):
    f = floe_factory("--max-frame-bytes", "100000")
    s = connect(f)
    s.sendall(struct.pack(">i", 5_000_000) + b"\x00" * 1000)
    assert read_response(s) is None
    assert api_versions_ok(connect(f))


def produce_v3(topic, records, corr):
    body = struct.pack(">hhi", -1, -1, 10_000)  # null transactional id, acks=all, timeout
    name = topic.encode()
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iii", 1, 0, len(records)) + records
    return frame(0, 3, corr, body)


def parse_produce_v3(resp):
    corr, ntopics, nlen = struct.unpack(">iih", resp[:10])
    off = 10 + nlen
    _, index, err, base = struct.unpack(">iihq", resp[off:off + 18])
    return corr, err, base


def batch(values):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, timestamp=1_700_000_000_000 + i, key=b"k", value=v, headers=[])
    return bytes(b.build())


def test_corrupt_crc_is_refused_and_leaves_nothing(floe):
    create_topic(floe.bootstrap, "crc", 1)
    s = connect(floe)
    good = batch([b"one", b"two"])
    s.sendall(produce_v3("crc", good, 1))
    assert parse_produce_v3(read_response(s)) == (1, 0, 0)
    corrupt = bytearray(batch([b"three"]))
    corrupt[-2] ^= 0xFF
    s.sendall(produce_v3("crc", bytes(corrupt), 2))
    corr, err, _ = parse_produce_v3(read_response(s))
    assert (corr, err) == (2, 2), "CORRUPT_MESSAGE"
    truncated = good[:-5]
    s.sendall(produce_v3("crc", truncated, 3))
    assert parse_produce_v3(read_response(s))[1] == 2
    assert api_versions_ok(s)
    got = consume_all(floe.bootstrap, "crc", 1)
    assert [m.value() for m in got[0]] == [b"one", b"two"]


def test_invalid_topic_name_in_metadata(floe):
    s = connect(floe)
    name = b"no spaces allowed"
    # Metadata v4: topics array, allow_auto_topic_creation.
    s.sendall(frame(3, 4, 5, struct.pack(">ih", 1, len(name)) + name + b"\x01"))
    resp = read_response(s)
    # v4: throttle, brokers[node_id, host, port, rack], cluster_id, controller_id, topics[error, name, ...]
    off = 4 + 4
    (nb,) = struct.unpack(">i", resp[off:off + 4])
    off += 4
    for _ in range(nb):
        off += 4
        (hl,) = struct.unpack(">h", resp[off:off + 2])
        off += 2 + hl + 4
        (rl,) = struct.unpack(">h", resp[off:off + 2])
        off += 2 + max(rl, 0)
    (cl,) = struct.unpack(">h", resp[off:off + 2])
    off += 2 + max(cl, 0) + 4
    (nt,) = struct.unpack(">i", resp[off:off + 4])
    (err,) = struct.unpack(">h", resp[off + 4:off + 6])
    assert nt == 1 and err == 17, "INVALID_TOPIC_EXCEPTION"
