//! The operator console from the outside: operators made as `operators add` makes them, their
//! TOTP codes at the fixture's clock, and a small HTTP client that keeps the console's cookies
//! and does not follow redirects (so a test sees each 303 and where it leads).

use super::Gateway;
use issuer_gateway::console::auth;
use issuer_gateway::store::NewOperator;
use std::collections::BTreeMap;

/// An operator of the tests: its password and TOTP secret (the test plays its phone).
#[derive(Debug, Clone)]
pub struct TestOperator {
    pub name: String,
    pub password: String,
    pub secret: Vec<u8>,
}

impl TestOperator {
    /// The six-digit code at time `now_ms`.
    pub fn code(&self, now_ms: i64) -> String {
        format!(
            "{:06}",
            auth::totp_code(&self.secret, now_ms.div_euclid(30_000))
        )
    }
}

/// Adds an operator with a chosen password (not to be changed) and a TOTP secret, through the
/// same store call and seal as `operators add`.
pub async fn add_operator(gw: &Gateway, name: &str, role: &str) -> TestOperator {
    let password = "this operator has a long passphrase 7Q".to_owned();
    let hash = auth::hash_password(&password).await.unwrap();
    let secret = auth::new_totp_secret();
    let sealed = gw
        .state
        .data_keys
        .seal_for_card("operator-totp", name, &secret);
    let now = gw.state.clock.now_ms();
    let added = gw
        .state
        .store
        .add_operator(
            &NewOperator {
                name,
                role,
                password_hash: &hash,
                must_change: false,
                totp_sealed: Some(&sealed),
            },
            now,
        )
        .await
        .unwrap();
    assert!(added);
    TestOperator {
        name: name.to_owned(),
        password,
        secret: auth::unbase32(&secret).unwrap(),
    }
}

/// One answer of the console.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Page {
    /// The value of `name="csrf"` in the page's first form.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a CSRF field");
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

/// A browser without a browser: cookies kept by name, no redirect followed.
pub struct ConsoleClient {
    base: String,
    http: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

impl ConsoleClient {
    pub fn new(gw: &Gateway) -> ConsoleClient {
        Self::at(&format!("http://{}", gw.admin))
    }

    /// A client of the console at `base` (`http://host:port`).
    pub fn at(base: &str) -> ConsoleClient {
        Self::with(base, reqwest::Client::builder())
    }

    /// A client of the console at `base` built from `builder` (e.g. trusting a test CA).
    pub fn with(base: &str, builder: reqwest::ClientBuilder) -> ConsoleClient {
        ConsoleClient {
            base: base.trim_end_matches('/').to_owned(),
            http: builder
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let set_cookies: Vec<String> = headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let location = headers
            .get(reqwest::header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        let body = resp.text().await.unwrap();
        Page {
            status,
            location,
            headers,
            set_cookies,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    /// GET with extra headers (e.g. the admin API's bearer token).
    pub async fn get_with(&mut self, path: &str, name: &str, value: &str) -> Page {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, self.cookie_header())
            .header(name, value)
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, self.cookie_header())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    /// The login form, then the login with the operator's password and its code at `now_ms`.
    pub async fn login(&mut self, op: &TestOperator, now_ms: i64) -> Page {
        let form = self.get("/console/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        let code = op.code(now_ms);
        self.post(
            "/console/login",
            &[
                ("csrf", &csrf),
                ("name", &op.name),
                ("password", &op.password),
                ("code", &code),
            ],
        )
        .await
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
