//! The keys JWTs are checked against: a JWKS document (RFC 7517) from a
//! file, read again when it changes, or from an identity provider's
//! `jwks_uri` (http or https), fetched at startup, again every refresh
//! interval (Kafka's `sasl.oauthbearer.jwks.endpoint.refresh.ms`), and
//! soon after a token names a key id it does not hold (a key rotated in;
//! at most every [`MIN_REFETCH`]). A document that no longer reads or
//! cannot be fetched is logged and the keys read before are kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use tokio::sync::Notify;
use tracing::{info, warn};

/// How often a key file's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(2);

/// The shortest time between two fetches of a JWKS URL.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);

/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One trusted public key.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) kind: KeyKind,
}

#[derive(Debug, Clone)]
pub(crate) enum KeyKind {
    /// Modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed point (0x04 || x || y) on P-256 or P-384.
    Ec { p384: bool, point: Vec<u8> },
}

/// The keys of a JWKS document; keys of other types are skipped.
fn parse_jwks(text: &str) -> Result<Vec<Key>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" array")?;
    let field = |k: &Value, name: &str| -> Result<Vec<u8>, String> {
        let text = k
            .get(name)
            .and_then(Value::as_str)
            .ok_or(format!("a key lacks \"{name}\""))?;
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| format!("\"{name}\" is not base64url"))
    };
    let mut out = Vec::new();
    for k in keys {
        let kid = k.get("kid").and_then(Value::as_str).map(String::from);
        let kind = match (
            k.get("kty").and_then(Value::as_str),
            k.get("crv").and_then(Value::as_str),
        ) {
            (Some("RSA"), _) => KeyKind::Rsa {
                n: field(k, "n")?,
                e: field(k, "e")?,
            },
            (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => {
                let mut point = vec![4];
                point.extend(field(k, "x")?);
                point.extend(field(k, "y")?);
                KeyKind::Ec {
                    p384: crv == "P-384",
                    point,
                }
            }
            _ => continue,
        };
        out.push(Key { kid, kind });
    }
    if out.is_empty() {
        return Err("no RSA or EC (P-256, P-384) key".into());
    }
    Ok(out)
}

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A file.
    File(PathBuf),
    /// An http(s) URL.
    Url(String),
}

impl JwksSource {
    /// `--oauth-jwks`: a URL if it starts with `http://` or `https://`,
    /// else a path.
    pub fn parse(text: &str) -> JwksSource {
        if text.starts_with("https://") || text.starts_with("http://") {
            JwksSource::Url(text.to_string())
        } else {
            JwksSource::File(PathBuf::from(text))
        }
    }
}

/// The keys as last read.
struct Loaded {
    keys: Arc<Vec<Key>>,
    /// The file's modification time when it was read.
    modified: Option<SystemTime>,
    /// When the file was last looked at.
    checked: Instant,
}

/// The trusted keys.
pub struct KeySet {
    /// The file they come from; None for a URL.
    file: Option<PathBuf>,
    loaded: Mutex<Loaded>,
    /// Wakes a URL's refresher early.
    wanted: Notify,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_file(path: &Path) -> Result<Vec<Key>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    parse_jwks(&text)
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<Key>, String> {
    let response = client
        .get(url)
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("fetching {url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    let text = response
        .text()
        .await
        .map_err(|e| format!("reading {url}: {e}"))?;
    parse_jwks(&text).map_err(|e| format!("{url}: {e}"))
}

impl KeySet {
    fn with(file: Option<PathBuf>, keys: Vec<Key>) -> KeySet {
        KeySet {
            loaded: Mutex::new(Loaded {
                keys: Arc::new(keys),
                modified: file.as_deref().and_then(modified),
                checked: Instant::now(),
            }),
            file,
            wanted: Notify::new(),
        }
    }

    /// The keys of a file, which must read now.
    pub fn file(path: &Path) -> Result<KeySet, String> {
        Ok(KeySet::with(Some(path.to_path_buf()), read_file(path)?))
    }

    /// The keys of `source`, which must read (or be fetched) now; a URL's
    /// are fetched again every `refresh`.
    pub async fn open(source: &JwksSource, refresh: Duration) -> Result<Arc<KeySet>, String> {
        let url = match source {
            JwksSource::File(path) => return KeySet::file(path).map(Arc::new),
            JwksSource::Url(url) => url.clone(),
        };
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let set = Arc::new(KeySet::with(None, fetch(&client, &url).await?));
        let weak = Arc::downgrade(&set);
        tokio::spawn(refresher(weak, client, url, refresh.max(MIN_REFETCH)));
        Ok(set)
    }

    /// The keys in force (a file's read again if it changed).
    pub(crate) fn keys(&self) -> Arc<Vec<Key>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(path) = &self.file {
            if loaded.checked.elapsed() >= RECHECK {
                loaded.checked = Instant::now();
                let now = modified(path);
                if now != loaded.modified {
                    loaded.modified = now;
                    match read_file(path) {
                        Ok(keys) => {
                            info!(path = %path.display(), "JWKS read again");
                            loaded.keys = Arc::new(keys);
                        }
                        Err(e) => {
                            warn!(error = %e, "the changed JWKS file is not usable; keeping the keys read before")
                        }
                    }
                }
            }
        }
        loaded.keys.clone()
    }

    /// A token named a key id that no key has: a URL is fetched again soon.
    pub(crate) fn unknown_key(&self) {
        if self.file.is_none() {
            self.wanted.notify_one();
        }
    }

    fn replace(&self, keys: Vec<Key>) {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner()).keys = Arc::new(keys);
    }
}

/// Fetches the URL's keys every `refresh`, or sooner when asked, for as
/// long as the key set lives.
async fn refresher(set: Weak<KeySet>, client: reqwest::Client, url: String, refresh: Duration) {
    loop {
        tokio::time::sleep(MIN_REFETCH).await;
        let Some(strong) = set.upgrade() else {
            return;
        };
        let asked = async {
            strong.wanted.notified().await;
        };
        tokio::select! {
            () = asked => {}
            () = tokio::time::sleep(refresh.saturating_sub(MIN_REFETCH)) => {}
        }
        match fetch(&client, &url).await {
            Ok(keys) => {
                info!(url, keys = keys.len(), "JWKS fetched again");
                strong.replace(keys);
            }
            Err(e) => {
                warn!(error = %e, "fetching the JWKS failed; keeping the keys fetched before")
            }
        }
    }
}
