//! Entry points for the fuzzers (`fuzz/`, cargo-fuzz) and for the tests
//! that replay the inputs they found (`tests/tests/fuzz_regressions.rs`): each
//! takes arbitrary bytes, as a client could send them, and must return
//! without panicking or allocating beyond what the bytes justify.

use bytes::Bytes;

use crate::frame::{frame_size, parse_frame};
use crate::records::split_batches;

/// Decompressed bytes a fuzzed batch may expand to (the broker's own
/// bound is 128 MiB; a smaller one keeps the fuzzer fast).
const MAX_UNCOMPRESSED: usize = 16 * 1024 * 1024;

/// One Kafka request frame (size prefix, then header and body).
pub fn frame(data: &[u8]) {
    let _ = frame_size(data);
    let _ = parse_frame(Bytes::copy_from_slice(data));
}

/// Record batches as a Produce request carries them: split, CRC, every
/// codec the attributes name, every record. The bytes are tried as they
/// are and again with each batch's CRC made right, so that the fuzzer gets
/// past the checksum into decompression and record decoding.
pub fn record_batches(data: &[u8]) {
    decode_batches(Bytes::copy_from_slice(data));
    decode_batches(with_crcs_fixed(data));
}

fn decode_batches(data: Bytes) {
    if let Ok(batches) = split_batches(data) {
        for b in batches {
            let _ = b.header.compression();
            let _ = b.records(MAX_UNCOMPRESSED);
        }
    }
}

/// `data` with the CRC-32C of every whole batch rewritten.
fn with_crcs_fixed(data: &[u8]) -> Bytes {
    // baseOffset 8, batchLength 4, partitionLeaderEpoch 4, magic 1, crc 4;
    // the CRC covers attributes (byte 21) to the batch's end.
    let mut out = data.to_vec();
    let mut at = 0usize;
    while out.len() >= at + 21 {
        let len = i32::from_be_bytes([out[at + 8], out[at + 9], out[at + 10], out[at + 11]]);
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|l| (at + 12).checked_add(l))
            .filter(|&end| end <= out.len() && end >= at + 21)
        else {
            break;
        };
        let crc = crc32c::crc32c(&out[at + 21..end]);
        out[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
    Bytes::from(out)
}
