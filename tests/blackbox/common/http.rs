//! Raw requests to the TSH-facing API, for what the TSH client will not send (wrong headers,
//! bodies that are not envelopes), and reading its answers.

use super::ISSUER_ID;

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
