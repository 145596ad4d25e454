//! A small W3C WebDriver client (JSON over HTTP to chromedriver on loopback), with the few
//! commands the console's browser tests use. Written here on the HTTP client the project already
//! has: the WebDriver crates either carry a licence outside deny.toml (fantoccini's `webdriver`,
//! MPL-2.0) or a second HTTP stack (thirtyfour).

use base64::Engine;
use serde_json::{Value, json};

/// The key W3C WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session.
pub struct Browser {
    http: reqwest::Client,
    session: String,
}

/// An element of the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Browser {
    /// Opens a session on the driver at `driver` with these capabilities (`alwaysMatch`).
    pub async fn start(driver: &str, capabilities: Value) -> Result<Browser, String> {
        let http = reqwest::Client::new();
        let v = call(
            &http,
            reqwest::Method::POST,
            &format!("{driver}/session"),
            Some(json!({ "capabilities": { "alwaysMatch": capabilities } })),
        )
        .await?;
        let session = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {v}"))?
            .to_owned();
        Ok(Browser {
            http,
            session: format!("{driver}/session/{session}"),
        })
    }

    async fn cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        call(&self.http, method, &format!("{}{path}", self.session), body).await
    }

    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .map(drop)
    }

    /// The current URL, whole.
    pub async fn url(&self) -> Result<String, String> {
        let v = self.cmd(reqwest::Method::GET, "/url", None).await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no URL in {v}"))
    }

    /// The path of the current URL (no query).
    pub async fn path(&self) -> Result<String, String> {
        let url = self.url().await?;
        let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
        Ok(path.split(['?', '#']).next().unwrap_or("/").to_owned())
    }

    pub async fn source(&self) -> Result<String, String> {
        let v = self.cmd(reqwest::Method::GET, "/source", None).await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no source in {v}"))
    }

    pub async fn refresh(&self) -> Result<(), String> {
        self.cmd(reqwest::Method::POST, "/refresh", Some(json!({})))
            .await
            .map(drop)
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> Result<Element<'_>, String> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        let id = v[ELEMENT]
            .as_str()
            .ok_or_else(|| format!("{css}: no element ({v})"))?
            .to_owned();
        Ok(Element { browser: self, id })
    }

    /// Runs a script in the page (WebDriver's scripts are not bound by the page's CSP).
    pub async fn execute(&self, script: &str) -> Result<Value, String> {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Result<Vec<u8>, String> {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await?;
        let b64 = v.as_str().ok_or_else(|| format!("no screenshot in {v}"))?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| e.to_string())
    }

    pub async fn close(self) -> Result<(), String> {
        self.cmd(reqwest::Method::DELETE, "", None).await.map(drop)
    }
}

impl Element<'_> {
    pub async fn click(&self) -> Result<(), String> {
        self.browser
            .cmd(
                reqwest::Method::POST,
                &format!("/element/{}/click", self.id),
                Some(json!({})),
            )
            .await
            .map(drop)
    }

    pub async fn send_keys(&self, text: &str) -> Result<(), String> {
        self.browser
            .cmd(
                reqwest::Method::POST,
                &format!("/element/{}/value", self.id),
                Some(json!({ "text": text })),
            )
            .await
            .map(drop)
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
    let v: Value = resp.json().await.map_err(|e| format!("{url}: {e}"))?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if let Some(err) = value.get("error").and_then(Value::as_str) {
        return Err(format!(
            "{url}: {err}: {}",
            value["message"].as_str().unwrap_or("")
        ));
    }
    Ok(value)
}
