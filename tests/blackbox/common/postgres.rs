//! The database a test runs on: a SQLite file, or a fresh PostgreSQL database when
//! IG_TEST_POSTGRES_URL is set; the macro that runs a scenario on both; and the PostgreSQL
//! databases themselves, created for one test and dropped after it.

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL backend of IG_TEST_POSTGRES_URL. The PostgreSQL scenarios are built as
    /// ignored when it is not set (`build.rs`: they show as ignored, never as passed); one that
    /// runs anyway (`--include-ignored`) without it fails, saying why.
    pub fn postgres() -> Option<Backend> {
        match std::env::var("IG_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => panic!(
                "IG_TEST_POSTGRES_URL is not set: this PostgreSQL scenario cannot run (set it, e.g. postgres://postgres@127.0.0.1:5432/postgres)"
            ),
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
            #[cfg_attr(not(ig_test_postgres), ignore = "IG_TEST_POSTGRES_URL is not set")]
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
    /// Creates a database of a random name on the server of `admin_url` (a database URL whose
    /// user may create databases); `url` is the new database's.
    pub async fn create(admin_url: &str) -> PgDatabase {
        use sqlx::Connection;
        let name = format!(
            "ig_test_{}",
            hex::encode(issuer_gateway::data_keys::random_bytes::<6>())
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
