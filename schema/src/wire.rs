//! The Confluent wire format: magic byte 0, a big-endian 4-byte schema id,
//! then (for protobuf) the message indexes that locate the message type in
//! its file, then the protobuf payload.
//!
//! Message indexes are a zigzag varint count followed by that many zigzag
//! varint indexes; the common case, the first message of the file, is the
//! single byte 0.

use crate::scan::{read_varint, write_varint, zigzag64};

/// A parsed wire prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WirePrefix {
    /// Schema id in the registry.
    pub schema_id: i32,
    /// Path to the message: index among the file's top-level messages,
    /// then among nested messages.
    pub message_indexes: Vec<i32>,
    /// Length of the prefix; the payload starts here.
    pub len: usize,
}

/// Why a value does not carry a valid prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than magic byte + id.
    #[error("value is {0} bytes, too short for the schema registry prefix (magic byte and 4-byte schema id)")]
    TooShort(usize),
    /// First byte is not 0.
    #[error("value does not start with the schema registry magic byte 0 (found {0:#04x})")]
    BadMagic(u8),
    /// The message indexes do not parse.
    #[error("malformed message indexes after the schema id")]
    BadIndexes,
}

fn unzigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Parses the prefix of a protobuf value.
pub fn parse_prefix(value: &[u8]) -> Result<WirePrefix, WireError> {
    if value.len() < 5 {
        return Err(WireError::TooShort(value.len()));
    }
    if value[0] != 0 {
        return Err(WireError::BadMagic(value[0]));
    }
    let schema_id = i32::from_be_bytes([value[1], value[2], value[3], value[4]]);
    let mut pos = 5;
    let count = zigzag64(read_varint(value, &mut pos).ok_or(WireError::BadIndexes)?);
    let mut message_indexes = Vec::new();
    if count == 0 {
        message_indexes.push(0);
    } else {
        // A message nested deeper than this is not a real schema.
        if !(1..=64).contains(&count) {
            return Err(WireError::BadIndexes);
        }
        for _ in 0..count {
            let i = zigzag64(read_varint(value, &mut pos).ok_or(WireError::BadIndexes)?);
            message_indexes.push(i32::try_from(i).map_err(|_| WireError::BadIndexes)?);
        }
    }
    Ok(WirePrefix {
        schema_id,
        message_indexes,
        len: pos,
    })
}

/// Encodes a prefix (the inverse of [`parse_prefix`]).
pub fn encode_prefix(schema_id: i32, message_indexes: &[i32]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&schema_id.to_be_bytes());
    if message_indexes == [0] || message_indexes.is_empty() {
        out.push(0);
    } else {
        write_varint(&mut out, unzigzag(message_indexes.len() as i64));
        for i in message_indexes {
            write_varint(&mut out, unzigzag(i64::from(*i)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_round_trip() {
        for idx in [vec![0], vec![2], vec![1, 0, 3]] {
            let mut v = encode_prefix(77, &idx);
            let len = v.len();
            v.extend_from_slice(b"\x08\x01");
            let p = parse_prefix(&v).unwrap();
            assert_eq!((p.schema_id, p.message_indexes, p.len), (77, idx, len));
        }
        assert_eq!(encode_prefix(1, &[0]), vec![0, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn bad_prefixes_are_refused() {
        assert_eq!(parse_prefix(b"\0\0"), Err(WireError::TooShort(2)));
        assert_eq!(
            parse_prefix(b"\x01\0\0\0\x01\0"),
            Err(WireError::BadMagic(1))
        );
        assert_eq!(parse_prefix(b"\0\0\0\0\x01"), Err(WireError::BadIndexes));
        assert_eq!(
            parse_prefix(b"\0\0\0\0\x01\xff"),
            Err(WireError::BadIndexes)
        );
    }
}
