//! The principal of a client certificate (mTLS): its subject's
//! distinguished name as Kafka's default principal builder writes it (RFC
//! 2253: the last RDN first, `CN=alice,OU=eng,O=corp`), read from the
//! certificate's DER with a minimal reader of the few structures on the
//! way to the subject.

/// One DER element: its tag and contents, and what follows it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        n if n < 0x80 => (n as usize, rest),
        n => {
            let count = (n & 0x7f) as usize;
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let len = rest[..count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, &rest[count..])
        }
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// `[0]` EXPLICIT, the certificate's version.
const VERSION: u8 = 0xa0;

/// The short names Kafka's principal builder uses, by OID (2.5.4.x, and
/// the e-mail address and domain component).
fn attribute_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x0b] => "OU",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x09] => "STREET",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        _ => return None,
    })
}

/// RFC 2253's escaping of a value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == value.chars().count() - 1 && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The subject of a DER certificate as an RFC 2253 string; None if the
/// certificate cannot be read or names an attribute as other than text.
pub fn subject_of(certificate: &[u8]) -> Option<String> {
    let (tag, cert, _) = element(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = element(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    // version (optional), serial number, signature algorithm, issuer,
    // validity, then the subject.
    let (tag, _, after) = element(rest)?;
    if tag == VERSION {
        rest = after;
    }
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (tag, subject, _) = element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rdns = Vec::new();
    let mut rest = subject;
    while !rest.is_empty() {
        let (tag, set, after) = element(rest)?;
        if tag != SET {
            return None;
        }
        let mut parts = Vec::new();
        let mut inner = set;
        while !inner.is_empty() {
            let (_, pair, next) = element(inner)?;
            let (tag, oid, value) = element(pair)?;
            if tag != OID {
                return None;
            }
            let (_, text, _) = element(value)?;
            let text = std::str::from_utf8(text).ok()?;
            let name = attribute_name(oid)
                .map(str::to_string)
                .unwrap_or_else(|| format!("OID.{}", oid_text(oid)));
            parts.push(format!("{name}={}", escape(text)));
            inner = next;
        }
        rdns.push(parts.join("+"));
        rest = after;
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// An OID in dotted form.
fn oid_text(oid: &[u8]) -> String {
    let Some((&first, rest)) = oid.split_first() else {
        return String::new();
    };
    let mut parts = vec![(first / 40) as u64, (first % 40) as u64];
    let mut acc = 0u64;
    for b in rest {
        acc = (acc << 7) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            parts.push(acc);
            acc = 0;
        }
    }
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER element from its tag and contents.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match contents.len() {
            n if n < 0x80 => out.push(n as u8),
            n => {
                out.push(0x82);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(contents);
        out
    }

    fn rdn(oid: &[u8], value: &str) -> Vec<u8> {
        let pair = [tlv(OID, oid), tlv(0x0c, value.as_bytes())].concat();
        tlv(SET, &tlv(SEQUENCE, &pair))
    }

    #[test]
    fn the_subject_reads_last_rdn_first_with_escapes() {
        let subject = tlv(
            SEQUENCE,
            &[
                rdn(&[0x55, 0x04, 0x06], "DE"),
                rdn(&[0x55, 0x04, 0x0a], "Acme, Inc"),
                rdn(&[0x55, 0x04, 0x03], "alice"),
            ]
            .concat(),
        );
        let padding = "x".repeat(200);
        let tbs = tlv(
            SEQUENCE,
            &[
                tlv(VERSION, &tlv(0x02, &[2])),
                tlv(0x02, &[1, 2, 3]),
                tlv(SEQUENCE, &tlv(OID, &[0x2a, 0x86, 0x48])),
                tlv(SEQUENCE, padding.as_bytes()),
                tlv(SEQUENCE, b"validity"),
                subject,
            ]
            .concat(),
        );
        let cert = tlv(SEQUENCE, &[tbs, tlv(SEQUENCE, b"sig")].concat());
        assert_eq!(
            subject_of(&cert).as_deref(),
            Some("CN=alice,O=Acme\\, Inc,C=DE")
        );
        assert_eq!(subject_of(&cert[..cert.len() - 3]), None, "truncated");
        assert_eq!(subject_of(b"\x30\x84\xff\xff\xff\xff"), None);
        assert_eq!(
            oid_text(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            "1.2.840.113549"
        );
    }
}
