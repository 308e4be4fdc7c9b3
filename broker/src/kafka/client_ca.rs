//! The CA bundle that signs client certificates (mTLS), read again when
//! its file changes: a CA added (or one removed) applies to new
//! connections without a restart, as a renewed server certificate does
//! ([`super::tls`]). A bundle that no longer reads is logged and the one
//! in force kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use anyhow::Context;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tracing::{info, warn};

/// The verifier of client certificates against the bundle in force.
#[derive(Debug)]
pub struct ClientCa {
    path: PathBuf,
    /// False where a client may come without a certificate (HTTP, which
    /// has other logins); one it presents must still be signed.
    mandatory: bool,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    modified: Option<SystemTime>,
    verifier: Arc<dyn ClientCertVerifier>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A verifier requiring a certificate that a CA of `path` signed.
fn load(path: &Path, provider: &Arc<CryptoProvider>) -> anyhow::Result<Loaded> {
    let modified = modified(path);
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading the client CA {}", path.display()))?
    {
        let c = c.with_context(|| format!("reading the client CA {}", path.display()))?;
        roots
            .add(c)
            .with_context(|| format!("{} holds an unusable CA certificate", path.display()))?;
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "{} holds no CA certificate",
        path.display()
    );
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .context("the client certificate verifier")?;
    Ok(Loaded { modified, verifier })
}

impl ClientCa {
    /// The bundle in `path`, which must read now; with `mandatory`,
    /// clients must present a certificate.
    pub fn open(
        path: &Path,
        provider: Arc<CryptoProvider>,
        mandatory: bool,
    ) -> anyhow::Result<ClientCa> {
        Ok(ClientCa {
            mandatory,
            current: RwLock::new(load(path, &provider)?),
            path: path.to_path_buf(),
            provider,
        })
    }

    fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .verifier
            .clone()
    }

    /// Reads the bundle again if its file changed.
    pub fn reload_if_changed(&self) {
        let now = modified(&self.path);
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.modified == now {
            return;
        }
        match load(&self.path, &self.provider) {
            Ok(loaded) => {
                *current = loaded;
                info!(ca = %self.path.display(), "client CA reloaded");
            }
            Err(e) => {
                warn!(
                    error = format!("{e:#}"),
                    "client CA changed but cannot be used; keeping the one in force"
                );
                current.modified = now;
            }
        }
    }
}

impl ClientCertVerifier for ClientCa {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    /// No hints: the bundle may change under a borrowed list, and clients
    /// with a single certificate (every Kafka client) send it anyway.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier().supported_verify_schemes()
    }
}
