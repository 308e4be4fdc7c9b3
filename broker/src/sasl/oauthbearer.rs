//! OAUTHBEARER (RFC 7628), as Kafka's clients speak it: one message,
//! `n,[a=authzid],` then `auth=Bearer <token>` and any extensions, each
//! ended by 0x01, and a final 0x01. The token is a JWT checked by
//! [`JwtVerifier`]; an authzid, if sent, must name the token's principal.

use super::SaslError;
use crate::jwt::{now_seconds, JwtVerifier, Verified};

/// The token (and the authzid, if any) of a client's message.
fn parse(message: &[u8]) -> Result<(Option<&str>, &str), SaslError> {
    let text = std::str::from_utf8(message).map_err(|_| SaslError::malformed("not UTF-8"))?;
    let (gs2, rest) = text
        .split_once('\u{1}')
        .ok_or_else(|| SaslError::malformed("OAUTHBEARER: no key-value pairs"))?;
    let mut header = gs2.split(',');
    let (Some("n" | "y"), Some(authzid), Some(""), None) =
        (header.next(), header.next(), header.next(), header.next())
    else {
        return Err(SaslError::malformed("OAUTHBEARER: bad GS2 header"));
    };
    let authzid = match authzid {
        "" => None,
        a => Some(
            a.strip_prefix("a=")
                .ok_or_else(|| SaslError::malformed("OAUTHBEARER: bad authzid"))?,
        ),
    };
    let token = rest
        .split('\u{1}')
        .find_map(|kv| kv.strip_prefix("auth="))
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| SaslError::malformed("OAUTHBEARER: no `auth=Bearer <token>`"))?;
    Ok((authzid, token))
}

/// Checks a client's message; the principal and expiry of its token.
pub fn authenticate(message: &[u8], jwt: Option<&JwtVerifier>) -> Result<Verified, SaslError> {
    let Some(jwt) = jwt else {
        return Err(SaslError::failed("no token keys are configured"));
    };
    let (authzid, token) = parse(message)?;
    let verified = jwt
        .verify(token, now_seconds())
        .map_err(|e| SaslError::failed(&e.to_string()))?;
    if authzid.is_some_and(|a| a != verified.principal) {
        return Err(SaslError::failed(
            "the authorization id is not the token's principal",
        ));
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_messages_kafka_clients_send_parse() {
        assert_eq!(
            parse(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01"),
            Ok((None, "abc.def.ghi"))
        );
        assert_eq!(
            parse(b"n,a=alice,\x01host=x\x01auth=Bearer t\x01ext=1\x01\x01"),
            Ok((Some("alice"), "t"))
        );
        assert!(parse(b"n,,\x01auth=Basic t\x01\x01").is_err());
        assert!(parse(b"p=x,,\x01auth=Bearer t\x01\x01").is_err());
        assert!(parse(b"garbage").is_err());
    }
}
