//! `max_store` and `min_free` (issue 13): sizes like `40GB`, `512MiB`, or
//! for `max_store` a share of the filesystem holding the data folder, `80%`.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde_with::{DeserializeFromStr, SerializeDisplay};

/// `min_free` when `edge.toml` says nothing: 2 GB.
pub const DEFAULT_MIN_FREE: Size = Size(2_000_000_000);

/// A value of `max_store` or `min_free` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error(
        "size {text:?} is not a number followed by a unit; write it like 40GB, 500MB, 2GiB (or, for max_store, a share of the disk like 80%)"
    )]
    NotASize { text: String },
    #[error(
        "size {text:?}: unknown unit {unit:?}; use B, kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)"
    )]
    UnknownUnit { text: String, unit: String },
    #[error("share {text:?} must be more than 0% and at most 100%, like 80%")]
    BadShare { text: String },
}

/// A number of bytes, written with a unit.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, SerializeDisplay, DeserializeFromStr,
)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = SizeError;

    fn from_str(text: &str) -> Result<Size, SizeError> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let number: f64 = number.parse().map_err(|_| SizeError::NotASize {
            text: text.to_owned(),
        })?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "k" | "kB" | "KB" => 1_000,
            "M" | "MB" => 1_000_000,
            "G" | "GB" => 1_000_000_000,
            "T" | "TB" => 1_000_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            other => {
                return Err(SizeError::UnknownUnit {
                    text: text.to_owned(),
                    unit: other.to_owned(),
                });
            }
        };
        let bytes = number * factor as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(SizeError::NotASize {
                text: text.to_owned(),
            });
        }
        Ok(Size(bytes.round() as u64))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        for (factor, unit) in [
            (1_000_000_000_000, "TB"),
            (1_000_000_000, "GB"),
            (1_000_000, "MB"),
            (1_000, "kB"),
        ] {
            if bytes >= factor && bytes.is_multiple_of(factor) {
                return write!(f, "{}{unit}", bytes / factor);
            }
        }
        write!(f, "{bytes}B")
    }
}

/// `max_store`: a size, or a share of the filesystem holding the data folder.
#[derive(Debug, Clone, Copy, PartialEq, SerializeDisplay, DeserializeFromStr)]
pub enum StoreLimit {
    Bytes(Size),
    /// Percent of the filesystem's size, above 0 and at most 100.
    Share(f64),
}

impl Eq for StoreLimit {}

impl StoreLimit {
    /// The limit in bytes on a filesystem of `fs_size` bytes.
    pub fn bytes(&self, fs_size: u64) -> u64 {
        match self {
            StoreLimit::Bytes(size) => size.0,
            StoreLimit::Share(percent) => (fs_size as f64 * percent / 100.0) as u64,
        }
    }
}

impl FromStr for StoreLimit {
    type Err = SizeError;

    fn from_str(text: &str) -> Result<StoreLimit, SizeError> {
        match text.trim().strip_suffix('%') {
            Some(number) => {
                let percent: f64 = number.trim().parse().map_err(|_| SizeError::BadShare {
                    text: text.to_owned(),
                })?;
                if !(percent > 0.0 && percent <= 100.0) {
                    return Err(SizeError::BadShare {
                        text: text.to_owned(),
                    });
                }
                Ok(StoreLimit::Share(percent))
            }
            None => text.parse().map(StoreLimit::Bytes),
        }
    }
}

impl fmt::Display for StoreLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLimit::Bytes(size) => size.fmt(f),
            StoreLimit::Share(percent) => write!(f, "{percent}%"),
        }
    }
}

/// The filesystem holding `path`: (its size, the bytes free to this user).
pub fn filesystem(path: &Path) -> std::io::Result<(u64, u64)> {
    let stats = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
    Ok((
        stats.f_blocks.saturating_mul(stats.f_frsize),
        stats.f_bavail.saturating_mul(stats.f_frsize),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13: sizes and shares parse; bad ones say what to write.
    #[test]
    fn issue_13_sizes_and_shares_parse() {
        assert_eq!("40GB".parse::<Size>(), Ok(Size(40_000_000_000)));
        assert_eq!("1.5 MB".parse::<Size>(), Ok(Size(1_500_000)));
        assert_eq!("2GiB".parse::<Size>(), Ok(Size(2 << 30)));
        assert_eq!("123".parse::<Size>(), Ok(Size(123)));
        assert_eq!("80%".parse::<StoreLimit>(), Ok(StoreLimit::Share(80.0)));
        assert_eq!(StoreLimit::Share(50.0).bytes(1000), 500);
        assert_eq!(
            "3MB".parse::<StoreLimit>(),
            Ok(StoreLimit::Bytes(Size(3_000_000)))
        );
        let err = "40 gigs".parse::<Size>().expect_err("refused").to_string();
        assert!(err.contains("unknown unit") && err.contains("GiB"), "{err}");
        let err = "150%"
            .parse::<StoreLimit>()
            .expect_err("refused")
            .to_string();
        assert!(err.contains("like 80%"), "{err}");
        assert!("abc".parse::<Size>().is_err());
        assert_eq!(Size(40_000_000_000).to_string(), "40GB");
        assert_eq!(Size(1234).to_string(), "1234B");
    }
}
