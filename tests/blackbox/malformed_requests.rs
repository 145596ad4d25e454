//! Thousands of generated malformed and hostile requests: only the contract's 400s, never a
//! 500, and the server keeps serving.

use crate::common::*;
use crate::on_both_backends;
use serde_json::{Value, json};

on_both_backends!(generated_hostile_requests_get_only_400s);

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn string(&mut self) -> String {
        let len = *self.pick(&[0usize, 1, 5, 10, 33, 49, 65, 129, 200, 9000]);
        let alphabet: Vec<char> = "aZ09 -_+/=%{}\"\\\u{0}\u{7f}é中🙂\n\t".chars().collect();
        (0..len).map(|_| *self.pick(&alphabet)).collect()
    }
    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth > 3 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => json!(self.next() as i64),
            3 => json!(-1.5e300),
            4 | 5 => json!(self.string()),
            6 => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..self.below(5) {
                    m.insert(self.pick(FIELDS).to_string(), self.value(depth + 1));
                }
                Value::Object(m)
            }
        }
    }
}

const FIELDS: &[&str] = &[
    "cipheredCardInfo",
    "issuerCardRefId",
    "walletProviderId",
    "tokenRequestor",
    "captureMethod",
    "tncStatus",
    "cvvValidated",
    "walletUserInformation",
    "cardCaptureInformation",
    "scoringInformation",
    "deviceInformation",
    "otpValue",
    "otpMethodId",
    "expirationDate",
    "virtualCardId",
    "action",
    "tokenInfo",
    "isPrimary",
    "errorCode",
    "source",
    "tokenStorageId",
    "authenticationValue",
    "deviceScore",
    "levelOfTrust",
    "reasonCodes",
    "provisioningAttemptsOnDeviceIn24Hours",
];
const OPS: &[&str] = &[
    "checkCardEligibility",
    "requestCardEligibility",
    "requestCardDigitization",
    "sendOTP",
    "notifyVirtualCardChange",
];
/// The refusal numbers (defaults of `response_codes.*`) a hostile request may get.
const CODES: &[u64] = &[
    111, 112, 113, 116, 118, 119, 159, 160, 163, 164, 166, 170, 191, 322, 432, 911, 921,
];

async fn generated_hostile_requests_get_only_400s(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let valid_envelope = app.tsh().card_info(ALICE.pan, Some(ALICE.exp)).unwrap();
    let client = reqwest::Client::new();
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    let total = 2000;
    let mut requests = Vec::with_capacity(total);
    for i in 0..total {
        let op = *g.pick(OPS);
        let mut cid = format!("hostile-{i}");
        let mut issuer = ISSUER_ID.to_owned();
        let mut content_type = "application/json".to_owned();
        let body: Vec<u8> = match g.below(6) {
            0 => (0..g.below(300)).map(|_| g.next() as u8).collect(),
            1 => {
                // A valid envelope with bytes flipped, cut or extended.
                let mut e = valid_envelope.clone().into_bytes();
                match g.below(3) {
                    0 => {
                        let at = g.below(e.len() as u64) as usize;
                        e[at] = *g.pick(b"AZaz09+/=!");
                    }
                    1 => e.truncate(g.below(e.len() as u64) as usize),
                    _ => e.extend_from_slice(b"QUJD"),
                }
                json!({"cipheredCardInfo": String::from_utf8_lossy(&e), "issuerCardRefId": g.string()}).to_string().into_bytes()
            }
            2 => {
                // Deep nesting beyond any parser's comfort.
                let depth = 100 + g.below(5000) as usize;
                format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
            }
            3 => {
                // Header trouble.
                match g.below(3) {
                    0 => cid = "x".repeat(65 + g.below(100) as usize),
                    1 => {
                        issuer = g
                            .string()
                            .chars()
                            .filter(|c| c.is_ascii_graphic())
                            .collect()
                    }
                    _ => {
                        content_type =
                            (*g.pick(&["text/plain", "application/xml", "", "multipart/form-data"]))
                                .to_owned()
                    }
                }
                g.value(0).to_string().into_bytes()
            }
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..g.below(8) {
                    m.insert(g.pick(FIELDS).to_string(), g.value(0));
                }
                Value::Object(m).to_string().into_bytes()
            }
        };
        requests.push((op, cid, issuer, content_type, body));
    }
    let mut fivehundreds = 0;
    let mut statuses = std::collections::BTreeMap::new();
    for chunk in requests.chunks(16) {
        let calls = chunk.iter().map(|(op, cid, issuer, ct, body)| {
            let mut req = client
                .post(app.gw.url(op))
                .header("x-correlation-id", cid.as_str())
                .body(body.clone());
            if !issuer.is_empty() {
                req = req.header("x-issuer-id", issuer.as_str());
            }
            if !ct.is_empty() {
                req = req.header("content-type", ct.as_str());
            }
            async move {
                let resp = req.send().await.expect("the server answers every request");
                let status = resp.status().as_u16();
                let body: Value =
                    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null);
                (status, body)
            }
        });
        for (status, body) in futures_join_all(calls).await {
            *statuses.entry(status).or_insert(0) += 1;
            if status >= 500 {
                fivehundreds += 1;
                eprintln!("5xx: {body:?}");
                continue;
            }
            if status == 400 {
                let code = body["responseCode"].as_u64().unwrap_or(0);
                assert!(CODES.contains(&code), "unexpected responseCode {body:?}");
                assert!(body["errorMessage"].is_string());
            } else {
                assert_eq!(status, 200, "{body:?}");
            }
        }
    }
    eprintln!("status counts over {total} hostile requests: {statuses:?}");
    assert_eq!(fivehundreds, 0);
    // Still serving.
    let a = app
        .tsh()
        .check_eligibility("after-hostile", ALICE.pan, ALICE.exp, "APPLE_PAY")
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    app.gw.stop().await;
}

async fn futures_join_all<F>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}
