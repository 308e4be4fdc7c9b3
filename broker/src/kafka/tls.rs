//! TLS for the Kafka listener (rustls): the server's certificate chain and
//! key from PEM files, read again when either file changes, so a renewed
//! certificate applies to new connections without a restart (open ones
//! keep theirs); optionally, client certificates required and checked
//! against a CA bundle (mTLS; the bundle is read at startup).

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
/// more CA certificates), every client must present a certificate one of
/// them signed (mTLS); its subject becomes the connection's principal
/// ([`super::certificate_principal`]).
pub fn acceptor(cert: &Path, key: &Path, client_ca: Option<&Path>) -> anyhow::Result<TlsAcceptor> {
    let resolver = Arc::new(Reloading {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        current: RwLock::new(load(cert, key)?),
    });
    let watched: Weak<Reloading> = Arc::downgrade(&resolver);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RELOAD_CHECK).await;
            match watched.upgrade() {
                Some(r) => r.reload_if_changed(),
                None => return,
            }
        }
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let config = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("reading the client CA {}", ca.display()))?
            {
                let c = c.with_context(|| format!("reading the client CA {}", ca.display()))?;
                roots.add(c).with_context(|| {
                    format!("{} holds an unusable CA certificate", ca.display())
                })?;
            }
            anyhow::ensure!(
                !roots.is_empty(),
                "{} holds no CA certificate",
                ca.display()
            );
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .context("the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    }
    .with_cert_resolver(resolver);
    Ok(TlsAcceptor::from(Arc::new(config)))
}
