//! A real gateway in this process, on loopback (port 0), with its own database, freshly generated
//! keys, the imported test cards, the outbox channel, and a TSH client that seals real envelopes;
//! its clock is the test's, moved by hand.

use super::{Backend, CARD_FILE, ISSUER_ID, PgDatabase, TestCard, methods, write_card_file};
use issuer_gateway::app::Application;
use issuer_gateway::clock::Clock;
use issuer_gateway::config::Config;
use issuer_gateway::sim::Tsh;
use issuer_gateway::state::SharedState;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

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
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.admin.listen = "127.0.0.1:0".parse().unwrap();
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
    pub async fn import(&self, csv: &str) -> issuer_gateway::card_file::ImportReport {
        let file = write_card_file(self.dir.path(), csv);
        issuer_gateway::card_file::import_cards_at(
            &self.config,
            &file,
            issuer_gateway::domain::Millis(self.clock_ms.load(std::sync::atomic::Ordering::SeqCst)),
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
        let app_api = app.app_addr();
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
            app_api,
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

/// The messages in the outbox folder `dir` (file contents), oldest first; files still being
/// written (hidden, named with a leading dot) are left out.
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
    /// The app API's address, when `[app]` is configured.
    pub app_api: Option<SocketAddr>,
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

impl Fixture {
    /// Everything the database holds, as text: the SQLite files' bytes (WAL included), or every
    /// row of every table of the PostgreSQL database.
    pub async fn database_text(&self) -> String {
        match &self.pg {
            None => {
                let db = self.dir.path().join("gateway.db");
                let mut bytes = std::fs::read(&db).unwrap_or_default();
                bytes.extend(std::fs::read(db.with_extension("db-wal")).unwrap_or_default());
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Some(pg) => {
                use sqlx::{Connection, Row};
                let mut conn = sqlx::PgConnection::connect(&pg.url).await.expect("connect");
                let tables: Vec<String> = sqlx::query(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
                )
                .fetch_all(&mut conn)
                .await
                .expect("tables")
                .iter()
                .map(|r| r.get(0))
                .collect();
                let mut out = String::new();
                for t in tables {
                    let rows = sqlx::query(&format!("SELECT t::text FROM \"{t}\" t"))
                        .fetch_all(&mut conn)
                        .await
                        .expect("rows");
                    for r in rows {
                        out.push_str(&r.get::<String, _>(0));
                        out.push('\n');
                    }
                }
                out
            }
        }
    }
}

impl Fixture {
    /// Runs one SQL statement on the fixture's database with text parameters ($1, $2...), as a
    /// database writer would, behind the gateway's back.
    pub async fn sql(&self, statement: &str, args: &[&str]) {
        use sqlx::Connection;
        match &self.pg {
            None => {
                let url = format!("sqlite://{}", self.dir.path().join("gateway.db").display());
                let mut conn = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("connect");
                let mut q = sqlx::query(statement);
                for a in args {
                    q = q.bind(*a);
                }
                q.execute(&mut conn).await.expect("statement");
                conn.close().await.ok();
            }
            Some(pg) => {
                let mut conn = sqlx::PgConnection::connect(&pg.url).await.expect("connect");
                let mut q = sqlx::query(statement);
                for a in args {
                    q = q.bind(*a);
                }
                q.execute(&mut conn).await.expect("statement");
                conn.close().await.ok();
            }
        }
    }
}
