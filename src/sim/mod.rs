//! Playing TSH: a client of the gateway's API that seals card data for the issuer's
//! certificate the way the hub does. Used by `demo`, `simulate` and the black-box tests.

pub mod activations;
pub mod load;
pub mod scenario;
pub mod tsh;

pub use scenario::{SimulateOptions, simulate};

use crate::envelope::{KeyTransport, Recipient, RecipientIdKind};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// One answer of the gateway.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub elapsed: Duration,
}

impl Answer {
    /// The `responseCode` of an error answer (200 for a success).
    pub fn code(&self) -> u16 {
        if self.status == 200 {
            return 200;
        }
        self.body
            .get("responseCode")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(self.status)
    }

    pub fn str(&self, field: &str) -> Option<&str> {
        self.body.get(field).and_then(Value::as_str)
    }
}

/// A TSH stand-in pointed at one gateway.
#[derive(Clone)]
pub struct Tsh {
    http: reqwest::Client,
    base_url: String,
    issuer_id: String,
    recipient: std::sync::Arc<Recipient>,
    pub transport: KeyTransport,
    pub recipient_id: RecipientIdKind,
}

impl Tsh {
    /// `base_url` is the gateway's address with its base path, e.g.
    /// `http://127.0.0.1:8443/issuer/igwapi/v2.0`.
    /// The same TSH stand-in speaking through another HTTP client (e.g. one presenting a
    /// client certificate to a gateway that speaks mutual TLS).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Tsh {
        self.http = http;
        self
    }

    pub fn new(base_url: &str, issuer_id: &str, certificate_pem: &str) -> anyhow::Result<Tsh> {
        let recipient = Recipient::from_certificate_pem(certificate_pem)
            .map_err(|e| anyhow::anyhow!("issuer certificate: {e}"))?;
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()?;
        Ok(Tsh {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            issuer_id: issuer_id.to_owned(),
            recipient: std::sync::Arc::new(recipient),
            transport: KeyTransport::Oaep,
            recipient_id: RecipientIdKind::SubjectKeyId,
        })
    }

    /// Seals JSON for the issuer (base64 PKCS#7 EnvelopedData), as TSH does.
    pub fn seal(&self, plaintext: &Value) -> anyhow::Result<String> {
        let bytes = zeroize::Zeroizing::new(serde_json::to_vec(plaintext)?);
        crate::envelope::seal_base64(&self.recipient, &bytes, self.transport, self.recipient_id)
            .map_err(|e| anyhow::anyhow!("sealing: {e}"))
    }

    /// Sealed card data for `cipheredCardInfo`, written as TSH writes it: `fpan` first, then
    /// `exp`.
    pub fn card_info(&self, pan: &str, exp: Option<&str>) -> anyhow::Result<String> {
        let mut text = zeroize::Zeroizing::new(format!("{{\"fpan\":{}", Value::from(pan)));
        if let Some(e) = exp {
            text.push_str(&format!(",\"exp\":{}", Value::from(e)));
        }
        text.push('}');
        crate::envelope::seal_base64(
            &self.recipient,
            text.as_bytes(),
            self.transport,
            self.recipient_id,
        )
        .map_err(|e| anyhow::anyhow!("sealing: {e}"))
    }

    /// Posts any body to an operation with the standard headers.
    pub async fn call(
        &self,
        operation: &str,
        correlation_id: &str,
        body: &Value,
    ) -> anyhow::Result<Answer> {
        let started = Instant::now();
        let resp = self
            .http
            .post(format!("{}/{operation}", self.base_url))
            .header("x-correlation-id", correlation_id)
            .header("x-issuer-id", &self.issuer_id)
            .json(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            body,
            elapsed: started.elapsed(),
        })
    }

    /// Eligibility with card data sealed for this call.
    pub async fn check_eligibility(
        &self,
        cid: &str,
        pan: &str,
        exp: &str,
        wallet: &str,
    ) -> anyhow::Result<Answer> {
        let ciphered = self.card_info(pan, Some(exp))?;
        self.check_eligibility_sealed(cid, &ciphered, wallet).await
    }

    /// Eligibility with card data already sealed ([`Tsh::card_info`]). TSH sends the same
    /// `cipheredCardInfo` in the eligibility and the digitization of one enrolment.
    pub async fn check_eligibility_sealed(
        &self,
        cid: &str,
        ciphered: &str,
        wallet: &str,
    ) -> anyhow::Result<Answer> {
        let body = json!({
            "cipheredCardInfo": ciphered,
            "walletProviderId": wallet,
            "captureMethod": "MANUAL",
        });
        self.call("checkCardEligibility", cid, &body).await
    }

    /// Digitization with card data sealed afresh for this call.
    pub async fn request_digitization(
        &self,
        cid: &str,
        pan: &str,
        exp: &str,
        wallet: &str,
        extra: Value,
    ) -> anyhow::Result<Answer> {
        let ciphered = self.card_info(pan, Some(exp))?;
        self.request_digitization_sealed(cid, &ciphered, wallet, extra)
            .await
    }

    /// Digitization with card data already sealed (as TSH does: the eligibility's envelope).
    pub async fn request_digitization_sealed(
        &self,
        cid: &str,
        ciphered: &str,
        wallet: &str,
        extra: Value,
    ) -> anyhow::Result<Answer> {
        let mut body = json!({
            "cipheredCardInfo": ciphered,
            "walletProviderId": wallet,
            "tncStatus": true,
        });
        merge(&mut body, extra);
        self.call("requestCardDigitization", cid, &body).await
    }

    pub async fn send_otp(
        &self,
        cid: &str,
        card_ref: &str,
        otp: &str,
        method_id: Option<&str>,
        wallet: &str,
    ) -> anyhow::Result<Answer> {
        let mut body =
            json!({ "issuerCardRefId": card_ref, "otpValue": otp, "walletProviderId": wallet });
        if let (Some(m), Some(obj)) = (method_id, body.as_object_mut()) {
            obj.insert("otpMethodId".into(), Value::String(m.to_owned()));
        }
        self.call("sendOTP", cid, &body).await
    }

    pub async fn notify(
        &self,
        cid: &str,
        card_ref: &str,
        virtual_card_id: &str,
        action: &str,
        wallet: &str,
        dpan: Option<(&str, &str)>,
    ) -> anyhow::Result<Answer> {
        let mut body = json!({
            "issuerCardRefId": card_ref,
            "virtualCardId": virtual_card_id,
            "walletProviderId": wallet,
            "tokenStorageId": "SE-0001",
            "isPrimary": true,
            "action": action,
        });
        if let (Some((dpan, exp)), Some(obj)) = (dpan, body.as_object_mut()) {
            obj.insert(
                "tokenInfo".into(),
                Value::String(self.seal(&json!({ "dpan": dpan, "exp": exp }))?),
            );
        }
        self.call("notifyVirtualCardChange", cid, &body).await
    }
}

/// Copies the fields of `extra` (an object) into `body`.
pub fn merge(body: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// The (id, type, value) of each method of an `idvMethodList`.
pub fn methods_of(body: &Value) -> Vec<(String, String, String)> {
    body.get("idvMethodList")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|m| {
                    let f = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                    (f("id"), f("type"), f("value"))
                })
                .collect()
        })
        .unwrap_or_default()
}
