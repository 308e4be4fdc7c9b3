//! The Kafka listeners a broker opens, named and configured as Kafka's
//! `listeners`, `advertised.listeners` and `listener.security.protocol.map`:
//! `PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093`, each listener
//! with its security protocol (its name, unless the map names another)
//! and the address clients of that listener are told in Metadata,
//! FindCoordinator and leader hints. A client is always told the addresses
//! of the listener it came in through, on every broker.

use std::fmt;

/// A listener's security protocol, as Kafka names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// No TLS, no login.
    Plaintext,
    /// TLS (mTLS with client certificates, if asked).
    Ssl,
    /// SASL logins without TLS.
    SaslPlaintext,
    /// SASL logins over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// The protocol named `name` (Kafka's spelling, any case).
    pub fn by_name(name: &str) -> Option<SecurityProtocol> {
        Some(match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    /// True for SSL and SASL_SSL.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// True for SASL_PLAINTEXT and SASL_SSL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        })
    }
}

/// One listener, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// Its name, upper case (`PLAINTEXT`, `INTERNAL`, ...).
    pub name: String,
    /// The address it binds, `host:port` (an empty host in the flag
    /// binds every interface).
    pub bind: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// What its clients are told to connect to, if not the bound address.
    pub advertised: Option<(String, i32)>,
    /// The principal of every connection, on a listener that does not
    /// authenticate (instead of `anonymous`).
    pub principal: Option<String>,
}

/// The flags that describe the listeners, as given.
#[derive(Debug, Default, Clone)]
pub struct ListenerFlags<'a> {
    /// `--listeners`, Kafka's form; None for the single listener of
    /// `--kafka-listen` and `--kafka-security-protocol`.
    pub listeners: Option<&'a str>,
    /// `--kafka-listen`.
    pub kafka_listen: &'a str,
    /// `--kafka-security-protocol`.
    pub kafka_security_protocol: &'a str,
    /// `--advertised-listeners`, Kafka's form.
    pub advertised_listeners: Option<&'a str>,
    /// `--advertised-listener`, host:port of the single listener.
    pub advertised_listener: Option<&'a str>,
    /// `--listener-security-protocol-map`, `NAME:PROTOCOL,...`.
    pub protocol_map: Option<&'a str>,
    /// `--listener-principals`, `NAME=principal,...`.
    pub principals: Option<&'a str>,
}

/// The listeners the flags describe, in their order, or what is wrong
/// with them.
pub fn from_flags(flags: &ListenerFlags<'_>) -> Result<Vec<ListenerSpec>, String> {
    let mut specs = match flags.listeners {
        None => {
            let protocol = SecurityProtocol::by_name(flags.kafka_security_protocol)
                .ok_or_else(|| {
                    format!(
                        "--kafka-security-protocol {} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
                        flags.kafka_security_protocol
                    )
                })?;
            let advertised = flags
                .advertised_listener
                .map(|a| host_port(a, "--advertised-listener"))
                .transpose()?;
            vec![ListenerSpec {
                name: protocol.to_string(),
                bind: flags.kafka_listen.to_string(),
                protocol,
                advertised,
                principal: None,
            }]
        }
        Some(listeners) => {
            if flags.advertised_listener.is_some() {
                return Err(
                    "--advertised-listener is for the single listener of --kafka-listen; \
                     with --listeners use --advertised-listeners"
                        .into(),
                );
            }
            let map = protocol_map(flags.protocol_map.unwrap_or(""))?;
            let mut specs = Vec::new();
            for (name, host, port) in urls(listeners, "--listeners")? {
                let protocol = match map.iter().find(|(n, _)| *n == name) {
                    Some((_, p)) => *p,
                    None => SecurityProtocol::by_name(&name).ok_or_else(|| {
                        format!(
                            "listener {name} has no security protocol: name it in \
                             --listener-security-protocol-map ({name}:SASL_SSL, ...)"
                        )
                    })?,
                };
                if specs.iter().any(|s: &ListenerSpec| s.name == name) {
                    return Err(format!("--listeners names {name} twice"));
                }
                let bind = match host.as_str() {
                    "" => format!("0.0.0.0:{port}"),
                    h if h.contains(':') => format!("[{h}]:{port}"),
                    h => format!("{h}:{port}"),
                };
                specs.push(ListenerSpec {
                    bind,
                    name,
                    protocol,
                    advertised: None,
                    principal: None,
                });
            }
            if let Some(advertised) = flags.advertised_listeners {
                for (name, host, port) in urls(advertised, "--advertised-listeners")? {
                    let spec = specs.iter_mut().find(|s| s.name == name).ok_or_else(|| {
                        format!("--advertised-listeners names {name}, which --listeners does not")
                    })?;
                    if host.is_empty() {
                        return Err(format!(
                            "--advertised-listeners: {name} needs a host clients can reach"
                        ));
                    }
                    spec.advertised = Some((host, port));
                }
            }
            specs
        }
    };
    if specs.is_empty() {
        return Err("--listeners names no listener".into());
    }
    for (name, principal) in pairs(flags.principals.unwrap_or(""), '=', "--listener-principals")? {
        let spec = specs
            .iter_mut()
            .find(|s| s.name == name.to_ascii_uppercase())
            .ok_or_else(|| format!("--listener-principals names {name}, which is no listener"))?;
        if spec.protocol.uses_sasl() {
            return Err(format!(
                "--listener-principals: {name} is a SASL listener, where the login names the principal"
            ));
        }
        spec.principal = Some(
            principal
                .strip_prefix("User:")
                .unwrap_or(&principal)
                .to_string(),
        );
    }
    Ok(specs)
}

/// `NAME://host:port` entries, comma-separated.
fn urls(list: &str, flag: &str) -> Result<Vec<(String, String, i32)>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (name, address) = entry
                .split_once("://")
                .ok_or_else(|| format!("{flag}: {entry} is not NAME://host:port"))?;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "{flag}: {name:?} is not a listener name (letters, digits, _)"
                ));
            }
            let (host, port) = host_port(address, flag)?;
            Ok((name.to_ascii_uppercase(), host, port))
        })
        .collect()
}

/// `host:port` (an IPv6 host in brackets), the host possibly empty.
fn host_port(address: &str, flag: &str) -> Result<(String, i32), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{flag}: {address} is not host:port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{flag}: bad port in {address}"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), i32::from(port)))
}

/// `NAME:PROTOCOL` entries.
fn protocol_map(map: &str) -> Result<Vec<(String, SecurityProtocol)>, String> {
    pairs(map, ':', "--listener-security-protocol-map")?
        .into_iter()
        .map(|(name, protocol)| {
            let p = SecurityProtocol::by_name(&protocol).ok_or_else(|| {
                format!(
                    "--listener-security-protocol-map: {protocol} is not one of PLAINTEXT, SSL, \
                     SASL_PLAINTEXT, SASL_SSL"
                )
            })?;
            Ok((name.to_ascii_uppercase(), p))
        })
        .collect()
}

/// `a<sep>b` entries, comma-separated, both sides non-empty.
fn pairs(list: &str, sep: char, flag: &str) -> Result<Vec<(String, String)>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| match entry.split_once(sep) {
            Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
            _ => Err(format!("{flag}: {entry} is not NAME{sep}VALUE")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(listeners: Option<&'static str>) -> ListenerFlags<'static> {
        ListenerFlags {
            listeners,
            kafka_listen: "127.0.0.1:9092",
            kafka_security_protocol: "PLAINTEXT",
            ..Default::default()
        }
    }

    #[test]
    fn the_single_listener_flags_make_one_listener_named_after_its_protocol() {
        let mut f = flags(None);
        f.kafka_security_protocol = "SASL_SSL";
        f.advertised_listener = Some("broker-1.example:19092");
        let specs = from_flags(&f).unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].name, "SASL_SSL");
        assert_eq!(specs[0].bind, "127.0.0.1:9092");
        assert_eq!(specs[0].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(
            specs[0].advertised,
            Some(("broker-1.example".to_string(), 19092))
        );
    }

    #[test]
    fn named_listeners_take_protocols_from_the_map_and_addresses_from_advertised() {
        let mut f = flags(Some(
            "PLAINTEXT://127.0.0.1:9092, internal://:9094,SSL://[::1]:9093",
        ));
        f.protocol_map = Some("INTERNAL:SASL_PLAINTEXT");
        f.advertised_listeners = Some("INTERNAL://10.0.0.5:9094");
        f.principals = Some("PLAINTEXT=User:etl");
        let specs = from_flags(&f).unwrap();
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["PLAINTEXT", "INTERNAL", "SSL"]);
        assert_eq!(specs[1].protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!(specs[1].bind, "0.0.0.0:9094");
        assert_eq!(specs[1].advertised, Some(("10.0.0.5".to_string(), 9094)));
        assert_eq!(specs[2].bind, "[::1]:9093");
        assert_eq!(specs[2].protocol, SecurityProtocol::Ssl);
        assert_eq!(specs[0].principal.as_deref(), Some("etl"));
        assert_eq!(specs[2].advertised, None);
    }

    #[test]
    fn mistakes_are_named() {
        let err = |f: ListenerFlags<'static>| from_flags(&f).unwrap_err();
        assert!(err(flags(Some("EXTERNAL://:9092"))).contains("--listener-security-protocol-map"));
        assert!(err(flags(Some("PLAINTEXT://:9092,PLAINTEXT://:9093"))).contains("twice"));
        assert!(err(flags(Some("PLAINTEXT:9092"))).contains("NAME://host:port"));
        assert!(err(flags(Some("PLAINTEXT://:99999"))).contains("bad port"));
        assert!(err(flags(Some(""))).contains("no listener"));
        let mut f = flags(Some("PLAINTEXT://:9092"));
        f.advertised_listeners = Some("SSL://h:9093");
        assert!(err(f).contains("which --listeners does not"));
        let mut f = flags(Some("PLAINTEXT://:9092"));
        f.advertised_listener = Some("h:9092");
        assert!(err(f).contains("--advertised-listeners"));
        let mut f = flags(Some("SASL_SSL://:9092"));
        f.principals = Some("SASL_SSL=alice");
        assert!(err(f).contains("SASL listener"));
        let mut f = flags(Some("A://:9092"));
        f.protocol_map = Some("A:TLS");
        assert!(err(f).contains("not one of"));
    }
}
