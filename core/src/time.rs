//! Wall-clock time as a plain value.
//!
//! The core never reads a clock. Every input carries `now`, and every expiry is an absolute
//! [`Timestamp`], because expiries are shared between replicas through the store and must mean
//! the same instant to all of them.

use std::fmt;
use std::ops::{Add, Sub};

use serde::{Deserialize, Serialize};

/// An instant of wall-clock time, in milliseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp from whole seconds since the epoch, saturating instead of overflowing.
    pub const fn from_unix_seconds(seconds: i64) -> Self {
        Timestamp(seconds.saturating_mul(1000))
    }

    /// A timestamp from milliseconds since the epoch.
    pub const fn from_unix_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    /// Whole seconds since the epoch (rounded towards negative infinity).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Milliseconds since the epoch.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 date-time such as `2026-01-01T00:00:00Z`.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let parsed =
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .ok()?;
        let millis = parsed.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(millis).ok().map(Timestamp)
    }

    /// Formats as RFC 3339 in UTC, with whole seconds (`2026-01-01T00:00:00Z`).
    pub fn to_rfc3339(self) -> String {
        match time::OffsetDateTime::from_unix_timestamp(self.unix_seconds()) {
            Ok(at) => at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| format!("@{}", self.unix_seconds())),
            Err(_) => format!("@{}", self.unix_seconds()),
        }
    }

    /// The later of two instants.
    pub fn max(self, other: Timestamp) -> Timestamp {
        Ord::max(self, other)
    }

    /// How far `self` lies after `earlier` (zero when it does not).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A span of time in milliseconds, never negative.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Duration(i64);

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration(0);

    /// A span of whole seconds.
    pub const fn from_secs(seconds: i64) -> Self {
        Duration(if seconds < 0 {
            0
        } else {
            seconds.saturating_mul(1000)
        })
    }

    /// A span of milliseconds.
    pub const fn from_millis(millis: i64) -> Self {
        Duration(if millis < 0 { 0 } else { millis })
    }

    /// A span of whole hours.
    pub const fn from_hours(hours: i64) -> Self {
        Duration::from_secs(hours.saturating_mul(3600))
    }

    /// Whole seconds in the span.
    pub const fn as_secs(self) -> i64 {
        self.0 / 1000
    }

    /// Milliseconds in the span.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Parses a human duration: a whole number followed by `s`, `m`, `h` or `d`
    /// (`90s`, `15m`, `24h`, `7d`), or a bare number of seconds.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
            Some(at) => text.split_at(at),
            None => (text, "s"),
        };
        let value: i64 = digits.parse().ok()?;
        let seconds = match unit {
            "s" => value,
            "m" => value.checked_mul(60)?,
            "h" => value.checked_mul(3600)?,
            "d" => value.checked_mul(86_400)?,
            _ => return None,
        };
        Some(Duration::from_secs(seconds))
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.as_secs();
        if secs != 0 && secs % 86_400 == 0 {
            write!(f, "{}d", secs / 86_400)
        } else if secs != 0 && secs % 3600 == 0 {
            write!(f, "{}h", secs / 3600)
        } else if secs != 0 && secs % 60 == 0 {
            write!(f, "{}m", secs / 60)
        } else {
            write!(f, "{secs}s")
        }
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(rhs.0))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(rhs.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let at = Timestamp::parse_rfc3339("2026-03-01T12:30:00Z").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-03-01T12:30:00Z");
        assert_eq!(at.unix_seconds(), 1_772_368_200);
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(Duration::parse("24h"), Some(Duration::from_hours(24)));
        assert_eq!(Duration::parse("90"), Some(Duration::from_secs(90)));
        assert_eq!(Duration::parse("7d").unwrap().as_secs(), 604_800);
        assert_eq!(Duration::parse("5x"), None);
        assert_eq!(Duration::parse(""), None);
        assert_eq!(Duration::parse("99999999999999999999d"), None);
    }

    #[test]
    fn arithmetic_saturates() {
        let far = Timestamp::from_unix_millis(i64::MAX);
        assert_eq!(far + Duration::from_secs(10), far);
        assert_eq!(Timestamp::EPOCH.since(far), Duration::ZERO);
    }
}
