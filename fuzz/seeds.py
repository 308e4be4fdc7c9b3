"""Writes the fuzzers' starting inputs under fuzz/corpus/<target>/.

- record_batches: real v2 batches from kafka-python's encoder, with every
  codec (none, gzip, snappy, lz4, zstd), keys, values and headers;
- frame: a request header for every API version floe serves (both header
  versions), followed by zeros and by a batch, for the mutator to work on;
- prefix, validate, typed: Confluent prefixes and protobuf values of the
  fuzz schema's messages;
- compile: `.proto` texts (the fuzz schema, floe's policy options, small
  schemas with imports, options, maps, oneofs, nesting, recursion).
"""

import struct
import sys
from pathlib import Path

from kafka.record.default_records import DefaultRecordBatchBuilder

OUT = Path(__file__).resolve().parent / "corpus"
SCHEMA = Path(__file__).resolve().parents[1] / "schema" / "proto" / "floe"
PROTOS = {
    "imports": 'syntax = "proto3"; package t; import "google/protobuf/timestamp.proto"; '
               'import "google/protobuf/struct.proto"; message A { google.protobuf.Timestamp at = 1; '
               'google.protobuf.Struct extra = 2; map<string, A> children = 3; oneof o { string s = 4; int64 i = 5; } }',
    "rules": 'syntax = "proto3"; import "buf/validate/validate.proto"; message R { string email = 1 '
             '[(buf.validate.field).string.email = true]; repeated int32 n = 2 [(buf.validate.field).repeated.max_items = 3]; }',
    "policy": 'syntax = "proto3"; import "floe/policy/v1/policy.proto"; message P { string name = 1 '
              '[(floe.policy.v1.field) = {classification: "PII", purposes: ["support"]}]; }',
    "nested": 'syntax = "proto3"; message A { message B { message C { int32 x = 1; } C c = 1; } B b = 1; '
              'enum E { E0 = 0; E1 = 1; } E e = 2; }',
    "proto2": 'syntax = "proto2"; message G { required int32 a = 1; optional string b = 2 [default = "x"]; '
              'extensions 100 to 200; }',
    "recursive": 'syntax = "proto3"; message Node { Node child = 1; repeated Node kids = 2; string s = 3; }',
}
APIS = {0: (3, 11), 1: (4, 16), 2: (1, 8), 3: (0, 12), 18: (0, 4), 19: (2, 7), 20: (1, 6), 21: (0, 2),
        22: (0, 5), 32: (1, 4), 33: (0, 2), 37: (0, 3), 44: (0, 1), 60: (0, 1), 10: (0, 4), 11: (0, 9),
        14: (0, 5), 12: (0, 4), 13: (0, 5), 8: (2, 9), 9: (1, 9), 16: (0, 5), 15: (0, 5), 42: (0, 2),
        47: (0, 0), 68: (0, 1), 69: (0, 1)}


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def batch(codec, n=3):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False, producer_id=1000,
                                  producer_epoch=0, base_sequence=0, batch_size=1 << 20)
    for i in range(n):
        b.append(i, 1_700_000_000_000 + i, f"k{i}".encode(), f"value {i} ".encode() * 4, [("h", b"v")])
    return bytes(b.build())


def varint(n):
    n = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def main():
    for name, text in PROTOS.items():
        write("compile", name, text.encode())
    write("compile", "fuzz", (SCHEMA / "fuzz" / "v1" / "fuzz.proto").read_bytes())
    write("compile", "policy_options", (SCHEMA / "policy" / "v1" / "policy.proto").read_bytes())
    batches = {c: batch(c) for c in range(5)}
    for c, data in batches.items():
        write("record_batches", f"codec{c}", data)
    write("record_batches", "two", batches[0] + batches[3])
    for key, (lo, hi) in APIS.items():
        for v in range(lo, hi + 1):
            for flexible in (False, True):
                header = struct.pack(">hhi", key, v, 7) + struct.pack(">h", 4) + b"seed"
                if flexible:
                    header += b"\x00"
                write("frame", f"api{key}v{v}{'f' if flexible else ''}", header + bytes(32))
                if key == 0:
                    write("frame", f"produce{v}{'f' if flexible else ''}", header + bytes(8) + batches[1])
    for indexes in ([], [1], [0], [1, 0]):
        prefix = b"\x00" + struct.pack(">i", 42) + varint(len(indexes)) + b"".join(varint(i) for i in indexes)
        write("prefix", f"idx{len(indexes)}", prefix)
        # An Order: id, email, total, status, one line, a tag.
        line = b"\x0a\x03abc\x10\x02\x1a\x02\x02\x04"
        order = (b"\x0a\x24" + b"123e4567-e89b-12d3-a456-426614174000" + b"\x12\x07a@b.com" + b"\x18\x05"
                 + b"\x20\x01" + b"\x2a" + bytes([len(line)]) + line + b"\x32\x07\x0a\x01a\x10\x01\x00"[:9])
        for target in ("validate", "typed"):
            write(target, f"order{len(indexes)}", prefix + order)
            write(target, "line", line)
            write(target, "order", order)


if __name__ == "__main__":
    sys.exit(main())
