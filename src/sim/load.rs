//! The load generator of `simulate --count N --concurrency C`: N complete enrolments played by C
//! concurrent workers over keep-alive connections (one reqwest pool), a progress line on standard
//! error every second, then the throughput and latency percentiles of each operation and the
//! errors.
//!
//! How a run picks its enrolments: the kinds take turns (green, yellow with SMS, yellow with
//! e-mail, red) and each kind takes the next active card of the file able to do it, round robin.
//! A yellow enrolment sends one OTP; to stay inside the gateway's default send limits (5 per card
//! and 5 per destination per hour), a card or destination gets at most [`SEND_BUDGET`] sends in a
//! run, and a yellow enrolment that no card can take any more is played green instead (the plan
//! printed at the start says how many). The OTP channels' global per-second budgets
//! (`limits.sms_per_second`, `limits.email_per_second`) are the gateway's to set: a load test
//! above them sees sendOTP refused with 164.

use super::Tsh;
use super::scenario::{Job, Kind, Op, SimCard, dpan_for, enrol, random_otp};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Sends a run gives one card or one destination at most (below the default limit of 5 an hour).
pub const SEND_BUDGET: u32 = 4;

pub struct LoadOptions {
    pub count: u64,
    pub concurrency: usize,
    pub eligibility_only: bool,
    /// Enrolments started per second in all (paced: enrolment `i` starts at `i / rate` seconds
    /// into the run, whatever the answers' times); `None`: as fast as the workers go.
    pub rate: Option<f64>,
    /// A random number naming the run (correlation ids, tokens).
    pub run: u32,
    pub target: String,
}

#[derive(Clone, Copy)]
struct Planned {
    kind: Kind,
    card: u32,
}

struct Plan {
    jobs: Vec<Planned>,
    kinds: BTreeMap<Kind, u64>,
    downgraded: u64,
}

/// Assigns a kind and a card to each enrolment (see the module's documentation).
fn plan(cards: &[SimCard], count: u64, eligibility_only: bool) -> Plan {
    let usable: Vec<u32> = (0..cards.len())
        .filter(|i| cards.get(*i).is_some_and(|c| c.usable))
        .filter_map(|i| u32::try_from(i).ok())
        .collect();
    let card = |i: u32| cards.get(i as usize);
    let sms: Vec<u32> = usable
        .iter()
        .copied()
        .filter(|i| card(*i).is_some_and(|c| c.phone.is_some()))
        .collect();
    let email: Vec<u32> = usable
        .iter()
        .copied()
        .filter(|i| card(*i).is_some_and(|c| c.email.is_some()))
        .collect();
    let mut card_sends: HashMap<u32, u32> = HashMap::new();
    let mut dest_sends: HashMap<String, u32> = HashMap::new();
    let (mut next_any, mut next_sms, mut next_email) = (0usize, 0usize, 0usize);
    let mut jobs = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut kinds = BTreeMap::new();
    let mut downgraded = 0;
    let cycle = [Kind::Green, Kind::YellowSms, Kind::YellowEmail, Kind::Red];
    for i in 0..count {
        let wanted = if eligibility_only {
            Kind::EligibilityOnly
        } else {
            cycle
                .get(usize::try_from(i % 4).unwrap_or(0))
                .copied()
                .unwrap_or(Kind::Green)
        };
        let yellow = match wanted {
            Kind::YellowSms => Some((&sms, &mut next_sms, true)),
            Kind::YellowEmail => Some((&email, &mut next_email, false)),
            _ => None,
        };
        let mut chosen = None;
        if let Some((list, cursor, is_sms)) = yellow {
            for _ in 0..list.len() {
                let idx = list.get(*cursor % list.len()).copied();
                *cursor = (*cursor + 1) % list.len();
                let Some(idx) = idx else { continue };
                let Some(c) = card(idx) else { continue };
                let dest = if is_sms { &c.phone } else { &c.email };
                let dest_key = dest.clone().unwrap_or_default();
                let used_card = card_sends.get(&idx).copied().unwrap_or(0);
                let used_dest = dest_sends.get(&dest_key).copied().unwrap_or(0);
                if used_card < SEND_BUDGET && used_dest < SEND_BUDGET {
                    *card_sends.entry(idx).or_insert(0) += 1;
                    *dest_sends.entry(dest_key).or_insert(0) += 1;
                    chosen = Some((wanted, idx));
                    break;
                }
            }
            if chosen.is_none() {
                downgraded += 1;
            }
        }
        let (kind, idx) = match chosen {
            Some(c) => c,
            None => {
                let kind = if yellow_kind(wanted) {
                    Kind::Green
                } else {
                    wanted
                };
                let idx = usable
                    .get(next_any % usable.len().max(1))
                    .copied()
                    .unwrap_or(0);
                next_any = next_any.wrapping_add(1);
                (kind, idx)
            }
        };
        *kinds.entry(kind).or_insert(0) += 1;
        jobs.push(Planned { kind, card: idx });
    }
    Plan {
        jobs,
        kinds,
        downgraded,
    }
}

fn yellow_kind(k: Kind) -> bool {
    matches!(k, Kind::YellowSms | Kind::YellowEmail)
}

/// What one worker measured.
#[derive(Default)]
struct Stats {
    /// Latency in microseconds of every answered call, by operation.
    latency_us: [Vec<u32>; 4],
    /// Unexpected answers by operation and reason.
    errors: BTreeMap<(Op, String), u64>,
    failed_enrolments: u64,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        for (mine, theirs) in self.latency_us.iter_mut().zip(other.latency_us) {
            mine.extend(theirs);
        }
        for (k, n) in other.errors {
            *self.errors.entry(k).or_insert(0) += n;
        }
        self.failed_enrolments += other.failed_enrolments;
    }
}

#[derive(Default)]
struct Progress {
    enrolments: AtomicU64,
    calls: AtomicU64,
    errors: AtomicU64,
}

/// Runs the load. Ok(true) when every call was answered as expected.
pub async fn run(tsh: &Tsh, cards: &[SimCard], o: LoadOptions) -> anyhow::Result<bool> {
    let plan = plan(cards, o.count, o.eligibility_only);
    let mix: Vec<String> = plan
        .kinds
        .iter()
        .map(|(k, n)| format!("{} {n}", k.name()))
        .collect();
    eprintln!(
        "simulate: {} enrolments ({}) against {} with {} concurrent connections, {} cards",
        o.count,
        mix.join(", "),
        o.target,
        o.concurrency,
        cards.iter().filter(|c| c.usable).count()
    );
    if let Some(rate) = o.rate {
        eprintln!("simulate: paced at {rate} enrolments/s");
    }
    if plan.downgraded > 0 {
        eprintln!(
            "simulate: {} yellow enrolments played green instead: the card file has too few cards with that destination to stay within {SEND_BUDGET} sends per card and per destination",
            plan.downgraded
        );
    }
    let jobs = Arc::new(plan.jobs);
    let cards = Arc::new(cards.to_vec());
    let next = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Progress::default());
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let ticker = {
        let progress = progress.clone();
        let done = done.clone();
        let total = o.count;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last_calls = 0u64;
            loop {
                tick.tick().await;
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let calls = progress.calls.load(Ordering::Relaxed);
                let enrolments = progress.enrolments.load(Ordering::Relaxed);
                eprintln!(
                    "[{:>6.1} s] {enrolments}/{total} enrolments ({:.0}%), {calls} calls, {} calls/s, {} errors",
                    started.elapsed().as_secs_f64(),
                    enrolments as f64 * 100.0 / total.max(1) as f64,
                    calls.saturating_sub(last_calls),
                    progress.errors.load(Ordering::Relaxed)
                );
                let _ = std::io::stderr().flush();
                last_calls = calls;
            }
        })
    };

    let mut workers = Vec::with_capacity(o.concurrency);
    for _ in 0..o.concurrency {
        let tsh = tsh.clone();
        let jobs = jobs.clone();
        let cards = cards.clone();
        let next = next.clone();
        let progress = progress.clone();
        let run = o.run;
        let rate = o.rate;
        let start = tokio::time::Instant::from_std(started);
        workers.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = usize::try_from(i).ok().and_then(|i| jobs.get(i)).copied() else {
                    break;
                };
                if let Some(rate) = rate {
                    // Paced load: this enrolment's start time in the schedule.
                    tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate))
                        .await;
                }
                let Some(card) = cards.get(p.card as usize) else {
                    break;
                };
                let job = Job {
                    cid: format!("sim-{run:08x}-{i:09}"),
                    kind: p.kind,
                    card,
                    wallet: card.wallet(i),
                    otp: random_otp(),
                    virtual_card_id: format!("SIMV{run:08X}{i:09}"),
                    dpan: dpan_for(run, i),
                };
                let played = enrol(&tsh, &job).await;
                let mut failed = false;
                for c in &played.calls {
                    if let (Some(e), Some(slot)) =
                        (c.elapsed, stats.latency_us.get_mut(c.op.index()))
                    {
                        slot.push(u32::try_from(e.as_micros()).unwrap_or(u32::MAX));
                    }
                    if let Some(f) = &c.failure {
                        failed = true;
                        *stats.errors.entry((c.op, f.clone())).or_insert(0) += 1;
                        progress.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if failed {
                    stats.failed_enrolments += 1;
                }
                progress
                    .calls
                    .fetch_add(played.calls.len() as u64, Ordering::Relaxed);
                progress.enrolments.fetch_add(1, Ordering::Relaxed);
            }
            stats
        }));
    }
    let mut stats = Stats::default();
    for w in workers {
        stats.merge(w.await?);
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    ticker.abort();
    print_report(&o, &mut stats, elapsed);
    Ok(stats.errors.is_empty())
}

/// The value at quantile `q` (nearest rank) of sorted values, in milliseconds.
fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted.get(rank - 1).copied().unwrap_or(0)) / 1000.0
}

fn print_report(o: &LoadOptions, stats: &mut Stats, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!();
    println!(
        "simulate: {} enrolments in {:.2} s on {} connections: {:.1} enrolments/s",
        o.count,
        secs,
        o.concurrency,
        o.count as f64 / secs
    );
    println!(
        "{:<26} {:>8} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "operation", "calls", "errors", "calls/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let mut all: Vec<u32> = Vec::new();
    let mut total_errors = 0u64;
    for op in Op::ALL {
        let Some(lat) = stats.latency_us.get_mut(op.index()) else {
            continue;
        };
        lat.sort_unstable();
        let errors: u64 = stats
            .errors
            .iter()
            .filter(|((o, _), _)| *o == op)
            .map(|(_, n)| *n)
            .sum();
        total_errors += errors;
        if lat.is_empty() && errors == 0 {
            continue;
        }
        println!(
            "{:<26} {:>8} {:>7} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            op.name(),
            lat.len(),
            errors,
            lat.len() as f64 / secs,
            quantile_ms(lat, 0.50),
            quantile_ms(lat, 0.90),
            quantile_ms(lat, 0.99),
            quantile_ms(lat, 1.0),
        );
        all.extend_from_slice(lat);
    }
    all.sort_unstable();
    println!(
        "{:<26} {:>8} {:>7} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        "all operations",
        all.len(),
        total_errors,
        all.len() as f64 / secs,
        quantile_ms(&all, 0.50),
        quantile_ms(&all, 0.90),
        quantile_ms(&all, 0.99),
        quantile_ms(&all, 1.0),
    );
    println!();
    if stats.errors.is_empty() {
        println!("errors: none; every enrolment went as expected");
    } else {
        println!(
            "errors: {total_errors} unexpected answers, {} of {} enrolments did not go as expected",
            stats.failed_enrolments, o.count
        );
        for ((op, reason), n) in &stats.errors {
            println!("  {n:>8} x {:<24} {reason}", op.name());
        }
        if stats
            .errors
            .keys()
            .any(|(_, r)| r.contains("responseCode 164"))
        {
            println!(
                "  (164: a send limit of the gateway refused the OTP; for a load test raise limits.* in its configuration or give more cards)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CardStatus, Pan};

    fn card(pan: &str, phone: Option<&str>, email: Option<&str>) -> SimCard {
        SimCard {
            pan: Pan::parse(pan).unwrap(),
            exp: "1299".into(),
            usable: true,
            status: CardStatus::Active,
            phone: phone.map(str::to_owned),
            email: email.map(str::to_owned),
            wallets: vec![],
        }
    }

    #[test]
    fn the_plan_stays_within_the_send_budget() {
        let cards = vec![
            card(
                "4111111111111111",
                Some("+447700900001"),
                Some("a@example.com"),
            ),
            card("5555555555554444", None, Some("b@example.com")),
        ];
        let p = plan(&cards, 100, false);
        assert_eq!(p.jobs.len(), 100);
        let mut per_card = [0u32; 2];
        for j in &p.jobs {
            if yellow_kind(j.kind) {
                per_card[j.card as usize] += 1;
            }
        }
        assert!(per_card.iter().all(|n| *n <= SEND_BUDGET), "{per_card:?}");
        assert_eq!(p.kinds.get(&Kind::Red), Some(&25));
        assert!(p.downgraded > 0);
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(quantile_ms(&v, 0.5), 50.0);
        assert_eq!(quantile_ms(&v, 0.99), 99.0);
        assert_eq!(quantile_ms(&v, 1.0), 100.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
    }
}
