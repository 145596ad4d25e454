//! Mutual TLS on the TSH-facing API: only clients with a certificate from the configured CA
//! complete a handshake; files can be reloaded without a restart; unusable files stop the start.

use crate::common::*;
use issuer_gateway::sim::Tsh;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A leaf certificate signed by `ca`: (chain PEM, key PEM).
fn leaf(ca: &Ca, name: &str, sans: &[&str]) -> (String, String) {
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write_private(path: &Path, text: &str) {
    let _ = std::fs::remove_file(path);
    issuer_gateway::data_keys::write_private_file(path, text.as_bytes()).unwrap();
}

struct Pki {
    dir: PathBuf,
    tsh_ca: Ca,
    server_ca: Ca,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let pki = Pki {
            dir: dir.join("tls"),
            tsh_ca: ca("Thales test client CA"),
            server_ca: ca("Issuer server CA"),
        };
        std::fs::create_dir_all(&pki.dir).unwrap();
        pki.issue_server("gateway-1");
        std::fs::write(pki.dir.join("client-ca.pem"), pki.tsh_ca.cert.pem()).unwrap();
        pki
    }

    fn issue_server(&self, name: &str) -> String {
        let (chain, key) = leaf(&self.server_ca, name, &["localhost", "127.0.0.1"]);
        std::fs::write(self.dir.join("server.pem"), &chain).unwrap();
        write_private(&self.dir.join("server-key.pem"), &key);
        chain
    }

    fn files(&self) -> issuer_gateway::config::TlsConfig {
        issuer_gateway::config::TlsConfig {
            cert_chain: self.dir.join("server.pem"),
            private_key: self.dir.join("server-key.pem"),
            client_ca: self.dir.join("client-ca.pem"),
        }
    }

    /// A rustls client trusting the server CA, presenting `client` (chain, key) if given.
    fn client_config(&self, client: Option<&(String, String)>) -> rustls::ClientConfig {
        issuer_gateway::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.server_ca.cert.der().clone()).unwrap();
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        match client {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => {
                let certs: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(chain.as_bytes())
                        .collect::<Result<_, _>>()
                        .unwrap();
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                builder.with_client_auth_cert(certs, key).unwrap()
            }
        }
    }

    fn http(&self, client: Option<&(String, String)>) -> reqwest::Client {
        reqwest::Client::builder()
            .use_preconfigured_tls(self.client_config(client))
            .build()
            .unwrap()
    }
}

/// The server certificate a fresh handshake presents.
async fn presented_certificate(
    pki: &Pki,
    addr: std::net::SocketAddr,
    client: &(String, String),
) -> Vec<u8> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(pki.client_config(Some(client))));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_clients_of_the_configured_ca_get_through() {
    let fx = Fixture::new(&Backend::Sqlite).await;
    let pki = Pki::new(fx.path());
    let gw = fx.start(|c| c.server.tls = Some(pki.files())).await;
    let base = format!(
        "https://localhost:{}{}",
        gw.api.port(),
        gw.config.server.base_path
    );
    let good = leaf(&pki.tsh_ca, "tsh.thales.test", &["tsh.thales.test"]);
    let stranger_ca = ca("Someone else's CA");
    let stranger = leaf(&stranger_ca, "intruder", &["intruder.test"]);

    // A client with a certificate of the configured CA completes a whole call.
    let tsh = Tsh::new(&base, ISSUER_ID, &fx.certificate_pem())
        .unwrap()
        .with_http_client(pki.http(Some(&good)));
    let a = tsh
        .check_eligibility("tls-1", ALICE.pan, ALICE.exp, "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);

    // Without a certificate, or with one from another CA: no call gets through.
    for (what, client) in [("no certificate", None), ("another CA", Some(&stranger))] {
        let tsh = Tsh::new(&base, ISSUER_ID, &fx.certificate_pem())
            .unwrap()
            .with_http_client(pki.http(client));
        let r = tsh
            .check_eligibility("tls-2", ALICE.pan, ALICE.exp, "APPLE_PAY")
            .await;
        assert!(r.is_err(), "{what}: {:?}", r.map(|a| a.status));
    }
    // Plain HTTP is not answered either.
    let plain = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}{}/checkCardEligibility",
            gw.api.port(),
            gw.config.server.base_path
        ))
        .body("{}")
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    // The refused clients were not recorded as calls.
    assert!(gw.state.store.calls("tls-2").await.unwrap().is_empty());

    // The simulator plays TSH over mutual TLS too.
    let files = fx.path().join("sim");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("client.pem"), &good.0).unwrap();
    write_private(&files.join("client-key.pem"), &good.1);
    std::fs::write(files.join("server-ca.pem"), pki.server_ca.cert.pem()).unwrap();
    std::fs::write(files.join("cards.csv"), CARD_FILE).unwrap();
    let target = format!("https://localhost:{}", gw.api.port());
    let cert = fx.path().join("keys/issuer-pkcs7-cert.pem");
    let out = tokio::task::spawn_blocking(move || {
        bin()
            .args([
                "simulate",
                "--target",
                &target,
                "--issuer-id",
                ISSUER_ID,
                "--cert",
            ])
            .arg(&cert)
            .arg("--cards")
            .arg(files.join("cards.csv"))
            .arg("--client-cert")
            .arg(files.join("client.pem"))
            .arg("--client-key")
            .arg(files.join("client-key.pem"))
            .arg("--ca")
            .arg(files.join("server-ca.pem"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("every call was answered as expected"),
        "{stdout}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_without_a_restart() {
    let fx = Fixture::new(&Backend::Sqlite).await;
    let pki = Pki::new(fx.path());
    let mut config = fx.config.clone();
    config.server.tls = Some(pki.files());
    let app = issuer_gateway::app::Application::build(config)
        .await
        .unwrap();
    let addr = app.api_addr();
    let reloader = app.tls_reloader().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let client = leaf(&pki.tsh_ca, "tsh", &["tsh.test"]);
    let first = presented_certificate(&pki, addr, &client).await;

    let renewed = pki.issue_server("gateway-1-renewed");
    reloader.reload().unwrap();
    let second = presented_certificate(&pki, addr, &client).await;
    assert_ne!(first, second);
    assert_eq!(
        second,
        CertificateDer::from_pem_slice(renewed.as_bytes())
            .unwrap()
            .to_vec()
    );

    // A broken file is refused by the reload, and the running certificate stays.
    std::fs::write(pki.dir.join("server.pem"), "not a certificate").unwrap();
    let err = reloader.reload().unwrap_err();
    assert!(err.starts_with("server.tls.cert_chain:"), "{err}");
    assert_eq!(presented_certificate(&pki, addr, &client).await, second);
    let _ = tx.send(());
    handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_files_stop_the_start_naming_the_setting() {
    let fx = Fixture::new(&Backend::Sqlite).await;
    let pki = Pki::new(fx.path());
    let try_start = |tweak: &dyn Fn(&mut issuer_gateway::config::TlsConfig)| {
        let mut config = fx.config.clone();
        let mut files = pki.files();
        tweak(&mut files);
        config.server.tls = Some(files);
        async move {
            match issuer_gateway::app::Application::build(config).await {
                Ok(_) => String::from("started"),
                Err(e) => format!("{e:#}"),
            }
        }
    };
    let missing = try_start(&|f| f.client_ca = PathBuf::from("/nonexistent/ca.pem")).await;
    assert!(
        missing.starts_with("server.tls.client_ca: cannot read"),
        "{missing}"
    );
    let not_pem = pki.dir.join("garbage.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let garbage = try_start(&|f| f.cert_chain = not_pem.clone()).await;
    assert!(garbage.starts_with("server.tls.cert_chain:"), "{garbage}");
    let (_, other_key) = leaf(&pki.server_ca, "x", &["x.test"]);
    let other = pki.dir.join("other-key.pem");
    write_private(&other, &other_key);
    let mismatch = try_start(&|f| f.private_key = other.clone()).await;
    assert!(
        mismatch.starts_with("server.tls.private_key: does not fit"),
        "{mismatch}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            pki.dir.join("server-key.pem"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let open = try_start(&|_| {}).await;
        assert!(
            open.contains("readable by other users") && open.contains("chmod 600"),
            "{open}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_cannot_hold_the_slots() {
    use crate::connections::{closed_within, stalled};
    use std::time::Duration;
    let fx = Fixture::new(&Backend::Sqlite).await;
    let pki = Pki::new(fx.path());
    // A handshake deadline far beyond the test: only displacement can free the slots.
    let gw = fx
        .start(|c| {
            c.server.tls = Some(pki.files());
            c.server.max_handshakes = 4;
            c.server.handshake_timeout_ms = 120_000;
        })
        .await;
    // Twenty peers open a connection and never start their handshake.
    let mut stalled_peers = Vec::new();
    for _ in 0..20 {
        stalled_peers.push(stalled(gw.api, b"").await);
    }
    // A real client still completes its handshake and its call promptly.
    let good = leaf(&pki.tsh_ca, "tsh.thales.test", &["tsh.thales.test"]);
    let base = format!(
        "https://localhost:{}{}",
        gw.api.port(),
        gw.config.server.base_path
    );
    let tsh = Tsh::new(&base, ISSUER_ID, &fx.certificate_pem())
        .unwrap()
        .with_http_client(pki.http(Some(&good)));
    let a = tokio::time::timeout(
        Duration::from_secs(5),
        tsh.check_eligibility("tls-stall", ALICE.pan, ALICE.exp, "APPLE_PAY"),
    )
    .await
    .expect("served promptly")
    .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    // The stalled handshakes that newcomers displaced were closed by the server (all but the
    // last few, which may still hold a slot).
    for (i, s) in stalled_peers.iter_mut().take(16).enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(10)).await.is_some(),
            "stalled handshake {i} still open"
        );
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_has_a_deadline() {
    use crate::connections::{closed_within, stalled};
    use std::time::Duration;
    let fx = Fixture::new(&Backend::Sqlite).await;
    let pki = Pki::new(fx.path());
    let gw = fx
        .start(|c| {
            c.server.tls = Some(pki.files());
            c.server.handshake_timeout_ms = 500;
        })
        .await;
    // Half a ClientHello, then nothing.
    let mut s = stalled(gw.api, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await;
    assert!(
        closed_within(&mut s, Duration::from_secs(5))
            .await
            .is_some(),
        "a stalled handshake is still open"
    );
    gw.stop().await;
}
