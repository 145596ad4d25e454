//! `simulate --app-url` / `--admin-url`: options C and D played against a running gateway. A
//! card is enrolled to yellow; the token TSH keeps waiting is registered with the simulated
//! inbound TSH (`--tsh-sim`, the address of `simulate --tsh-listen`); then the bank's app backend
//! activates it through the app API (Option C), or an agent through the admin API (Option D),
//! and the walkthrough waits for the RESUME to be confirmed by its notice.

use super::Tsh;
use super::scenario::SimCard;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Where the app API and the admin API are, with their tokens.
#[derive(Debug, Clone, Default)]
pub struct ActivationOptions {
    /// The gateway's app API (`app.listen`), e.g. `http://127.0.0.1:9091`.
    pub app_url: Option<String>,
    pub app_token: Option<String>,
    /// The gateway's admin API (`admin.listen`), e.g. `http://127.0.0.1:9090`.
    pub admin_url: Option<String>,
    pub admin_token: Option<String>,
    /// The simulated inbound TSH (`simulate --tsh-listen`), to register the waiting token with.
    pub tsh_sim: Option<String>,
}

impl ActivationOptions {
    pub fn any(&self) -> bool {
        self.app_url.is_some() || self.admin_url.is_some()
    }
}

/// How long the walkthrough waits for a RESUME to be confirmed.
const CONFIRM_WITHIN: Duration = Duration::from_secs(20);

/// Plays Option C (with `app_url`) and Option D (with `admin_url`); true when all went as
/// expected.
pub async fn play(tsh: &Tsh, cards: &[SimCard], o: &ActivationOptions, run: u32) -> bool {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let Some(card) = cards
        .iter()
        .find(|c| c.usable && (c.phone.is_some() || c.email.is_some()))
    else {
        println!();
        println!("== options C and D: skipped, no active card in the file has a phone or e-mail");
        return true;
    };
    let mut ok = true;
    if let (Some(app), Some(token)) = (&o.app_url, &o.app_token) {
        println!();
        let cid = format!("sim-{run:08x}-bank-app");
        let vcid = format!("SIMC{run:08x}APP");
        println!(
            "== Option C, the bank's app: card {}, correlation id {cid}",
            card.pan.masked()
        );
        ok &= match yellow(tsh, &http, o, card, &cid, &vcid, "APPLE_PAY").await {
            Err(e) => fail(&e),
            Ok(card_ref) => {
                let body = json!({"issuerCardRefId": card_ref, "walletProviderId": wallet(card, "APPLE_PAY"), "verification": "biometric"});
                let app = app.trim_end_matches('/');
                match post(&http, &format!("{app}/v1/activations"), token, &body).await {
                    Ok((202, answer)) => {
                        let id = answer
                            .get("operationId")
                            .and_then(Value::as_i64)
                            .unwrap_or(0);
                        println!("   app API  POST /v1/activations -> 202 operation {id}");
                        confirmed(&http, &format!("{app}/v1/activations/{id}"), token).await
                    }
                    Ok((status, answer)) => {
                        fail(&format!("POST /v1/activations answered {status} {answer}"))
                    }
                    Err(e) => fail(&e),
                }
            }
        };
    }
    if let (Some(admin), Some(token)) = (&o.admin_url, &o.admin_token) {
        println!();
        let cid = format!("sim-{run:08x}-agent");
        let vcid = format!("SIMD{run:08x}AGENT");
        println!(
            "== Option D, customer service: card {}, correlation id {cid}",
            card.pan.masked()
        );
        ok &= match yellow(tsh, &http, o, card, &cid, &vcid, "SAMSUNG_PAY").await {
            Err(e) => fail(&e),
            Ok(card_ref) => {
                let admin = admin.trim_end_matches('/');
                let body = json!({"action": "RESUME", "virtualCardId": vcid, "reason": "CARDHOLDER_VERIFIED", "operator": "simulated agent", "verification": "security questions"});
                match post(
                    &http,
                    &format!("{admin}/cards/{card_ref}/token-actions"),
                    token,
                    &body,
                )
                .await
                {
                    Ok((202, answer)) => {
                        let id = answer
                            .get("operationId")
                            .and_then(Value::as_i64)
                            .unwrap_or(0);
                        println!(
                            "   admin    POST /cards/{card_ref}/token-actions RESUME (operator, verification) -> 202 operation {id}"
                        );
                        confirmed(&http, &format!("{admin}/operations/{id}"), token).await
                    }
                    Ok((status, answer)) => fail(&format!(
                        "POST /cards/{card_ref}/token-actions answered {status} {answer}"
                    )),
                    Err(e) => fail(&e),
                }
            }
        };
    }
    ok
}

fn fail(why: &str) -> bool {
    println!("   !! NOT AS EXPECTED: {why}");
    false
}

/// The card's wallet for this option: `want` when the card allows it, else its first.
fn wallet<'a>(card: &'a SimCard, want: &'a str) -> &'a str {
    if card.wallets.is_empty() || card.wallets.iter().any(|w| w == want) {
        want
    } else {
        card.wallet(0)
    }
}

/// Eligibility and a digitization stepping up; the waiting token registered with the simulated
/// TSH. Returns the card's reference.
async fn yellow(
    tsh: &Tsh,
    http: &reqwest::Client,
    o: &ActivationOptions,
    card: &SimCard,
    cid: &str,
    vcid: &str,
    want_wallet: &str,
) -> Result<String, String> {
    let w = wallet(card, want_wallet);
    let pan = card.pan.expose_digits();
    let a = tsh
        .check_eligibility(cid, pan, &card.exp, w)
        .await
        .map_err(|e| format!("checkCardEligibility: {e}"))?;
    let card_ref = a
        .str("issuerCardRefId")
        .ok_or_else(|| format!("checkCardEligibility answered {}", a.status))?
        .to_owned();
    let d = tsh
        .request_digitization(
            cid,
            pan,
            &card.exp,
            w,
            json!({"cardCaptureInformation": {"captureMethod": "MANUAL"}}),
        )
        .await
        .map_err(|e| format!("requestCardDigitization: {e}"))?;
    let types: Vec<String> = super::methods_of(&d.body)
        .into_iter()
        .map(|(_, t, _)| t)
        .collect();
    println!(
        "   TSH      requestCardDigitization in {w} -> {} with methods {}",
        d.str("levelOfTrust").unwrap_or("?"),
        types.join(", ")
    );
    if d.str("levelOfTrust")
        .map(str::to_ascii_lowercase)
        .as_deref()
        != Some("yellow")
    {
        return Err("the digitization was not answered yellow".into());
    }
    if let Some(sim) = &o.tsh_sim {
        let body = json!({"issuerCardRefId": card_ref, "virtualCardId": vcid, "walletProviderId": w, "tokenStorageId": "SIM-DEVICE", "status": "INACTIVE"});
        let url = format!("{}/_simulator/tokens", sim.trim_end_matches('/'));
        let r = http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("--tsh-sim {url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("--tsh-sim {url}: answered {}", r.status()));
        }
        println!("   TSH      token {vcid} waits for step-up (INACTIVE)");
    }
    Ok(card_ref)
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> Result<(u16, Value), String> {
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// Polls `url` (an operation's view) until its `state` is `confirmed`.
async fn confirmed(http: &reqwest::Client, url: &str, token: &str) -> bool {
    let deadline = Instant::now() + CONFIRM_WITHIN;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(r) = http.get(url).bearer_auth(token).send().await {
            let v: Value = r.json().await.unwrap_or(Value::Null);
            last = v
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            if last == "confirmed" {
                println!("   gateway  the RESUME is confirmed by its notice: {v}");
                return true;
            }
            if matches!(last.as_str(), "failed" | "refused" | "cancelled") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    fail(&format!(
        "the RESUME is {last}, not confirmed within {} s",
        CONFIRM_WITHIN.as_secs()
    ))
}
