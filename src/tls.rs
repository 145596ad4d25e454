//! Mutual TLS on the TSH-facing API (rustls): TLS 1.2 and 1.3 only, the server's chain and key,
//! and client certificates verified against the configured CA (not pinned). The admin listener
//! (and the console on it) uses the same code with `admin.tls.*`, its client CA optional. The configuration
//! can be reloaded without a restart (SIGHUP): new handshakes use the new files, connections
//! already open keep theirs, and files that cannot be used leave the running configuration as
//! it was.

use crate::config::TlsConfig;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::Path;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;

/// The files of one listener's TLS, and the section that names them (`server.tls`,
/// `admin.tls`). Without a client CA, clients are not asked for a certificate.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub section: &'static str,
    pub cert_chain: PathBuf,
    pub private_key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The TSH-facing listener's (mutual TLS: the client CA is required).
    pub fn server(c: &TlsConfig) -> TlsFiles {
        TlsFiles {
            section: "server.tls",
            cert_chain: c.cert_chain.clone(),
            private_key: c.private_key.clone(),
            client_ca: Some(c.client_ca.clone()),
        }
    }

    /// The admin listener's (the console's): the client CA is optional.
    pub fn admin(c: &crate::config::AdminTlsConfig) -> TlsFiles {
        TlsFiles {
            section: "admin.tls",
            cert_chain: c.cert_chain.clone(),
            private_key: c.private_key.clone(),
            client_ca: c.client_ca.clone(),
        }
    }
}

/// Builds the server configuration of the TSH-facing listener from the files, each problem
/// naming its setting.
pub fn server_config(files: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    config_of(&TlsFiles::server(files))
}

/// Builds a listener's server configuration from its files, each problem naming its setting.
pub fn config_of(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    crate::install_crypto_provider();
    let section = files.section;
    let chain = read_certs(&files.cert_chain, &format!("{section}.cert_chain"))?;
    match crate::data_keys::check_private_file(&files.private_key) {
        Ok(()) => {}
        Err(crate::data_keys::PermError::Io(e)) => {
            return Err(format!(
                "{section}.private_key: cannot read {}: {e}",
                files.private_key.display()
            ));
        }
        Err(crate::data_keys::PermError::Mode(m)) => {
            return Err(format!(
                "{section}.private_key: {} is readable by other users (mode {m:o}); run: chmod 600 {}",
                files.private_key.display(),
                files.private_key.display()
            ));
        }
    }
    let key = PrivateKeyDer::from_pem_file(&files.private_key).map_err(|_| {
        format!(
            "{section}.private_key: {} holds no PEM private key",
            files.private_key.display()
        )
    })?;
    let builder = ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ]);
    let builder = match &files.client_ca {
        Some(client_ca) => {
            let cas = read_certs(client_ca, &format!("{section}.client_ca"))?;
            let mut roots = rustls::RootCertStore::empty();
            for ca in cas {
                roots.add(ca).map_err(|e| {
                    format!(
                        "{section}.client_ca: {}: not a usable CA certificate: {e}",
                        client_ca.display()
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| format!("{section}.client_ca: {}: {e}", client_ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("{section}.private_key: does not fit {section}.cert_chain: {e}"))?;
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
    section: &'static str,
    build: BuildConfig,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl Reloadable {
    pub fn new(files: &TlsConfig) -> Result<Reloadable, String> {
        let files = files.clone();
        Reloadable::from_builder("server.tls", Arc::new(move || server_config(&files)))
    }

    /// A listener's TLS from its files.
    pub fn of(files: TlsFiles) -> Result<Reloadable, String> {
        let section = files.section;
        Reloadable::from_builder(section, Arc::new(move || config_of(&files)))
    }

    /// A configuration built by `build` (another listener's files and rules), from the
    /// configuration's `section`.
    pub fn from_builder(section: &'static str, build: BuildConfig) -> Result<Reloadable, String> {
        let config = build()?;
        Ok(Reloadable {
            section,
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

    /// The section of the configuration the files come from.
    pub fn section(&self) -> &'static str {
        self.section
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
