//! `issuer-gateway simulate`: TSH played against a running gateway with the test cards of a card
//! file. Without `--count`, one enrolment of each kind, printed step by step; with `--count N`,
//! a load run ([`super::load`]).
//!
//! An enrolment goes the way TSH drives it: `checkCardEligibility`, then
//! `requestCardDigitization` with the *same* sealed `cipheredCardInfo`, then on yellow a
//! `sendOTP` on the offered method of the kind's channel, then `notifyVirtualCardChange`
//! ACTIVATE with an encrypted `tokenInfo` (green and yellow). The decisions asked for rely on the
//! default policy: `cvvValidated` -> green, manual capture -> yellow, a device score of 1 -> red.

use super::{Answer, Tsh};
use crate::domain::{CardStatus, Pan};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The command line of `simulate`.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub target: String,
    pub issuer_id: String,
    pub cert: PathBuf,
    pub cards: PathBuf,
    pub count: Option<u64>,
    pub concurrency: usize,
    pub eligibility_only: bool,
    /// `--rate`: enrolments started per second, paced.
    pub rate: Option<f64>,
    /// `--write-requests`: write eligibility bodies instead of calling the gateway.
    pub write_requests: Option<PathBuf>,
    /// Mutual TLS: the client certificate chain and key to present, and extra CAs to trust.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    /// Options C and D (`--app-url`, `--admin-url`), played after the enrolments.
    pub activations: super::activations::ActivationOptions,
}

/// The default base path appended to a `--target` given without a path.
pub const DEFAULT_BASE_PATH: &str = "/issuer/igwapi/v2.0";

/// Wallets used for cards that allow every wallet, in turn.
const WALLETS: [&str; 3] = ["APPLE_PAY", "GOOGLE_PAY", "SAMSUNG_PAY"];

/// A card of the card file, as the simulator uses it. Destinations are kept only to spread the
/// sends over them (rate limits); they are never printed.
#[derive(Debug, Clone)]
pub struct SimCard {
    pub pan: Pan,
    pub exp: String,
    pub usable: bool,
    pub status: CardStatus,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub wallets: Vec<String>,
}

impl SimCard {
    /// The wallet of the `n`th enrolment with this card.
    pub fn wallet(&self, n: u64) -> &str {
        let pick = |list: &[&'static str]| -> &'static str {
            let len = list.len().max(1) as u64;
            list.get(usize::try_from(n % len).unwrap_or(0))
                .copied()
                .unwrap_or("APPLE_PAY")
        };
        if self.wallets.is_empty() {
            pick(&WALLETS)
        } else {
            let len = self.wallets.len() as u64;
            self.wallets
                .get(usize::try_from(n % len).unwrap_or(0))
                .map(String::as_str)
                .unwrap_or("APPLE_PAY")
        }
    }
}

/// The kinds of enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Green,
    YellowSms,
    YellowEmail,
    Red,
    /// Only `checkCardEligibility` (the `--eligibility-only` load).
    EligibilityOnly,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Green => "green",
            Kind::YellowSms => "yellow-sms",
            Kind::YellowEmail => "yellow-email",
            Kind::Red => "red",
            Kind::EligibilityOnly => "eligibility-only",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::Green => "green (CVV validated)",
            Kind::YellowSms => "yellow with SMS OTP (manual capture)",
            Kind::YellowEmail => "yellow with e-mail OTP (manual capture)",
            Kind::Red => "red (device score 1)",
            Kind::EligibilityOnly => "eligibility only",
        }
    }

    fn expected_level(self) -> &'static str {
        match self {
            Kind::Green => "green",
            Kind::YellowSms | Kind::YellowEmail => "yellow",
            Kind::Red | Kind::EligibilityOnly => "red",
        }
    }

    fn digitization_signals(self) -> Value {
        match self {
            Kind::Green => json!({
                "cvvValidated": true,
                "cardCaptureInformation": { "captureMethod": "BANK_APP" },
            }),
            Kind::Red => json!({
                "cardCaptureInformation": { "captureMethod": "MANUAL" },
                "scoringInformation": { "deviceScore": "1" },
            }),
            _ => json!({ "cardCaptureInformation": { "captureMethod": "MANUAL" } }),
        }
    }
}

/// The operations, in the order of an enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Eligibility,
    Digitization,
    SendOtp,
    Notify,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Eligibility, Op::Digitization, Op::SendOtp, Op::Notify];

    pub fn name(self) -> &'static str {
        match self {
            Op::Eligibility => "checkCardEligibility",
            Op::Digitization => "requestCardDigitization",
            Op::SendOtp => "sendOTP",
            Op::Notify => "notifyVirtualCardChange",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One call of an enrolment and how it went.
#[derive(Debug, Clone)]
pub struct CallResult {
    pub op: Op,
    /// None when the call got no answer (transport failure).
    pub elapsed: Option<Duration>,
    /// Why the answer was not the expected one.
    pub failure: Option<String>,
    /// A readable account of the answer.
    pub summary: String,
}

/// One enrolment to play.
pub struct Job<'a> {
    pub cid: String,
    pub kind: Kind,
    pub card: &'a SimCard,
    pub wallet: &'a str,
    pub otp: String,
    pub virtual_card_id: String,
    pub dpan: String,
}

/// A random 6-digit OTP (the network's, in real life).
pub fn random_otp() -> String {
    let n = u32::from_be_bytes(crate::data_keys::random_bytes::<4>()) % 1_000_000;
    format!("{n:06}")
}

/// A Luhn-valid 16-digit token number for the `n`th token of a run.
pub fn dpan_for(run: u32, n: u64) -> String {
    let body = format!("489537{:04}{:05}", run % 10_000, n % 100_000);
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b.saturating_sub(b'0'));
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

fn describe(a: &Answer) -> String {
    if a.status == 200 {
        "HTTP 200".into()
    } else {
        format!("HTTP {} responseCode {}", a.status, a.code())
    }
}

fn transport(op: Op, e: &anyhow::Error) -> CallResult {
    // The innermost cause is the telling one (e.g. "Connection refused").
    let reason = e
        .chain()
        .last()
        .map(ToString::to_string)
        .unwrap_or_default();
    CallResult {
        op,
        elapsed: None,
        failure: Some(format!("no answer ({reason})")),
        summary: String::new(),
    }
}

/// What an enrolment did: every call made, and the card reference eligibility answered.
pub struct Played {
    pub calls: Vec<CallResult>,
    pub card_ref: Option<String>,
}

/// Plays one enrolment. Stops at the first unexpected answer.
pub async fn enrol(tsh: &Tsh, job: &Job<'_>) -> Played {
    let mut calls = Vec::with_capacity(4);
    let card_ref = play(tsh, job, &mut calls).await;
    Played { calls, card_ref }
}

async fn play(tsh: &Tsh, job: &Job<'_>, out: &mut Vec<CallResult>) -> Option<String> {
    let ciphered = match tsh.card_info(job.card.pan.expose_digits(), Some(&job.card.exp)) {
        Ok(c) => c,
        Err(e) => {
            out.push(CallResult {
                op: Op::Eligibility,
                elapsed: None,
                failure: Some(format!("cannot seal the card data: {e}")),
                summary: String::new(),
            });
            return None;
        }
    };

    // 1. Eligibility.
    let a = match tsh
        .check_eligibility_sealed(&job.cid, &ciphered, job.wallet)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            out.push(transport(Op::Eligibility, &e));
            return None;
        }
    };
    let card_ref = a.str("issuerCardRefId").unwrap_or_default().to_owned();
    let ok = a.status == 200 && !card_ref.is_empty();
    out.push(CallResult {
        op: Op::Eligibility,
        elapsed: Some(a.elapsed),
        failure: (!ok).then(|| describe(&a)),
        summary: format!(
            "{}: issuerCardRefId={card_ref}, productId={}",
            describe(&a),
            a.str("productId").unwrap_or("?")
        ),
    });
    if !ok {
        return None;
    }
    if job.kind == Kind::EligibilityOnly {
        return Some(card_ref);
    }

    // 2. Digitization, with the same sealed card data.
    let a = match tsh
        .request_digitization_sealed(
            &job.cid,
            &ciphered,
            job.wallet,
            job.kind.digitization_signals(),
        )
        .await
    {
        Ok(a) => a,
        Err(e) => {
            out.push(transport(Op::Digitization, &e));
            return None;
        }
    };
    let level = a.str("levelOfTrust").unwrap_or("").to_ascii_lowercase();
    let methods = super::methods_of(&a.body);
    let listed: Vec<String> = methods.iter().map(|(_, t, v)| format!("{t} {v}")).collect();
    let failure = if a.status != 200 {
        Some(describe(&a))
    } else if level != job.kind.expected_level() {
        Some(format!(
            "levelOfTrust '{level}', expected {}",
            job.kind.expected_level()
        ))
    } else {
        None
    };
    let failed = failure.is_some();
    out.push(CallResult {
        op: Op::Digitization,
        elapsed: Some(a.elapsed),
        failure,
        summary: if listed.is_empty() {
            format!("{}: levelOfTrust={level}", describe(&a))
        } else {
            format!(
                "{}: levelOfTrust={level}, methods: {}",
                describe(&a),
                listed.join(", ")
            )
        },
    });
    if failed || job.kind == Kind::Red {
        return Some(card_ref);
    }

    // 3. On yellow, the OTP on the kind's channel (told apart by the masked value's shape, since
    // the method types are configurable: a masked destination has '*'; the bank's app and
    // customer service show a name or a number to call).
    if matches!(job.kind, Kind::YellowSms | Kind::YellowEmail) {
        let want_email = job.kind == Kind::YellowEmail;
        let method = methods
            .iter()
            .find(|(_, _, v)| v.contains('*') && v.contains('@') == want_email);
        let Some((id, _, value)) = method else {
            out.push(CallResult {
                op: Op::SendOtp,
                elapsed: None,
                failure: Some(format!(
                    "no {} method offered",
                    if want_email { "e-mail" } else { "SMS" }
                )),
                summary: String::new(),
            });
            return None;
        };
        let a = match tsh
            .send_otp(&job.cid, &card_ref, &job.otp, Some(id), job.wallet)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                out.push(transport(Op::SendOtp, &e));
                return None;
            }
        };
        let ok = a.status == 200;
        out.push(CallResult {
            op: Op::SendOtp,
            elapsed: Some(a.elapsed),
            failure: (!ok).then(|| match a.str("errorMessage") {
                Some(m) if a.code() == 164 || a.code() == 170 => {
                    format!("{} ({m})", describe(&a))
                }
                _ => describe(&a),
            }),
            summary: format!("{}: OTP sent to {value}", describe(&a)),
        });
        if !ok {
            return Some(card_ref);
        }
    }

    // 4. The token is activated.
    out.push(notice(tsh, job, &card_ref, "ACTIVATE", Some((&job.dpan, "1229"))).await);
    Some(card_ref)
}

/// A `notifyVirtualCardChange` of the job's token.
pub async fn notice(
    tsh: &Tsh,
    job: &Job<'_>,
    card_ref: &str,
    action: &str,
    dpan: Option<(&str, &str)>,
) -> CallResult {
    match tsh
        .notify(
            &job.cid,
            card_ref,
            &job.virtual_card_id,
            action,
            job.wallet,
            dpan,
        )
        .await
    {
        Ok(a) => {
            let ok = a.status == 200;
            CallResult {
                op: Op::Notify,
                elapsed: Some(a.elapsed),
                failure: (!ok).then(|| describe(&a)),
                summary: format!("{}: {action} token {}", describe(&a), job.virtual_card_id),
            }
        }
        Err(e) => transport(Op::Notify, &e),
    }
}

/// Reads the card file (the card-file format of `cards import`). Rejected lines are reported on
/// standard error by line number and reason, never with their PAN.
pub fn read_cards(path: &std::path::Path) -> anyhow::Result<Vec<SimCard>> {
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("--cards {}: {e}", path.display()))?;
    let parsed = crate::card_file::parse(std::io::BufReader::new(file))
        .map_err(|e| anyhow::anyhow!("--cards {}: {e}", path.display()))?;
    let now = time::OffsetDateTime::now_utc();
    let mut cards = Vec::new();
    for (line, r) in parsed.lines {
        match r {
            Ok(c) => cards.push(SimCard {
                usable: c.status == CardStatus::Active && !c.exp.is_expired_at(now),
                exp: c.exp.mmyy(),
                status: c.status,
                phone: c.phone.as_ref().map(|p| p.expose().to_owned()),
                email: c.email.as_ref().map(|e| e.expose().to_ascii_lowercase()),
                wallets: c.wallets.clone(),
                pan: c.pan,
            }),
            Err(reason) => eprintln!("warning: --cards line {line}: {reason}; skipped"),
        }
    }
    Ok(cards)
}

/// The gateway's operations URL from `--target`: a URL without a path gets the default base
/// path.
pub fn base_url(target: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(target)
        .map_err(|e| anyhow::anyhow!("--target '{target}': not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("--target '{target}': must be an http:// or https:// URL");
    }
    let trimmed = target.trim_end_matches('/');
    if url.path() == "/" || url.path().is_empty() {
        Ok(format!("{trimmed}{DEFAULT_BASE_PATH}"))
    } else {
        Ok(trimmed.to_owned())
    }
}

/// An HTTP client presenting `--client-cert` and trusting `--ca`, for a gateway that speaks
/// mutual TLS.
fn tls_client(o: &SimulateOptions) -> anyhow::Result<reqwest::Client> {
    crate::install_crypto_provider();
    let read = |flag: &str, p: &PathBuf| {
        std::fs::read(p).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", p.display()))
    };
    let mut b = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .pool_max_idle_per_host(1024)
        .tls_built_in_root_certs(true);
    if let Some(ca) = &o.ca {
        let certs = reqwest::Certificate::from_pem_bundle(&read("--ca", ca)?)
            .map_err(|_| anyhow::anyhow!("--ca {}: not PEM certificates", ca.display()))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let (Some(cert), Some(key)) = (&o.client_cert, &o.client_key) {
        let mut pem = zeroize::Zeroizing::new(read("--client-cert", cert)?);
        pem.extend_from_slice(b"\n");
        pem.extend_from_slice(&zeroize::Zeroizing::new(read("--client-key", key)?));
        let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
            anyhow::anyhow!(
                "--client-cert/--client-key: not a PEM certificate chain and private key"
            )
        })?;
        b = b.identity(identity);
    }
    Ok(b.build()?)
}

/// Runs `simulate`. Ok(true) when every call was answered as expected.
pub async fn simulate(o: SimulateOptions) -> anyhow::Result<bool> {
    let base = base_url(&o.target)?;
    let cert = std::fs::read_to_string(&o.cert)
        .map_err(|e| anyhow::anyhow!("--cert {}: {e}", o.cert.display()))?;
    let mut tsh = Tsh::new(&base, &o.issuer_id, &cert)?;
    if o.client_cert.is_some() || o.ca.is_some() {
        tsh = tsh.with_http_client(tls_client(&o)?);
    }
    let cards = read_cards(&o.cards)?;
    let usable = cards.iter().filter(|c| c.usable).count();
    if usable == 0 {
        anyhow::bail!(
            "--cards {}: no active, unexpired card to enrol",
            o.cards.display()
        );
    }
    let run = u32::from_be_bytes(crate::data_keys::random_bytes::<4>());
    if let (Some(path), Some(count)) = (&o.write_requests, o.count) {
        return write_requests(&tsh, &cards, path, count).map(|()| true);
    }
    match o.count {
        Some(count) => {
            super::load::run(
                &tsh,
                &cards,
                super::load::LoadOptions {
                    count,
                    concurrency: o.concurrency.max(1),
                    eligibility_only: o.eligibility_only,
                    rate: o.rate,
                    run,
                    target: base,
                },
            )
            .await
        }
        None => Ok(walkthrough(&tsh, &cards, &base, &o, run).await),
    }
}

/// One enrolment of each kind, printed step by step.
async fn walkthrough(
    tsh: &Tsh,
    cards: &[SimCard],
    base: &str,
    o: &SimulateOptions,
    run: u32,
) -> bool {
    println!(
        "simulate: playing TSH against {base} as issuer {}, with {} cards from {}",
        o.issuer_id,
        cards.len(),
        o.cards.display()
    );
    let usable: Vec<&SimCard> = cards.iter().filter(|c| c.usable).collect();
    let mut ok = true;
    let mut next = 0usize;
    let mut pick = |want: &dyn Fn(&SimCard) -> bool| -> Option<&SimCard> {
        let n = usable.len();
        (0..n).find_map(|k| {
            let c = usable.get((next + k) % n.max(1))?;
            if want(c) {
                next = (next + k + 1) % n.max(1);
                Some(*c)
            } else {
                None
            }
        })
    };
    let mut tokens = 0u64;
    for kind in [Kind::Green, Kind::YellowSms, Kind::YellowEmail, Kind::Red] {
        let card = match kind {
            Kind::YellowSms => pick(&|c: &SimCard| c.phone.is_some()),
            Kind::YellowEmail => pick(&|c: &SimCard| c.email.is_some()),
            _ => pick(&|_: &SimCard| true),
        };
        println!();
        let Some(card) = card else {
            println!(
                "== {}: skipped, no active card in the file has {}",
                kind.title(),
                if kind == Kind::YellowSms {
                    "a phone number"
                } else {
                    "an e-mail address"
                }
            );
            continue;
        };
        tokens += 1;
        let job = Job {
            cid: format!("sim-{run:08x}-{}", kind.name()),
            kind,
            card,
            wallet: card.wallet(tokens),
            otp: random_otp(),
            virtual_card_id: format!("SIMV{run:08X}{tokens:04}"),
            dpan: dpan_for(run, tokens),
        };
        println!(
            "== {}: card {} in {}, correlation id {}",
            kind.title(),
            card.pan.masked(),
            job.wallet,
            job.cid
        );
        let played = enrol(tsh, &job).await;
        ok &= print_results(&played.calls);
        let completed = played.calls.iter().all(|r| r.failure.is_none());
        if let (Kind::Green, true, Some(card_ref)) = (kind, completed, played.card_ref) {
            // The token's life goes on: suspended, resumed, and a duplicate notice.
            let mut more = Vec::new();
            more.push(notice(tsh, &job, &card_ref, "SUSPEND", None).await);
            more.push(notice(tsh, &job, &card_ref, "RESUME", None).await);
            let mut dup = notice(tsh, &job, &card_ref, "RESUME", None).await;
            dup.summary = format!("{} (the same notice again: recorded once)", dup.summary);
            more.push(dup);
            ok &= print_results(&more);
        }
    }
    if let Some(card) = cards.iter().find(|c| !c.usable) {
        println!();
        println!(
            "== a card the issuer does not allow ({}, exp {}): {}",
            card.status,
            card.exp,
            card.pan.masked()
        );
        let cid = format!("sim-{run:08x}-refused");
        match tsh
            .check_eligibility(&cid, card.pan.expose_digits(), &card.exp, card.wallet(0))
            .await
        {
            Ok(a) => {
                let expected = a.status != 200 && matches!(a.code(), 159 | 160 | 191);
                println!(
                    "   {:<26} {}: {}  ({:.1} ms){}",
                    Op::Eligibility.name(),
                    describe(&a),
                    a.str("errorMessage").unwrap_or(""),
                    a.elapsed.as_secs_f64() * 1000.0,
                    if expected {
                        "  refused, as expected"
                    } else {
                        "  !! expected a refusal (159, 160 or 191)"
                    }
                );
                ok &= expected;
            }
            Err(e) => {
                ok = false;
                println!(
                    "   {:<26} !! {}",
                    Op::Eligibility.name(),
                    transport(Op::Eligibility, &e).failure.unwrap_or_default()
                );
            }
        }
    }
    if o.activations.any() {
        ok &= super::activations::play(tsh, cards, &o.activations, run).await;
    }
    println!();
    if ok {
        println!("simulate: every call was answered as expected.");
    } else {
        println!("simulate: some calls were not answered as expected (see !! above).");
    }
    ok
}

/// Prints each call; true when all were as expected.
fn print_results(results: &[CallResult]) -> bool {
    let mut ok = true;
    for r in results {
        let ms = r
            .elapsed
            .map(|d| format!("  ({:.1} ms)", d.as_secs_f64() * 1000.0))
            .unwrap_or_default();
        match &r.failure {
            None => println!("   {:<26} {}{ms}", r.op.name(), r.summary),
            Some(f) => {
                ok = false;
                println!("   {:<26} !! NOT AS EXPECTED: {f}{ms}", r.op.name());
            }
        }
    }
    ok
}

/// `--write-requests`: `count` checkCardEligibility bodies, one JSON object per line, taking
/// the usable cards in turn, each envelope sealed afresh (as TSH seals every call).
fn write_requests(tsh: &Tsh, cards: &[SimCard], path: &Path, count: u64) -> anyhow::Result<()> {
    use std::io::Write as _;
    let usable: Vec<&SimCard> = cards.iter().filter(|c| c.usable).collect();
    if usable.is_empty() {
        anyhow::bail!("the card file holds no active card to seal");
    }
    let file = std::fs::File::create(path)
        .map_err(|e| anyhow::anyhow!("--write-requests {}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for i in 0..count {
        let Some(card) = usize::try_from(i)
            .ok()
            .and_then(|i| usable.get(i % usable.len()))
        else {
            break;
        };
        let body = serde_json::json!({
            "cipheredCardInfo": tsh.card_info(card.pan.expose_digits(), Some(&card.exp))?,
            "walletProviderId": card.wallet(i),
            "captureMethod": "MANUAL",
        });
        writeln!(out, "{body}")
            .map_err(|e| anyhow::anyhow!("--write-requests {}: {e}", path.display()))?;
    }
    out.flush()
        .map_err(|e| anyhow::anyhow!("--write-requests {}: {e}", path.display()))?;
    eprintln!(
        "simulate: wrote {count} checkCardEligibility bodies to {}",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_numbers_are_luhn_valid() {
        for n in [0, 1, 7, 99_999, 123_456] {
            let d = dpan_for(0xdead_beef, n);
            assert_eq!(d.len(), 16);
            assert!(crate::domain::Pan::parse(&d).is_ok(), "{d}");
        }
    }

    #[test]
    fn target_without_path_gets_the_base_path() {
        assert_eq!(
            base_url("http://127.0.0.1:8443").unwrap(),
            "http://127.0.0.1:8443/issuer/igwapi/v2.0"
        );
        assert_eq!(
            base_url("http://gw:1/custom/v2/").unwrap(),
            "http://gw:1/custom/v2"
        );
        assert!(base_url("ftp://x").is_err());
    }
}
