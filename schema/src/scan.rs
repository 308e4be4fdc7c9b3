//! A protobuf wire-format scanner: one field at a time, no allocation.
//!
//! Validation and redaction walk record values with it instead of decoding
//! them into dynamic messages. Groups (wire types 3 and 4, deprecated since
//! proto2) are reported as malformed: callers fall back to the dynamic
//! decoder, which knows them.

/// Bytes that are not a well-formed protobuf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("value is not a well-formed protobuf message")]
pub struct Malformed;

/// One field's value as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: bytes, strings, messages, packed lists.
    Len(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// One field: its number, value, and the range of bytes it occupies
/// (tag included).
#[derive(Debug, Clone, Copy)]
pub struct WireField<'a> {
    /// Field number (never 0).
    pub number: u32,
    /// The value.
    pub value: WireValue<'a>,
    /// Byte offset of the tag in the scanned buffer.
    pub start: usize,
    /// Byte offset just past the value.
    pub end: usize,
}

/// Reads a base-128 varint at `*pos`; None if truncated, longer than ten
/// bytes, or overflowing 64 bits (as prost refuses).
pub fn read_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return None;
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Appends a base-128 varint.
pub fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes a zigzag-encoded `sint32`.
pub fn zigzag32(v: u64) -> i32 {
    let n = v as u32;
    ((n >> 1) as i32) ^ -((n & 1) as i32)
}

/// Decodes a zigzag-encoded `sint64`.
pub fn zigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The items of a packed repeated field, whose items have `wire_type`
/// (0 varint, 1 fixed64, 5 fixed32). Yields `Err(Malformed)` once and
/// stops at a truncated item.
pub fn packed(
    bytes: &[u8],
    wire_type: u8,
) -> impl Iterator<Item = Result<WireValue<'_>, Malformed>> {
    let mut pos = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= bytes.len() {
            return None;
        }
        let item = match wire_type {
            5 => bytes.get(pos..pos + 4).map(|b| {
                pos += 4;
                WireValue::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }),
            1 => bytes.get(pos..pos + 8).map(|b| {
                pos += 8;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                WireValue::Fixed64(u64::from_le_bytes(a))
            }),
            _ => read_varint(bytes, &mut pos).map(WireValue::Varint),
        };
        failed = item.is_none();
        Some(item.ok_or(Malformed))
    })
}

/// Iterates the fields of one message's bytes. Yields `Err(Malformed)`
/// once and stops at the first malformed field.
pub struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Scanner<'a> {
    /// Scans `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Scanner {
            buf,
            pos: 0,
            failed: false,
        }
    }

    fn field(&mut self) -> Option<WireField<'a>> {
        let start = self.pos;
        let tag = read_varint(self.buf, &mut self.pos)?;
        let number = u32::try_from(tag >> 3).ok().filter(|n| *n != 0)?;
        let value = match tag & 7 {
            0 => WireValue::Varint(read_varint(self.buf, &mut self.pos)?),
            1 => {
                let b = self.buf.get(self.pos..self.pos + 8)?;
                self.pos += 8;
                WireValue::Fixed64(u64::from_le_bytes(b.try_into().ok()?))
            }
            2 => {
                let len = usize::try_from(read_varint(self.buf, &mut self.pos)?).ok()?;
                let end = self.pos.checked_add(len)?;
                let b = self.buf.get(self.pos..end)?;
                self.pos = end;
                WireValue::Len(b)
            }
            5 => {
                let b = self.buf.get(self.pos..self.pos + 4)?;
                self.pos += 4;
                WireValue::Fixed32(u32::from_le_bytes(b.try_into().ok()?))
            }
            _ => return None,
        };
        Some(WireField {
            number,
            value,
            start,
            end: self.pos,
        })
    }
}

impl<'a> Iterator for Scanner<'a> {
    type Item = Result<WireField<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        match self.field() {
            Some(f) => Some(Ok(f)),
            None => {
                self.failed = true;
                Some(Err(Malformed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_every_wire_type_and_stops_at_garbage() {
        let mut b = Vec::new();
        write_varint(&mut b, 1 << 3);
        write_varint(&mut b, 300);
        write_varint(&mut b, (2 << 3) | 1);
        b.extend_from_slice(&7u64.to_le_bytes());
        write_varint(&mut b, (3 << 3) | 2);
        write_varint(&mut b, 2);
        b.extend_from_slice(b"hi");
        write_varint(&mut b, (4 << 3) | 5);
        b.extend_from_slice(&9u32.to_le_bytes());
        let fields: Vec<_> = Scanner::new(&b).map(|f| f.unwrap()).collect();
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[0].value, WireValue::Varint(300));
        assert_eq!(fields[1].value, WireValue::Fixed64(7));
        assert_eq!(fields[2].value, WireValue::Len(b"hi"));
        assert_eq!(fields[3].value, WireValue::Fixed32(9));
        assert_eq!(fields[3].end, b.len());
        // A group, a truncated length, field number zero.
        for bad in [&[0x0b_u8][..], &[0x0a, 0x05, b'a'], &[0x00, 0x01]] {
            let got: Vec<_> = Scanner::new(bad).collect();
            assert_eq!(got.len(), 1);
            assert!(got[0].is_err());
        }
    }
}
