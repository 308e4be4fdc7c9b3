"""Bad input gets the error Kafka would give and affects nothing else: raw
frames over a socket, no client library in between."""

import socket
import struct

from kafka.record.default_records import DefaultRecordBatchBuilder

from helpers import recent_ms, consume_all, create_topic

BASE_TS = recent_ms()


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


def test_array_counts_the_frame_cannot_hold_close_only_that_connection(floe):
    """Counts a frame cannot back used to size the decoder's buffers and
    abort the process on the failed allocation (issue 20)."""
    good = connect(floe)
    cases = [
        frame(3, 1, 1, struct.pack(">i", 2**31 - 1)),  # Metadata v1, 2^31-1 topics
        frame(3, 12, 2, b"\x00" + b"\xff\xff\xff\xff\x0f"),  # v12, compact 2^32-2
        frame(0, 7, 3, struct.pack(">hii", -1, 30000, 2**31 - 1)),  # Produce v7
        frame(44, 0, 4, struct.pack(">i", 2**31 - 1)),  # IncrementalAlterConfigs v0
        frame(1, 4, 5, struct.pack(">iiiibi", -1, 500, 1, 1 << 20, 0, 2**31 - 1)),  # Fetch v4
    ]
    for raw in cases:
        bad = connect(floe)
        bad.sendall(raw)
        assert read_response(bad) is None, "the malformed connection is closed"
        bad.close()
        assert api_versions_ok(good), "the broker still serves everyone else"
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
        b.append(i, timestamp=BASE_TS + i, key=b"k", value=v, headers=[])
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


def init_producer_id(s, corr):
    # InitProducerId v0: null transactional id, timeout.
    s.sendall(frame(22, 0, corr, struct.pack(">hi", -1, 60_000)))
    resp = read_response(s)
    c, _throttle, err, pid, epoch = struct.unpack(">iihqh", resp[:20])
    assert (c, err) == (corr, 0)
    return pid, epoch


def idempotent_batch(values, pid, epoch, seq):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=pid,
                                  producer_epoch=epoch, base_sequence=seq, batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, timestamp=BASE_TS + i, key=None, value=v, headers=[])
    return bytes(b.build())


def test_idempotent_produce_error_codes_survive_a_restart(floe):
    create_topic(floe.bootstrap, "idem", 1)
    s = connect(floe)
    pid, epoch = init_producer_id(s, 1)
    assert pid >= 0 and epoch == 0
    first = idempotent_batch([b"a", b"b"], pid, 0, 0)
    s.sendall(produce_v3("idem", first, 2))
    assert parse_produce_v3(read_response(s)) == (2, 0, 0)
    s.sendall(produce_v3("idem", first, 3))
    assert parse_produce_v3(read_response(s)) == (3, 0, 0), "a retried batch gets its original offset"
    s.sendall(produce_v3("idem", idempotent_batch([b"gap"], pid, 0, 5), 4))
    assert parse_produce_v3(read_response(s))[1] == 45, "OUT_OF_ORDER_SEQUENCE_NUMBER"
    s.sendall(produce_v3("idem", idempotent_batch([b"c"], pid, 0, 2), 5))
    assert parse_produce_v3(read_response(s)) == (5, 0, 2)
    s.close()

    floe.restart(kill=True)
    s = connect(floe)
    s.sendall(produce_v3("idem", idempotent_batch([b"c"], pid, 0, 2), 6))
    assert parse_produce_v3(read_response(s)) == (6, 0, 2), "producer state survived kill -9"
    s.sendall(produce_v3("idem", idempotent_batch([b"d"], pid, 0, 4), 7))
    assert parse_produce_v3(read_response(s))[1] == 45
    # Bump the epoch (KIP-360), then the old epoch is fenced.
    # InitProducerId v3 is flexible: header v2 (client id, then an empty
    # tagged-field section); body: compact nullable transactional id (0 =
    # null), timeout, producer id, epoch, tagged fields.
    header = struct.pack(">hhih", 22, 3, 8, 3) + b"raw" + b"\x00"
    body = b"\x00" + struct.pack(">iqh", 60_000, pid, 0) + b"\x00"
    s.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    resp = read_response(s)
    # v3 is flexible: header v1 (correlation id + tagged fields), then throttle, error, id, epoch.
    c, _tags, _throttle, err, new_pid, new_epoch = struct.unpack(">ibihqh", resp[:21])
    assert (c, err, new_pid, new_epoch) == (8, 0, pid, 1)
    s.sendall(produce_v3("idem", idempotent_batch([b"e"], pid, 1, 0), 9))
    assert parse_produce_v3(read_response(s)) == (9, 0, 3)
    s.sendall(produce_v3("idem", idempotent_batch([b"old"], pid, 0, 3), 10))
    assert parse_produce_v3(read_response(s))[1] == 47, "INVALID_PRODUCER_EPOCH"
    got = consume_all(floe.bootstrap, "idem", 1)
    assert [m.value() for m in got[0]] == [b"a", b"b", b"c", b"e"]


def test_acks_zero_gets_no_response_but_is_stored(floe):
    create_topic(floe.bootstrap, "acks0", 1)
    s = connect(floe)
    body = struct.pack(">hhi", -1, 0, 10_000)
    name = b"acks0"
    records = batch([b"fire", b"forget"])
    body += struct.pack(">ih", 1, len(name)) + name + struct.pack(">iii", 1, 0, len(records)) + records
    s.sendall(frame(0, 3, 1, body))
    assert api_versions_ok(s, corr=2), "the next response on the connection is the ApiVersions one"
    got = consume_all(floe.bootstrap, "acks0", 1, expected=2)
    assert [m.value() for m in got[0]] == [b"fire", b"forget"]
