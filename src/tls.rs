//! Mutual TLS on the TSH-facing API (rustls): TLS 1.2 and 1.3 only, the server's chain and key,
//! and client certificates verified against the configured CA (not pinned). The configuration
//! can be reloaded without a restart (SIGHUP): new handshakes use the new files, connections
//! already open keep theirs, and files that cannot be used leave the running configuration as
//! it was.

use crate::config::TlsConfig;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::Path;
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;

/// Builds the server configuration from the files, each problem naming its setting.
pub fn server_config(files: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    crate::install_crypto_provider();
    let chain = read_certs(&files.cert_chain, "server.tls.cert_chain")?;
    match crate::data_keys::check_private_file(&files.private_key) {
        Ok(()) => {}
        Err(crate::data_keys::PermError::Io(e)) => {
            return Err(format!(
                "server.tls.private_key: cannot read {}: {e}",
                files.private_key.display()
            ));
        }
        Err(crate::data_keys::PermError::Mode(m)) => {
            return Err(format!(
                "server.tls.private_key: {} is readable by other users (mode {m:o}); run: chmod 600 {}",
                files.private_key.display(),
                files.private_key.display()
            ));
        }
    }
    let key = PrivateKeyDer::from_pem_file(&files.private_key).map_err(|_| {
        format!(
            "server.tls.private_key: {} holds no PEM private key",
            files.private_key.display()
        )
    })?;
    let cas = read_certs(&files.client_ca, "server.tls.client_ca")?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots.add(ca).map_err(|e| {
            format!(
                "server.tls.client_ca: {}: not a usable CA certificate: {e}",
                files.client_ca.display()
            )
        })?;
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .map_err(|e| format!("server.tls.client_ca: {}: {e}", files.client_ca.display()))?;
    let mut config = ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
    .with_client_cert_verifier(verifier)
    .with_single_cert(chain, key)
    .map_err(|e| format!("server.tls.private_key: does not fit server.tls.cert_chain: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub(crate) fn read_certs(
    path: &Path,
    setting: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let iter = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{setting}: cannot read {}: {e}", path.display()))?;
    let certs: Vec<_> = iter
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{setting}: {} is not valid PEM", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{setting}: {} holds no certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// Builds a listener's TLS configuration from its files (again on every reload).
pub type BuildConfig = Arc<dyn Fn() -> Result<Arc<ServerConfig>, String> + Send + Sync>;

/// The live TLS configuration, swapped on reload.
#[derive(Clone)]
pub struct Reloadable {
    build: BuildConfig,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl Reloadable {
    pub fn new(files: &TlsConfig) -> Result<Reloadable, String> {
        let files = files.clone();
        Reloadable::from_builder(Arc::new(move || server_config(&files)))
    }

    /// A configuration built by `build` (another listener's files and rules).
    pub fn from_builder(build: BuildConfig) -> Result<Reloadable, String> {
        let config = build()?;
        Ok(Reloadable {
            build,
            current: Arc::new(RwLock::new(config)),
        })
    }

    /// Reads the files again; on success new handshakes use them, on failure nothing changes.
    pub fn reload(&self) -> Result<(), String> {
        let config = (self.build)()?;
        match self.current.write() {
            Ok(mut guard) => *guard = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        Ok(())
    }

    /// An acceptor with the files in use now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        TlsAcceptor::from(config)
    }
}
