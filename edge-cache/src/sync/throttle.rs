//! The bandwidth cap: a rate written the way people write link speeds
//! (`2Mbit`, `500kbit`, `1MB`, `300KiB`), and the token bucket
//! ([`server::pace`]) that paces a sync pass to it at both ends.
//!
//! - The origin paces: a capped edge sends [`server::protocol::Request::Pace`]
//!   with its hello, and the origin pays for each answer on that connection
//!   before writing it, so the school's link carries no more than the cap from
//!   the first byte.
//! - The edge paces too: one bucket, shared by every request of the pass, is
//!   charged with each answer as it is read (see
//!   [`server::protocol::read_frame_paced`]), and the receive windows are about
//!   a second at the cap ([`TokenBucket::receive_window`]). That holds the cap
//!   over the HTTPS fallback, where each request is a separate POST the origin
//!   cannot pace as one.
//!
//! Non-goals: capping what the edge sends (requests and acknowledgements, a
//! few percent) and counting packet headers (QUIC, UDP and IP add about 3–5 %
//! on the wire to what is counted).

use std::fmt;
use std::str::FromStr;

use serde_with::{DeserializeFromStr, SerializeDisplay};

pub use server::pace::{MAX_BURST, MIN_RATE, TokenBucket};

/// A bandwidth cap in bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, SerializeDisplay, DeserializeFromStr)]
pub struct Rate {
    bytes_per_second: u64,
}

/// Why a rate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error(
        "bandwidth cap {text:?} has no unit; write it like 2Mbit, 500kbit, 1MB or 300KiB (bits: bit, kbit, Mbit, Gbit; bytes: B, kB, MB, GB, KiB, MiB, GiB)"
    )]
    NoUnit { text: String },
    #[error(
        "bandwidth cap {text:?}: {unit:?} could be bits or bytes; write {prefix}bit for bits or {prefix}B for bytes"
    )]
    Ambiguous {
        text: String,
        unit: String,
        prefix: String,
    },
    #[error(
        "bandwidth cap {text:?}: unknown unit {unit:?}; use bit, kbit, Mbit, Gbit (bits) or B, kB, MB, GB, KiB, MiB, GiB (bytes)"
    )]
    UnknownUnit { text: String, unit: String },
    #[error("bandwidth cap {text:?} is not a number followed by a unit, like 2Mbit")]
    NotANumber { text: String },
    #[error(
        "bandwidth cap {text:?} is below the smallest accepted, 8kbit (1 kB/s); leave the cap out for no cap"
    )]
    TooSlow { text: String },
    #[error("bandwidth cap {text:?} is too large")]
    TooFast { text: String },
}

impl Rate {
    pub fn from_bytes_per_second(bytes_per_second: u64) -> Rate {
        Rate {
            bytes_per_second: bytes_per_second.max(1),
        }
    }

    pub fn bytes_per_second(self) -> u64 {
        self.bytes_per_second
    }
}

impl FromStr for Rate {
    type Err = RateError;

    /// A decimal number, optional spaces, a unit, optionally `/s`:
    /// `2Mbit`, `1.5 Mbit/s`, `500kbit`, `1MB`, `300KiB`. `Mbit` is 10⁶ bits,
    /// `MB` 10⁶ bytes, `MiB` 2²⁰ bytes. `Mb` and `Mbps` are refused: people
    /// and tools disagree on whether they mean bits or bytes.
    fn from_str(text: &str) -> Result<Rate, RateError> {
        let trimmed = text.trim();
        let owned = || text.to_owned();
        let number_len = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(number_len);
        let unit = unit.trim_start();
        let unit = unit
            .strip_suffix("/s")
            .or_else(|| unit.strip_suffix("/S"))
            .unwrap_or(unit);
        if number.is_empty() {
            return Err(RateError::NotANumber { text: owned() });
        }
        if unit.is_empty() {
            return Err(RateError::NoUnit { text: owned() });
        }
        // (bits per unit, prefix): bits per unit is 1 for bits, 8 for bytes.
        let (bits_per_unit, prefix) = if let Some(prefix) = unit
            .strip_suffix("bit")
            .or_else(|| unit.strip_suffix("Bit"))
            .or_else(|| unit.strip_suffix("BIT"))
        {
            (1u128, prefix)
        } else if unit.ends_with("ps") || unit.ends_with("PS") {
            let prefix = &unit[..unit.len() - 3.min(unit.len())];
            return Err(RateError::Ambiguous {
                text: owned(),
                unit: unit.to_owned(),
                prefix: prefix.to_owned(),
            });
        } else if let Some(prefix) = unit.strip_suffix('B') {
            (8u128, prefix)
        } else if let Some(prefix) = unit.strip_suffix('b') {
            return Err(RateError::Ambiguous {
                text: owned(),
                unit: unit.to_owned(),
                prefix: prefix.to_owned(),
            });
        } else {
            return Err(RateError::UnknownUnit {
                text: owned(),
                unit: unit.to_owned(),
            });
        };
        let multiplier: u128 = match prefix {
            "" => 1,
            "k" | "K" => 1_000,
            "M" | "m" => 1_000_000,
            "G" | "g" => 1_000_000_000,
            "Ki" | "ki" | "KI" => 1 << 10,
            "Mi" | "mi" | "MI" => 1 << 20,
            "Gi" | "gi" | "GI" => 1 << 30,
            _ => {
                return Err(RateError::UnknownUnit {
                    text: owned(),
                    unit: unit.to_owned(),
                });
            }
        };
        // Exact decimal arithmetic: digits × multiplier × bits / 10^fraction / 8.
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty()
            || fraction.contains('.')
            || whole.len() + fraction.len() > 24
        {
            return Err(RateError::NotANumber { text: owned() });
        }
        let digits: u128 = format!("{whole}{fraction}")
            .parse()
            .map_err(|_| RateError::NotANumber { text: owned() })?;
        let scale = 10u128.pow(fraction.len() as u32);
        let bits = digits
            .checked_mul(multiplier)
            .and_then(|n| n.checked_mul(bits_per_unit))
            .ok_or(RateError::TooFast { text: owned() })?
            / scale;
        let bytes = bits / 8;
        if bytes < u128::from(MIN_RATE) {
            return Err(RateError::TooSlow { text: owned() });
        }
        if bytes > 1 << 40 {
            return Err(RateError::TooFast { text: owned() });
        }
        Ok(Rate {
            bytes_per_second: bytes as u64,
        })
    }
}

impl fmt::Display for Rate {
    /// In bits per second when that is exact, as links are sold (`2Mbit`);
    /// otherwise in bytes (`307200B`). Parses back to the same rate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = u128::from(self.bytes_per_second) * 8;
        for (unit, size) in [
            ("Gbit", 1_000_000_000),
            ("Mbit", 1_000_000),
            ("kbit", 1_000),
        ] {
            if bits % size == 0 {
                return write!(f, "{}{unit}", bits / size);
            }
        }
        write!(f, "{}B", self.bytes_per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> u64 {
        text.parse::<Rate>()
            .unwrap_or_else(|err| panic!("{text}: {err}"))
            .bytes_per_second()
    }

    #[test]
    fn rates_read_bits_and_bytes_apart() {
        assert_eq!(rate("2Mbit"), 250_000);
        assert_eq!(rate("500kbit"), 62_500);
        assert_eq!(rate("500Kbit"), 62_500);
        assert_eq!(rate("1MB"), 1_000_000);
        assert_eq!(rate("1MiB"), 1_048_576);
        assert_eq!(rate("300KiB"), 307_200);
        assert_eq!(rate("1.5 Mbit/s"), 187_500);
        assert_eq!(rate(" 4Mbit "), 500_000);
        assert_eq!(rate("1Gbit"), 125_000_000);
        assert_eq!(rate("8000bit"), 1_000);
        assert_eq!(rate("64kB/s"), 64_000);
        assert_eq!(rate("2 MBit"), 250_000);
    }

    #[test]
    fn junk_and_ambiguous_rates_are_refused_with_a_hint() {
        let err = |text: &str| text.parse::<Rate>().expect_err(text).to_string();
        assert!(err("2").contains("has no unit"), "{}", err("2"));
        assert!(err("2Mb").contains("write Mbit for bits or MB for bytes"));
        assert!(
            err("2Mbps").contains("Mbit for bits or MB for bytes"),
            "{}",
            err("2Mbps")
        );
        assert!(err("fast").contains("not a number"));
        assert!(err("Mbit").contains("not a number"));
        assert!(err("1.2.3Mbit").contains("not a number"));
        assert!(err(".Mbit").contains("not a number"));
        assert!(err("2 furlongs").contains("unknown unit"));
        assert!(err("2Xbit").contains("unknown unit"));
        assert!(err("0Mbit").contains("below the smallest"));
        assert!(err("4kbit").contains("below the smallest"));
        assert!(err("-2Mbit").contains("not a number"));
        assert!(err("99999999999999999999999Gbit").contains("too large"));
    }

    #[test]
    fn rates_print_as_they_parse() {
        for text in ["2Mbit", "500kbit", "1Gbit", "8kbit", "307200B", "1001B"] {
            let parsed: Rate = text.parse().expect("parses");
            assert_eq!(parsed.to_string(), text);
        }
        assert_eq!("1MB".parse::<Rate>().expect("MB").to_string(), "8Mbit");
    }
}
