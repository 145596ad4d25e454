//! Opening `cipheredCardInfo` once per enrolment.
//!
//! TSH sends the same `cipheredCardInfo` (the same bytes) in `checkCardEligibility` and in the
//! `requestCardDigitization` of one enrolment, and opening it is an RSA private-key operation:
//! the most expensive thing a call does. Eligibility remembers which card its envelope named,
//! under a keyed fingerprint of (correlation id, the exact envelope text); a digitization with the
//! same correlation id and a byte-identical envelope takes the card from there instead of opening
//! the envelope again.
//!
//! Why this answers exactly what a second opening would:
//! - Opening is a pure function of the envelope's bytes and the key ring, and the key ring does not
//!   change while the process runs; this memory does not outlive the process.
//! - What opening yields is used by the digitization only to find the card: PAN -> keyed index ->
//!   card reference, a mapping that never changes (a re-import keeps the reference). The decrypted
//!   expiry and CVV are not used by the decision (it reads the card's record), and their form was
//!   checked at eligibility by the same deterministic code. The card itself is read from the
//!   database again, so its status and contact details are current.
//! - Only an envelope that opened and named a known card is remembered; any other envelope, a
//!   single byte changed, or another correlation id, misses and is opened as before (with the same
//!   errors). A hit tells the caller nothing it did not send itself.
//! - Nothing card-derived is kept but the opaque card reference: the key is an HMAC (the data
//!   fingerprint key), not the envelope. Entries live 10 minutes at most, 100,000 at most.
//! - With several instances, a digitization reaching another instance misses and opens the
//!   envelope: correctness never depends on this memory, which is safe to lose.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries older than this are forgotten (an enrolment's digitization follows its eligibility
/// within seconds).
const TTL: Duration = Duration::from_secs(10 * 60);
/// At most this many entries (about 200 bytes each).
const CAPACITY: usize = 100_000;

/// What an opened envelope named: the card, and the expiry it carried (digitization checks it
/// against the record as eligibility does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    pub card_ref: String,
    pub exp: Option<crate::domain::Expiry>,
}

#[derive(Default)]
pub struct OpenedCards {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Card reference, time remembered, and the entry's number in `order`.
    cards: HashMap<String, (Remembered, Instant, u64)>,
    order: VecDeque<(String, Instant, u64)>,
    next: u64,
}

impl OpenedCards {
    pub fn new() -> Self {
        Self::default()
    }

    /// The key of an envelope within an enrolment.
    pub fn key(keys: &crate::data_keys::DataKeys, correlation_id: &str, envelope: &str) -> String {
        keys.fingerprint(
            "opened-card-info",
            &[correlation_id.as_bytes(), envelope.as_bytes()],
        )
    }

    /// Remembers that the envelope of `key` named `card_ref`.
    pub fn remember(&self, key: String, card_ref: &str, exp: Option<crate::domain::Expiry>) {
        let now = Instant::now();
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.expire(now);
        while inner.order.len() >= CAPACITY {
            inner.pop_oldest();
        }
        let n = inner.next;
        inner.next = n.wrapping_add(1);
        inner.order.push_back((key.clone(), now, n));
        let card = Remembered {
            card_ref: card_ref.to_owned(),
            exp,
        };
        inner.cards.insert(key, (card, now, n));
    }

    /// The card reference remembered for `key`, if any and still fresh.
    pub fn recall(&self, key: &str) -> Option<Remembered> {
        let inner = self.inner.lock().ok()?;
        inner
            .cards
            .get(key)
            .filter(|(_, at, _)| at.elapsed() < TTL)
            .map(|(card, _, _)| card.clone())
    }
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(_, at, _)| now.duration_since(*at) >= TTL)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((key, _, n)) = self.order.pop_front() {
            // The key may have been remembered again since: keep the newer entry.
            if self.cards.get(&key).is_some_and(|(_, _, m)| *m == n) {
                self.cards.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_key_and_forgets_the_oldest_beyond_capacity() {
        let o = OpenedCards::new();
        o.remember("k1".into(), "card-1", None);
        o.remember("k2".into(), "card-2", None);
        assert_eq!(
            o.recall("k1").map(|c| c.card_ref).as_deref(),
            Some("card-1")
        );
        assert_eq!(o.recall("k3"), None);
        o.remember("k1".into(), "card-1", None);
        {
            let mut inner = o.inner.lock().unwrap();
            inner.pop_oldest();
            inner.pop_oldest();
        }
        // The first "k1" entry was superseded, so popping it kept the newer one.
        assert_eq!(
            o.recall("k1").map(|c| c.card_ref).as_deref(),
            Some("card-1")
        );
        assert_eq!(o.recall("k2"), None);
    }
}
