//! The test harness: a real gateway on loopback (port 0) with its own database (a SQLite file,
//! or a fresh PostgreSQL database when IG_TEST_POSTGRES_URL is set), freshly generated keys,
//! imported test cards, the outbox channel, and a TSH client that seals real envelopes.

#![allow(dead_code)]

use issuer_gateway::api::SharedState;
use issuer_gateway::app::Application;
use issuer_gateway::clock::Clock;
use issuer_gateway::config::Config;
use issuer_gateway::sim::Tsh;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

pub const ISSUER_ID: &str = "TESTBANK01";

/// A test card, as in the card file the harness imports.
#[derive(Debug, Clone, Copy)]
pub struct TestCard {
    pub pan: &'static str,
    pub exp: &'static str,
    pub phone: Option<&'static str>,
    pub email: Option<&'static str>,
}

/// Active, phone and e-mail on file.
pub const ALICE: TestCard = TestCard {
    pan: "4111111111111111",
    exp: "1229",
    phone: Some("+447700900123"),
    email: Some("alice.martin@example.com"),
};
/// Active, phone and e-mail, enabled for Apple Pay and Google Pay only.
pub const BOB: TestCard = TestCard {
    pan: "5555555555554444",
    exp: "0630",
    phone: Some("+447700900456"),
    email: Some("bob.b@example.org"),
};
/// Active, e-mail only.
pub const CLAIRE: TestCard = TestCard {
    pan: "4000056655665556",
    exp: "0331",
    phone: None,
    email: Some("claire.dubois@example.fr"),
};
/// Blocked.
pub const DAN: TestCard = TestCard {
    pan: "4242424242424242",
    exp: "1229",
    phone: Some("+447700900789"),
    email: Some("dan@example.com"),
};
/// Expired on record (January 2025).
pub const ERIN: TestCard = TestCard {
    pan: "5200828282828210",
    exp: "0125",
    phone: Some("+447700900321"),
    email: Some("erin@example.com"),
};
/// Active, no contact details.
pub const FRANK: TestCard = TestCard {
    pan: "378282246310005",
    exp: "0930",
    phone: None,
    email: None,
};
/// Valid PAN never imported.
pub const UNKNOWN: TestCard = TestCard {
    pan: "6011111111111117",
    exp: "1229",
    phone: None,
    email: None,
};

pub const CARD_FILE: &str = "pan,exp,status,product_id,phone,email,language,wallets\n\
4111111111111111,1229,active,VISA_PLATINUM,+447700900123,alice.martin@example.com,en,\n\
5555555555554444,0630,active,MC_WORLD,+447700900456,bob.b@example.org,en,APPLE_PAY;GOOGLE_PAY\n\
4000056655665556,0331,active,VISA_CLASSIC,,claire.dubois@example.fr,fr,\n\
4242424242424242,1229,blocked,VISA_CLASSIC,+447700900789,dan@example.com,en,\n\
5200828282828210,0125,active,MC_STANDARD,+447700900321,erin@example.com,en,\n\
378282246310005,0930,active,AMEX_GOLD,,,en,\n";

/// Every sensitive value the harness's cards hold, for log and answer checks.
pub fn sensitive_values() -> Vec<&'static str> {
    let mut v = Vec::new();
    for c in [ALICE, BOB, CLAIRE, DAN, ERIN, FRANK, UNKNOWN] {
        v.push(c.pan);
        v.extend(c.phone.map(|p| p.trim_start_matches('+')));
        v.extend(c.email);
    }
    v
}

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL backend when IG_TEST_POSTGRES_URL is set.
    pub fn postgres() -> Option<Backend> {
        match std::env::var("IG_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => {
                eprintln!("IG_TEST_POSTGRES_URL is not set: PostgreSQL variant skipped");
                None
            }
        }
    }
}

/// Generates a `sqlite` and a `postgres` test for each scenario `async fn NAME(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(b) = $crate::common::Backend::postgres() {
                    super::$name(b).await
                }
            }
        }
    )*};
}

/// A fresh PostgreSQL database, dropped when this value is dropped.
pub struct PgDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> PgDatabase {
        use sqlx::Connection;
        let name = format!(
            "ig_test_{}",
            hex::encode(issuer_gateway::secrets::random_bytes::<6>())
        );
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect to IG_TEST_POSTGRES_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(admin_url);
        PgDatabase {
            url: format!("{base}/{name}"),
            admin_url: admin_url.to_owned(),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Keys and a database folder shared by one or more gateways.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub pg: Option<PgDatabase>,
    pub clock_ms: Arc<AtomicI64>,
}

impl Fixture {
    pub async fn new(backend: &Backend) -> Fixture {
        issuer_gateway::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        issuer_gateway::keys::generate(&keys, 2048, "test issuer").expect("keys generate");
        let mut config = Config::default();
        config.issuer.id = ISSUER_ID.into();
        config.server.listen = "127.0.0.1:0".into();
        config.admin.listen = "127.0.0.1:0".into();
        config.keys.pkcs7_private_keys = vec![keys.join("issuer-pkcs7-key.pem")];
        config.keys.pan_index_key_file = Some(keys.join("pan-index.key"));
        config.outbox.dir = dir.path().join("outbox");
        let pg = match backend {
            Backend::Sqlite => {
                config.database.url =
                    format!("sqlite://{}", dir.path().join("gateway.db").display());
                None
            }
            Backend::Postgres(admin) => {
                let db = PgDatabase::create(admin).await;
                config.database.url = db.url.clone();
                Some(db)
            }
        };
        let now = issuer_gateway::clock::to_ms(time::OffsetDateTime::now_utc());
        let fixture = Fixture {
            dir,
            config,
            pg,
            clock_ms: Arc::new(AtomicI64::new(now)),
        };
        fixture.import(CARD_FILE).await;
        fixture
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn certificate_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("keys/issuer-pkcs7-cert.pem"))
            .expect("certificate")
    }

    /// Imports a card file through the same code as `cards import`.
    pub async fn import(&self, csv: &str) -> issuer_gateway::cards::ImportReport {
        let file = self.dir.path().join(format!(
            "cards-{}.csv",
            hex::encode(issuer_gateway::secrets::random_bytes::<4>())
        ));
        std::fs::write(&file, csv).expect("write card file");
        issuer_gateway::keys::import_cards_at(
            &self.config,
            &file,
            self.clock_ms.load(std::sync::atomic::Ordering::SeqCst),
        )
        .await
        .expect("import")
    }

    /// Starts a gateway on this fixture.
    pub async fn start(&self, tweak: impl FnOnce(&mut Config)) -> Gateway {
        let mut config = self.config.clone();
        tweak(&mut config);
        let app =
            Application::build_with_clock(config.clone(), Clock::manual(self.clock_ms.clone()))
                .await
                .expect("gateway starts");
        let api = app.api_addr();
        let admin = app.admin_addr();
        let state = app.state();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        let tsh = Tsh::new(
            &format!("http://{api}{}", config.server.base_path),
            ISSUER_ID,
            &self.certificate_pem(),
        )
        .expect("tsh");
        Gateway {
            api,
            admin,
            state,
            config,
            tsh,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// Moves the gateways' clock.
    pub fn advance_ms(&self, ms: i64) {
        self.clock_ms
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// Messages in the outbox (file contents), oldest first.
    pub fn outbox(&self) -> Vec<String> {
        outbox_messages(&self.config.outbox.dir)
    }
}

pub fn outbox_messages(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .and_then(|f| f.to_str())
                .unwrap_or(".")
                .starts_with('.')
        })
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read outbox message"))
        .collect()
}

/// A running gateway.
pub struct Gateway {
    pub api: SocketAddr,
    pub admin: SocketAddr,
    pub state: SharedState,
    pub config: Config,
    pub tsh: Tsh,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Gateway {
    pub fn url(&self, operation: &str) -> String {
        format!(
            "http://{}{}/{operation}",
            self.api, self.config.server.base_path
        )
    }

    /// Stops the gateway and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("join").expect("clean stop");
        }
    }
}

/// One gateway on its own fixture: the common case.
pub struct TestApp {
    pub fx: Fixture,
    pub gw: Gateway,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let fx = Fixture::new(&backend).await;
        let gw = fx.start(tweak).await;
        TestApp { fx, gw }
    }

    pub fn tsh(&self) -> &Tsh {
        &self.gw.tsh
    }

    /// Eligibility then a digitization meant to step up (manual capture): returns the card
    /// reference and the offered methods (id, type, value).
    pub async fn enrol_to_yellow(
        &self,
        cid: &str,
        card: TestCard,
        wallet: &str,
    ) -> (String, Vec<(String, String, String)>) {
        let a = self
            .tsh()
            .check_eligibility(cid, card.pan, card.exp, wallet)
            .await
            .expect("eligibility call");
        assert_eq!(a.status, 200, "eligibility: {:?}", a.body);
        let card_ref = a
            .str("issuerCardRefId")
            .expect("issuerCardRefId")
            .to_owned();
        let d = self
            .tsh()
            .request_digitization(
                cid,
                card.pan,
                card.exp,
                wallet,
                serde_json::json!({"cardCaptureInformation": {"captureMethod": "MANUAL"}}),
            )
            .await
            .expect("digitization call");
        assert_eq!(d.status, 200, "digitization: {:?}", d.body);
        assert_eq!(d.str("levelOfTrust"), Some("yellow"), "{:?}", d.body);
        (card_ref, methods(&d.body))
    }
}

/// The (id, type, value) of each method of an `idvMethodList`.
pub fn methods(body: &serde_json::Value) -> Vec<(String, String, String)> {
    body.get("idvMethodList")
        .and_then(|l| l.as_array())
        .map(|l| {
            l.iter()
                .map(|m| {
                    let f = |k: &str| m.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
                    (f("id"), f("type"), f("value"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A raw POST with full control over headers and body.
pub async fn raw_post(
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, serde_json::Value) {
    issuer_gateway::install_crypto_provider();
    let client = reqwest::Client::new();
    let mut req = client.post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Standard headers for raw calls.
pub fn std_headers(cid: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-correlation-id", cid.to_owned()),
        ("x-issuer-id", ISSUER_ID.to_owned()),
        ("content-type", "application/json".to_owned()),
    ]
}
