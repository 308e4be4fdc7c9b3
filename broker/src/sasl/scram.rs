//! SCRAM (RFC 5802, with SHA-256 and SHA-512 as RFC 7677 and Kafka's
//! KIP-84 use them): the stored credential, and the server's side of the
//! exchange. PLAIN passwords are checked against the same credentials.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::SaslError;

/// Kafka's bounds on a credential's iteration count.
pub const MIN_ITERATIONS: i32 = 4096;
/// See [`MIN_ITERATIONS`].
pub const MAX_ITERATIONS: i32 = 16384;

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mechanism {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl Mechanism {
    /// Both, in the order PLAIN tries them.
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha512, Mechanism::Sha256];

    /// Its SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// By SASL name.
    pub fn by_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's number for it (AlterUserScramCredentials and
    /// DescribeUserScramCredentials): 1 SHA-256, 2 SHA-512.
    pub fn code(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    /// By Kafka's number.
    pub fn by_code(code: i8) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.code() == code)
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Mechanism::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with this HMAC, one block.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut first = salt.to_vec();
        first.extend_from_slice(&1u32.to_be_bytes());
        let mut u = self.hmac(password, &first);
        let mut out = u.clone();
        for _ in 1..iterations {
            u = self.hmac(password, &u);
            out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
        }
        out
    }
}

/// What the store keeps of a password for one mechanism: never the
/// password, nor anything that would let a reader of the store log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// The salt.
    pub salt: Vec<u8>,
    /// Iterations of [`Mechanism::salted_password`].
    pub iterations: i32,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

impl Credential {
    /// The credential of a salted password (what AlterUserScramCredentials
    /// sends: clients salt the password themselves).
    pub fn from_salted(mechanism: Mechanism, salt: &[u8], iterations: i32, salted: &[u8]) -> Self {
        let client_key = mechanism.hmac(salted, b"Client Key");
        Credential {
            mechanism,
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted, b"Server Key"),
        }
    }

    /// The credential of a password, salted with `salt`.
    pub fn from_password(
        mechanism: Mechanism,
        password: &str,
        salt: &[u8],
        iterations: i32,
    ) -> Self {
        let salted = mechanism.salted_password(password.as_bytes(), salt, iterations as u32);
        Credential::from_salted(mechanism, salt, iterations, &salted)
    }

    /// True when `password` is the one this credential was made of (PLAIN).
    pub fn admits(&self, password: &str) -> bool {
        let other =
            Credential::from_password(self.mechanism, password, &self.salt, self.iterations);
        constant_time_eq(&other.stored_key, &self.stored_key)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The client's first message, parsed.
#[derive(Debug)]
pub struct ClientFirst {
    /// The user name (unescaped).
    pub user: String,
    nonce: String,
    /// Everything after the GS2 header, as sent.
    bare: String,
}

/// Parses `n,[a=authzid],n=user,r=nonce[,extensions]`.
pub fn client_first(message: &[u8]) -> Result<ClientFirst, SaslError> {
    let text = std::str::from_utf8(message).map_err(|_| SaslError::malformed("not UTF-8"))?;
    let rest = match text.split_once(',') {
        Some(("n", rest)) => rest,
        Some(("y" | "p", _)) | Some((_, _)) | None => {
            return Err(SaslError::malformed(
                "channel binding is not supported (the GS2 header must start with n,)",
            ))
        }
    };
    let (_authzid, bare) = rest
        .split_once(',')
        .ok_or_else(|| SaslError::malformed("no GS2 header"))?;
    let mut user = None;
    let mut nonce = None;
    for attr in bare.split(',') {
        match attr.split_once('=') {
            Some(("n", v)) => user = Some(unescape(v)?),
            Some(("r", v)) => nonce = Some(v.to_string()),
            Some(("m", _)) => {
                return Err(SaslError::malformed(
                    "mandatory extensions are not supported",
                ))
            }
            _ => {}
        }
    }
    match (user, nonce) {
        (Some(user), Some(nonce)) if !user.is_empty() && !nonce.is_empty() => Ok(ClientFirst {
            user,
            nonce,
            bare: bare.to_string(),
        }),
        _ => Err(SaslError::malformed("client-first-message needs n= and r=")),
    }
}

/// A user name in SCRAM's escaping (`=2C` for ',' and `=3D` for '=').
fn unescape(name: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(SaslError::malformed("bad escape in the user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The server's half of an exchange after its first message.
#[derive(Debug)]
pub struct Exchange {
    credential: Credential,
    /// Who the client said it is.
    pub user: String,
    client_first_bare: String,
    server_first: String,
    /// The client's nonce, and the whole nonce (the client's and ours).
    client_nonce: String,
    nonce: String,
}

impl Exchange {
    /// Answers the client's first message with the credential's salt and
    /// iterations and a nonce extended by `server_nonce`.
    pub fn start(
        first: ClientFirst,
        credential: Credential,
        server_nonce: &str,
    ) -> (Exchange, String) {
        let nonce = format!("{}{server_nonce}", first.nonce);
        let client_nonce = first.nonce;
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let exchange = Exchange {
            credential,
            user: first.user,
            client_first_bare: first.bare,
            server_first: server_first.clone(),
            client_nonce,
            nonce,
        };
        (exchange, server_first)
    }

    /// Checks the client's proof; on success, the server's final message
    /// (its signature, which proves to the client that the server knew
    /// the credential).
    pub fn finish(&self, message: &[u8]) -> Result<String, SaslError> {
        let text = std::str::from_utf8(message).map_err(|_| SaslError::malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| SaslError::malformed("client-final-message has no proof"))?;
        let mut channel = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            match attr.split_once('=') {
                Some(("c", v)) => channel = Some(v),
                Some(("r", v)) => nonce = Some(v),
                _ => {}
            }
        }
        if channel != Some("biws") && channel != Some("eSws") {
            return Err(SaslError::malformed("unexpected channel binding"));
        }
        // librdkafka before 2.6.1 sends the client's nonce once more in
        // front of the whole one (its PR #4895); Kafka accepts that form
        // since 3.8.1, and so does floe: the proof covers the message as
        // sent either way.
        let doubled = format!("{}{}", self.client_nonce, self.nonce);
        if nonce != Some(self.nonce.as_str()) && nonce != Some(doubled.as_str()) {
            return Err(SaslError::failed("the nonce does not match"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| SaslError::malformed("the proof is not base64"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let m = self.credential.mechanism;
        let signature = m.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(SaslError::bad_credentials());
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if !constant_time_eq(&m.hash(&client_key), &self.credential.stored_key) {
            return Err(SaslError::bad_credentials());
        }
        let server_signature = m.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exchange of RFC 7677, section 3.
    #[test]
    fn the_rfc_7677_exchange_succeeds_and_a_wrong_proof_fails() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential = Credential::from_password(Mechanism::Sha256, "pencil", &salt, 4096);
        let first = client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first.user, "user");
        let (exchange, server_first) =
            Exchange::start(first, credential.clone(), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            exchange.finish(client_final.as_bytes()).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let wrong = client_final.replace("p=dHzb", "p=dHzc");
        assert!(exchange.finish(wrong.as_bytes()).is_err());
        assert!(credential.admits("pencil"));
        assert!(!credential.admits("pencil2"));
        // A nonce that is not the exchange's is refused.
        let other = client_final.replace("r=rOpr", "r=xOpr");
        assert!(exchange.finish(other.as_bytes()).is_err());
    }

    /// librdkafka before 2.6.1 repeats its nonce in front of the whole one;
    /// its proof, made over the message as it sends it, is accepted.
    #[test]
    fn the_old_librdkafka_nonce_is_accepted_with_a_proof_over_it() {
        let m = Mechanism::Sha256;
        let salt = b"salt-of-alice";
        let credential = Credential::from_password(m, "secret", salt, 4096);
        let (exchange, _) = Exchange::start(
            client_first(b"n,,n=alice,r=abc").unwrap(),
            credential,
            "XYZ",
        );
        let salted = m.salted_password(b"secret", salt, 4096);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored = m.hash(&client_key);
        for nonce in ["abcXYZ", "abcabcXYZ"] {
            let without_proof = format!("c=biws,r={nonce}");
            let auth = format!(
                "n=alice,r=abc,r=abcXYZ,s={},i=4096,{without_proof}",
                B64.encode(salt)
            );
            let signature = m.hmac(&stored, auth.as_bytes());
            let proof: Vec<u8> = client_key
                .iter()
                .zip(&signature)
                .map(|(k, s)| k ^ s)
                .collect();
            let message = format!("{without_proof},p={}", B64.encode(proof));
            assert!(exchange.finish(message.as_bytes()).is_ok(), "{nonce}");
        }
        assert!(exchange.finish(b"c=biws,r=abcabcabcXYZ,p=AAAA").is_err());
    }

    #[test]
    fn user_names_are_unescaped_and_bad_messages_refused() {
        assert_eq!(client_first(b"n,,n=a=2Cb=3Dc,r=x").unwrap().user, "a,b=c");
        assert!(client_first(b"n,,n=a=2,r=x").is_err());
        assert!(client_first(b"p=tls-unique,,n=a,r=x").is_err());
        assert!(client_first(b"n,,r=x").is_err());
        assert!(client_first(b"n,,n=a,m=ext,r=x").is_err());
    }
}
