//! The circuit breaker of one provider: after `failures` failed attempts in a row the provider is
//! *open* (skipped while another provider of the channel can be tried) for `open_ms`; then the
//! next send probes it (*half-open*: the one probe re-arms the open period, so that sends racing
//! it skip the provider meanwhile); an accepted message closes it again.
//!
//! It lives in the process (each instance judges its providers itself): it is a cache of recent
//! outcomes, safe to lose. Time is the gateway's clock (milliseconds), given by the caller, so that
//! tests move it instead of sleeping.

use crate::domain::Millis;
use serde::Serialize;
use std::sync::Mutex;

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Tried as usual.
    Closed,
    /// Skipped until `open_until`.
    Open,
    /// The open period is over: the next send probes the provider.
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Failed attempts in a row.
    failures: u32,
    /// Set once the breaker opened: until when it stays open.
    open_until: Option<Millis>,
    /// A probe is under way (let through by a half-open breaker).
    probing: bool,
    /// Times the breaker opened since the start.
    opened: u64,
}

/// One provider's breaker.
#[derive(Debug)]
pub struct Breaker {
    /// 0: never opens.
    threshold: u32,
    open_ms: i64,
    inner: Mutex<Inner>,
}

/// What `/health` and the metrics show of a breaker.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerView {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// Epoch milliseconds, while open.
    pub open_until: Option<i64>,
    pub times_opened: u64,
}

impl Breaker {
    pub fn new(threshold: u32, open_seconds: u64) -> Breaker {
        Breaker {
            threshold,
            open_ms: i64::try_from(open_seconds.saturating_mul(1000)).unwrap_or(i64::MAX),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn state_of(inner: &Inner, now: Millis) -> BreakerState {
        match inner.open_until {
            None => BreakerState::Closed,
            Some(t) if now < t => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    pub fn state(&self, now: Millis) -> BreakerState {
        Self::state_of(&self.lock(), now)
    }

    /// Whether a send may try the provider now. A half-open breaker lets this one send through
    /// as its probe and stays open for the others until the probe's outcome is known (or for
    /// another open period, if the probe never reports).
    pub fn try_acquire(&self, now: Millis) -> bool {
        let mut inner = self.lock();
        match Self::state_of(&inner, now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                inner.open_until = Some(now.plus(Millis(self.open_ms)));
                inner.probing = true;
                true
            }
        }
    }

    /// An attempt's outcome: accepted closes the breaker; a failure counts, and opens it at the
    /// threshold (again at once after a failed probe).
    pub fn record(&self, accepted: bool, now: Millis) {
        let mut inner = self.lock();
        if accepted {
            *inner = Inner {
                opened: inner.opened,
                ..Inner::default()
            };
            return;
        }
        inner.failures = inner.failures.saturating_add(1);
        let opens =
            inner.probing || (inner.open_until.is_none() && inner.failures >= self.threshold);
        if self.threshold > 0 && opens {
            inner.opened += 1;
            inner.probing = false;
            inner.open_until = Some(now.plus(Millis(self.open_ms)));
        }
    }

    pub fn view(&self, now: Millis) -> BreakerView {
        let inner = self.lock();
        let state = Self::state_of(&inner, now);
        BreakerView {
            state,
            consecutive_failures: inner.failures,
            open_until: match state {
                BreakerState::Closed => None,
                _ => inner.open_until.map(|t| t.0),
            },
            times_opened: inner.opened,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_at_the_threshold_is_probed_once_and_closes_on_success() {
        let b = Breaker::new(3, 30);
        let t = Millis(1_000_000);
        for _ in 0..2 {
            assert!(b.try_acquire(t));
            b.record(false, t);
        }
        assert_eq!(b.state(t), BreakerState::Closed);
        b.record(false, t);
        assert_eq!(b.state(t), BreakerState::Open);
        assert!(!b.try_acquire(t.plus(Millis(29_999))));
        // The period is over: one probe goes through, the sends racing it do not.
        let later = t.plus(Millis(30_000));
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert!(b.try_acquire(later));
        assert!(!b.try_acquire(later));
        // The probe failed: open again for a full period.
        b.record(false, later);
        assert_eq!(b.state(later.plus(Millis(29_999))), BreakerState::Open);
        let again = later.plus(Millis(30_000));
        assert!(b.try_acquire(again));
        b.record(true, again);
        assert_eq!(b.state(again), BreakerState::Closed);
        assert_eq!(b.view(again).consecutive_failures, 0);
        assert_eq!(b.view(again).times_opened, 2);
    }

    #[test]
    fn a_success_resets_the_count_and_zero_never_opens() {
        let b = Breaker::new(2, 30);
        let t = Millis(0);
        b.record(false, t);
        b.record(true, t);
        b.record(false, t);
        assert_eq!(b.state(t), BreakerState::Closed);
        let never = Breaker::new(0, 30);
        for _ in 0..100 {
            never.record(false, t);
        }
        assert!(never.try_acquire(t));
    }
}
