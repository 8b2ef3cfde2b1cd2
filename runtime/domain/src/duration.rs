//! The one duration grammar and formatter of hmrt: `tasks.toml`, results files and every guest
//! built on the SDK read durations with [`parse`], and every message shows them with [`format`].
//!
//! Grammar: one or more parts `<number><unit>`, optionally separated by spaces. The number is
//! decimal digits with an optional fraction (`1.5s`); units are `ns`, `us`/`µs`, `ms`,
//! `s`/`sec`/`second`, `m`/`min`/`minute`, `h`/`hr`/`hour`, `d`/`day`, `w`/`week`, `y`/`year`
//! (a year is 365.25 days), each also in the plural. Parts add up: `"1h 30m"`, `"1m30s"`.
//! Anything longer than [`MAX`] is refused: no check, backoff or window needs more, and the
//! bound keeps every later sum of durations and instants far from overflow.
//!
//! Integer arithmetic only: float parsing and formatting would add tens of KB to every guest.

use std::fmt;
use std::time::Duration;

/// The longest duration accepted anywhere: one year (365.25 days).
pub const MAX: Duration = Duration::from_secs(31_557_600);

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// The text does not follow the grammar.
    Invalid {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The text is a duration, but longer than [`MAX`].
    TooLong {
        /// The text given.
        text: String,
    },
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Invalid { text, reason } => write!(
                f,
                "invalid duration {text:?}: {reason} (write it as \"250ms\", \"5s\", \"10m\", \"1h30m\")"
            ),
            DurationError::TooLong { text } => write!(
                f,
                "duration {text:?} is longer than one year, the longest accepted"
            ),
        }
    }
}

impl std::error::Error for DurationError {}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The unit's length in nanoseconds, or `None` if `unit` is not one.
fn unit_nanos(unit: &str) -> Option<u128> {
    let s = NANOS_PER_SEC;
    Some(match unit {
        "ns" | "nsec" | "nanosecond" | "nanoseconds" => 1,
        "us" | "µs" | "usec" | "microsecond" | "microseconds" => 1_000,
        "ms" | "msec" | "millisecond" | "milliseconds" => 1_000_000,
        "s" | "sec" | "secs" | "second" | "seconds" => s,
        "m" | "min" | "mins" | "minute" | "minutes" => 60 * s,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600 * s,
        "d" | "day" | "days" => 86_400 * s,
        "w" | "week" | "weeks" => 7 * 86_400 * s,
        "y" | "year" | "years" => 31_557_600 * s,
        _ => return None,
    })
}

/// Reads a duration written in the grammar above.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let invalid = |reason: &str| DurationError::Invalid {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid("it is empty"));
    }
    let max = MAX.as_nanos();
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || !number.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(invalid("each part must start with a number"));
        }
        rest = rest[number_len..].trim_start();
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(invalid("a number needs a unit such as ms, s, m or h"));
        }
        let per_unit =
            unit_nanos(unit).ok_or_else(|| invalid(&format!("unknown unit {unit:?}")))?;
        rest = rest[unit_len..].trim_start();
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if fraction.contains('.') || (fraction.is_empty() && number.ends_with('.')) {
            return Err(invalid(
                "a number has at most one decimal point, with digits after it",
            ));
        }
        let too_long = || DurationError::TooLong {
            text: text.to_string(),
        };
        // Digits past what can matter are still checked to be digits, but add nothing.
        let whole: u128 = if whole.len() > 30 {
            return Err(too_long());
        } else {
            whole.parse().map_err(|_| invalid("not a number"))?
        };
        let mut part = whole.checked_mul(per_unit).ok_or_else(too_long)?;
        let mut scale = per_unit;
        for digit in fraction.bytes() {
            scale /= 10;
            part += u128::from(digit - b'0') * scale;
        }
        total = total.checked_add(part).ok_or_else(too_long)?;
        if total > max {
            return Err(too_long());
        }
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // Below 1e9 by construction.
    let nanos = u32::try_from(total % NANOS_PER_SEC).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

/// Shows a duration the way the config writes it, exactly to the millisecond: `"0s"`,
/// `"250ms"`, `"5s"`, `"1m30s"`, `"2h"`, `"1s500ms"`. What it prints, [`parse`] reads back (below
/// [`MAX`], and to the millisecond).
pub fn format(d: Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_string();
    }
    let parts = [
        (ms / 3_600_000, "h"),
        (ms / 60_000 % 60, "m"),
        (ms / 1_000 % 60, "s"),
        (ms % 1_000, "ms"),
    ];
    let mut out = String::new();
    for (n, unit) in parts {
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn reads_every_form_the_config_and_guests_use() {
        for (text, want) in [
            ("250ms", ms(250)),
            ("5s", ms(5_000)),
            ("1.5s", ms(1_500)),
            ("1min", ms(60_000)),
            ("2 min", ms(120_000)),
            ("1m30s", ms(90_000)),
            ("1h 30m", ms(5_400_000)),
            ("1hour", ms(3_600_000)),
            ("3 days", ms(3 * 86_400_000)),
            ("1w", ms(7 * 86_400_000)),
            ("1y", MAX),
            ("10us", Duration::from_micros(10)),
            ("0s", Duration::ZERO),
            ("  7s ", ms(7_000)),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_bad_text_with_the_text_and_a_reason() {
        for bad in [
            "",
            "5",
            "s",
            "5 parsecs",
            "-1s",
            "1..5s",
            "1.s",
            ".5s",
            "5s 3",
            "1e3s",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(matches!(err, DurationError::Invalid { .. }), "{bad}: {err}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn refuses_what_is_longer_than_a_year_without_overflowing() {
        for long in [
            "400000000000y",
            "366d",
            "1y 1ms",
            "99999999999999999999999999999999999999999999s",
            "18446744073709551616s",
        ] {
            assert_eq!(
                parse(long),
                Err(DurationError::TooLong {
                    text: long.to_string()
                }),
                "{long}"
            );
        }
        assert_eq!(parse("365d"), Ok(Duration::from_secs(365 * 86_400)));
    }

    #[test]
    fn formats_exactly_and_reads_back() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (ms(250), "250ms"),
            (ms(5_000), "5s"),
            (ms(90_000), "1m30s"),
            (ms(600_000), "10m"),
            (ms(3_600_000), "1h"),
            (ms(86_400_000), "24h"),
            (ms(1_500), "1s500ms"),
        ] {
            assert_eq!(format(d), text);
            assert_eq!(parse(text), Ok(d));
        }
    }
}
