//! Reading the quantities people type: `50ms`, `10Mbit`, `64KiB`, `1%`.
//!
//! Rates and sizes follow `tc`'s spelling where it is unambiguous: `kbit`, `Mbit`, `Gbit` are
//! powers of 1000 bits per second; `KiB`, `MiB` are powers of 1024 bytes and `KB`, `MB` powers
//! of 1000. Byte-per-second rates (`tc`'s `mbps`) are not accepted, to avoid mixing them up.

use std::time::Duration;

/// A quantity that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {input:?} as {what} (write it like {example})")]
pub struct UnitError {
    /// What was typed.
    pub input: String,
    /// The kind of quantity expected, e.g. "a duration".
    pub what: &'static str,
    /// An example of the expected spelling.
    pub example: &'static str,
}

/// Splits `"10.5Mbit"` into `(10.5, "Mbit")`.
fn split_number(input: &str) -> Option<(f64, &str)> {
    let input = input.trim();
    let end = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(input.len());
    let (number, unit) = input.split_at(end);
    let number: f64 = number.parse().ok()?;
    number.is_finite().then_some((number, unit.trim()))
}

/// Reads a duration: `250ms`, `1.5s`, `2min`, `90us`, `0`.
pub fn parse_duration(input: &str) -> Result<Duration, UnitError> {
    let error = || UnitError {
        input: input.to_owned(),
        what: "a duration",
        example: "50ms, 1.5s or 2min",
    };
    let (number, unit) = split_number(input).ok_or_else(error)?;
    let seconds_per_unit = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "" if number == 0.0 => 0.0,
        _ => return Err(error()),
    };
    Duration::try_from_secs_f64(number * seconds_per_unit).map_err(|_| error())
}

/// Reads a bit rate in bits per second: `10Mbit`, `500kbit/s`, `1Gbit`, `64000`.
pub fn parse_rate(input: &str) -> Result<u64, UnitError> {
    let error = || UnitError {
        input: input.to_owned(),
        what: "a bit rate",
        example: "10Mbit, 500kbit or 1Gbit",
    };
    let (number, unit) = split_number(input).ok_or_else(error)?;
    let unit = unit.to_ascii_lowercase();
    let unit = unit.strip_suffix("/s").unwrap_or(&unit);
    let factor = match unit {
        "" | "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return Err(error()),
    };
    let bits = (number * factor).round();
    if bits < 1.0 || bits > u64::MAX as f64 {
        return Err(error());
    }
    Ok(bits as u64)
}

/// Reads a size in bytes: `64KiB`, `1MB`, `1500`, `1500B`.
pub fn parse_bytes(input: &str) -> Result<u64, UnitError> {
    let error = || UnitError {
        input: input.to_owned(),
        what: "a size in bytes",
        example: "64KiB, 1MiB or 1500",
    };
    let (number, unit) = split_number(input).ok_or_else(error)?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(error()),
    };
    let bytes = (number * factor).round();
    if bytes > u64::MAX as f64 {
        return Err(error());
    }
    Ok(bytes as u64)
}

/// Reads a probability: `1%`, `0.5%`, or a plain fraction `0.01`.
pub fn parse_fraction(input: &str) -> Result<f64, UnitError> {
    let error = || UnitError {
        input: input.to_owned(),
        what: "a probability",
        example: "1%, 0.5% or 0.01",
    };
    let (number, unit) = split_number(input).ok_or_else(error)?;
    let fraction = match unit {
        // Shifting the decimal point in the text keeps `16.7%` exactly `0.167`.
        "%" => {
            let digits = input.trim().trim_end_matches('%').trim_end();
            format!("{digits}e-2").parse().map_err(|_| error())?
        }
        "" => number,
        _ => return Err(error()),
    };
    if (0.0..=1.0).contains(&fraction) {
        Ok(fraction)
    } else {
        Err(error())
    }
}

/// Reads two comma-separated values, e.g. `0.5%,16.7%` or `120s,30s`.
pub fn parse_pair<T>(
    input: &str,
    parse: impl Fn(&str) -> Result<T, UnitError>,
) -> Result<(T, T), UnitError> {
    let Some((first, second)) = input.split_once(',') else {
        return Err(UnitError {
            input: input.to_owned(),
            what: "two comma-separated values",
            example: "0.5%,16.7% or 120s,30s",
        });
    };
    Ok((parse(first)?, parse(second)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("90us"), Ok(Duration::from_micros(90)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("50").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("-5ms").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn rates_are_powers_of_ten_bits() {
        assert_eq!(parse_rate("10Mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("10mbit/s"), Ok(10_000_000));
        assert_eq!(parse_rate("500kbit"), Ok(500_000));
        assert_eq!(parse_rate("1.5Gbit"), Ok(1_500_000_000));
        assert_eq!(parse_rate("64000"), Ok(64_000));
        assert!(parse_rate("10mbps").is_err());
        assert!(parse_rate("0").is_err());
    }

    #[test]
    fn sizes_in_binary_and_decimal_units() {
        assert_eq!(parse_bytes("64KiB"), Ok(65_536));
        assert_eq!(parse_bytes("1MB"), Ok(1_000_000));
        assert_eq!(parse_bytes("1500"), Ok(1500));
        assert_eq!(parse_bytes("1500B"), Ok(1500));
        assert!(parse_bytes("1 lorry").is_err());
    }

    #[test]
    fn fractions_as_percent_or_plain() {
        assert_eq!(parse_fraction("1%"), Ok(0.01));
        assert_eq!(parse_fraction("0.25"), Ok(0.25));
        assert_eq!(parse_fraction("100%"), Ok(1.0));
        assert!(parse_fraction("150%").is_err());
        assert!(parse_fraction("2").is_err());
    }

    #[test]
    fn pairs_split_on_the_comma() {
        assert_eq!(parse_pair("0.5%,16.7%", parse_fraction), Ok((0.005, 0.167)));
        assert_eq!(
            parse_pair("120s,30s", parse_duration),
            Ok((Duration::from_secs(120), Duration::from_secs(30)))
        );
        assert!(parse_pair("120s", parse_duration).is_err());
    }
}
