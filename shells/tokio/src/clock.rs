//! Wall-clock time for the core, which reads no clock itself.

use std::time::{SystemTime, UNIX_EPOCH};

use tenure_core::Timestamp;

/// Wall-clock time, optionally shifted (the CLI's hidden `--now`, for tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    offset_millis: i64,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock::default()
    }

    /// A clock that reads `at` now and runs on from there.
    pub fn starting_at(at: Timestamp) -> Self {
        Clock {
            offset_millis: at.unix_millis() - system_millis(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(system_millis() + self.offset_millis)
    }
}

fn system_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
