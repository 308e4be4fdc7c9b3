//! TLS for the Kafka listener (rustls): the server's certificate chain and
//! key from PEM files, read again when either file changes, so a renewed
//! certificate applies to new connections without a restart (open ones
//! keep theirs); optionally, client certificates required and checked
//! against a CA bundle (mTLS; [`super::client_ca`], read again when it
//! changes too).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use super::client_ca::ClientCa;

/// How often the files are looked at for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// The certificate in force, and the files it came from.
#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    modified: (Option<SystemTime>, Option<SystemTime>),
    key: Arc<CertifiedKey>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads a chain and its key; the error says which file is wrong.
fn load(cert: &Path, key: &Path) -> anyhow::Result<Loaded> {
    let modified = (modified(cert), modified(key));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .with_context(|| format!("reading the TLS certificate chain {}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{} holds no certificate (PEM, BEGIN CERTIFICATE)",
        cert.display()
    );
    let private = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS private key {}", key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&private)
        .with_context(|| format!("{} is not a usable private key", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .with_context(|| format!("{} is not the key of {}", key.display(), cert.display()))?;
    Ok(Loaded {
        modified,
        key: Arc::new(certified),
    })
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .key
                .clone(),
        )
    }
}

impl Reloading {
    /// Loads the files again if either changed; a bad new pair is logged
    /// and the one in force kept.
    fn reload_if_changed(&self) {
        let now = (modified(&self.cert), modified(&self.key));
        if self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .modified
            == now
        {
            return;
        }
        match load(&self.cert, &self.key) {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded;
                info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                warn!(
                    error = format!("{e:#}"),
                    "TLS certificate changed but cannot be used; keeping the one in force"
                );
                // Not again until the files change again.
                self.current
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .modified = now;
            }
        }
    }
}

/// An acceptor serving the chain in `cert` with the key in `key` (PEM),
/// watching both for changes while it lives. With `client_ca` (PEM, one or
/// more CA certificates), a client certificate must be one of them signed
/// (mTLS), and every client must present one if `certificate_required`;
/// its subject becomes the connection's principal
/// ([`super::certificate_principal`]).
pub fn acceptor(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    certificate_required: bool,
) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = Arc::new(Reloading {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        current: RwLock::new(load(cert, key)?),
    });
    let client_ca = client_ca
        .map(|ca| ClientCa::open(ca, provider.clone(), certificate_required).map(Arc::new))
        .transpose()?;
    let watched: Weak<Reloading> = Arc::downgrade(&resolver);
    let watched_ca: Option<Weak<ClientCa>> = client_ca.as_ref().map(Arc::downgrade);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RELOAD_CHECK).await;
            match watched.upgrade() {
                Some(r) => r.reload_if_changed(),
                None => return,
            }
            if let Some(ca) = watched_ca.as_ref().and_then(Weak::upgrade) {
                ca.reload_if_changed();
            }
        }
    });
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let config = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(ca),
    }
    .with_cert_resolver(resolver);
    Ok(TlsAcceptor::from(Arc::new(config)))
}
