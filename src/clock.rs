//! Time, injectable so that tests can move it instead of sleeping.

use crate::domain::Millis;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(OffsetDateTime::now_utc))
    }

    /// A clock that reads `ms` (milliseconds since the epoch); tests move it with `store`.
    pub fn manual(ms: Arc<AtomicI64>) -> Clock {
        Clock(Arc::new(move || {
            let ms = ms.load(Ordering::SeqCst);
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        }))
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.0)()
    }

    pub fn now_ms(&self) -> Millis {
        Millis(to_ms(self.now()))
    }
}

pub fn to_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// RFC 3339 for display.
pub fn format_ms(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms.0) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.0.to_string())
}
