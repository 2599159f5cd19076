//! Sync windows: the hours of the day, in the edge machine's local time,
//! when `edge run` may start sync passes (`22:00-06:00`, several allowed).
//!
//! - A window is `HH:MM-HH:MM`, start included, end excluded; it may wrap
//!   midnight (`22:00-06:00`), and `24:00` may end one.
//! - No windows at all means any time.
//! - Times are wall-clock times in the system time zone (`TZ`, else
//!   `/etc/localtime`), so a window keeps its hours across daylight-saving
//!   changes; a start that falls in a skipped hour opens at the end of the gap.
//!
//! The logic works on civil date-times ([`Schedule::is_open`],
//! [`Schedule::next_opening`], [`Schedule::closing`]) so it is tested without
//! a clock; [`Schedule::now`] and [`Moment`] put it on the system clock.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::Zoned;
use jiff::civil::{Date, DateTime};
use serde_with::{DeserializeFromStr, SerializeDisplay};

const DAY: u16 = 24 * 60;

/// One daily window, in minutes since midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, SerializeDisplay, DeserializeFromStr)]
pub struct Window {
    start: u16,
    end: u16,
}

/// Why a window was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sync window {text:?}: {reason}; write it as HH:MM-HH:MM in local time, e.g. 22:00-06:00")]
pub struct WindowError {
    text: String,
    reason: &'static str,
}

impl Window {
    /// Whether minute `minute` of a day (0..1440) is inside the window.
    fn contains(self, minute: u16) -> bool {
        if self.start < self.end {
            self.start <= minute && minute < self.end
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

/// `HH:MM` → minutes since midnight; `24:00` only when `end`.
fn minutes(text: &str, end: bool) -> Result<u16, &'static str> {
    let (hours, mins) = text
        .split_once(':')
        .ok_or("each time needs hours and minutes, HH:MM")?;
    let digits = |part: &str| {
        (!part.is_empty() && part.len() <= 2 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u16>().ok())
            .flatten()
    };
    let (Some(hours), Some(mins)) = (digits(hours), digits(mins)) else {
        return Err("each time needs hours and minutes, HH:MM");
    };
    if mins > 59 || hours > 24 || hours == 24 && (mins != 0 || !end) {
        return Err("hours go from 00 to 23 (24:00 may end a window), minutes from 00 to 59");
    }
    Ok(hours * 60 + mins)
}

impl FromStr for Window {
    type Err = WindowError;

    fn from_str(text: &str) -> Result<Window, WindowError> {
        let refuse = |reason| WindowError {
            text: text.to_owned(),
            reason,
        };
        let (start, end) = text
            .trim()
            .split_once('-')
            .ok_or_else(|| refuse("a window needs a start and an end, joined by '-'"))?;
        let start = minutes(start.trim(), false).map_err(refuse)?;
        let end = minutes(end.trim(), true).map_err(refuse)?;
        if start == end || start == 0 && end == DAY {
            return Err(refuse(
                "its start and end are the same time; for syncing at any time give no window",
            ));
        }
        Ok(Window { start, end })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// When sync passes may start: any of the windows, or any time if none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    windows: Vec<Window>,
}

/// A point in local time, for waiting and for people.
#[derive(Debug, Clone)]
pub struct Moment(Zoned);

impl Moment {
    pub fn unix_seconds(&self) -> u64 {
        u64::try_from(self.0.timestamp().as_second()).unwrap_or(0)
    }

    /// How long from now until then (zero if past).
    pub fn from_now(&self) -> Duration {
        Duration::try_from(Zoned::now().duration_until(&self.0)).unwrap_or(Duration::ZERO)
    }
}

impl fmt::Display for Moment {
    /// `2026-11-29 22:00 CST`: local time, with the zone's abbreviation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.strftime("%Y-%m-%d %H:%M %Z"))
    }
}

fn minute_of(at: DateTime) -> u16 {
    // Hours 0..24 and minutes 0..60 from jiff always fit.
    (at.hour() as u16) * 60 + at.minute() as u16
}

fn at_minute(date: Date, minute: u16) -> DateTime {
    if minute >= DAY {
        // 24:00 is the next day's midnight; a date this near the end of time is not met.
        return date.tomorrow().unwrap_or(date).at(0, 0, 0, 0);
    }
    date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0)
}

impl Schedule {
    pub fn new(windows: Vec<Window>) -> Schedule {
        Schedule { windows }
    }

    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Whether passes may start at any time.
    pub fn is_always(&self) -> bool {
        self.windows.is_empty()
    }

    pub fn is_open(&self, at: DateTime) -> bool {
        let minute = minute_of(at);
        self.is_always() || self.windows.iter().any(|w| w.contains(minute))
    }

    /// The first window start after `at`; `None` without windows.
    pub fn next_opening(&self, at: DateTime) -> Option<DateTime> {
        let today = at.date();
        let tomorrow = today.tomorrow().ok()?;
        self.windows
            .iter()
            .flat_map(|w| [at_minute(today, w.start), at_minute(tomorrow, w.start)])
            .filter(|start| *start > at)
            .min()
    }

    /// When the open stretch around `at` ends, windows that overlap or touch
    /// counted as one; `None` if it never ends (or `at` is not in a window).
    pub fn closing(&self, at: DateTime) -> Option<DateTime> {
        if self.is_always() || !self.is_open(at) {
            return None;
        }
        let mut until = at;
        // Each step moves to the end of a window holding `until`; once past
        // every window without closing, the windows cover the whole day.
        for _ in 0..=self.windows.len() {
            let minute = minute_of(until);
            let end = self
                .windows
                .iter()
                .filter(|w| w.contains(minute))
                .map(|w| {
                    let end = at_minute(until.date(), w.end);
                    if end > until {
                        end
                    } else {
                        at_minute(until.date().tomorrow().unwrap_or(until.date()), w.end)
                    }
                })
                .max()?;
            if !self.is_open(end) {
                return Some(end);
            }
            until = end;
        }
        None
    }

    /// Where the local clock stands against the schedule.
    pub fn now(&self) -> Now {
        let now = Zoned::now();
        let local = now.datetime();
        let zone = now.time_zone().clone();
        let moment = |at: DateTime| at.to_zoned(zone.clone()).ok().map(Moment);
        if self.is_open(local) {
            Now::Open {
                closes: self.closing(local).and_then(moment),
            }
        } else {
            match self.next_opening(local).and_then(moment) {
                Some(opens) => Now::Closed { opens },
                // Not reachable with windows; open rather than never sync.
                None => Now::Open { closes: None },
            }
        }
    }
}

/// The schedule at this moment.
#[derive(Debug, Clone)]
pub enum Now {
    /// Passes may start; the stretch of windows ends at `closes` (`None`: never).
    Open { closes: Option<Moment> },
    /// The next window opens at `opens`.
    Closed { opens: Moment },
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn window(text: &str) -> Window {
        text.parse().unwrap_or_else(|err| panic!("{text}: {err}"))
    }

    fn schedule(windows: &[&str]) -> Schedule {
        Schedule::new(windows.iter().map(|w| window(w)).collect())
    }

    fn at(day: i8, hour: i8, minute: i8) -> DateTime {
        date(2026, 11, day).at(hour, minute, 0, 0)
    }

    #[test]
    fn windows_parse_and_print() {
        assert_eq!(window("22:00-06:00").to_string(), "22:00-06:00");
        assert_eq!(window(" 9:05 - 17:30 ").to_string(), "09:05-17:30");
        assert_eq!(window("18:00-24:00").to_string(), "18:00-24:00");
        for bad in [
            "22:00",
            "22-06",
            "25:00-06:00",
            "22:60-06:00",
            "24:00-06:00",
            "22:00-24:30",
            "10:00-10:00",
            "00:00-24:00",
            "ab:cd-01:00",
            "22:00-06:00-07:00",
            "",
            "-1:00-02:00",
            "123:00-01:00",
        ] {
            let err = bad.parse::<Window>().expect_err(bad).to_string();
            assert!(err.contains("HH:MM-HH:MM"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_window_may_wrap_midnight() {
        let night = schedule(&["22:00-06:00"]);
        assert!(night.is_open(at(28, 22, 0)));
        assert!(night.is_open(at(28, 23, 59)));
        assert!(night.is_open(at(29, 0, 0)));
        assert!(night.is_open(at(29, 5, 59)));
        assert!(!night.is_open(at(29, 6, 0)));
        assert!(!night.is_open(at(28, 21, 59)));
        assert!(!night.is_open(at(28, 12, 0)));
        let day = schedule(&["09:00-17:00"]);
        assert!(day.is_open(at(28, 9, 0)) && !day.is_open(at(28, 17, 0)));
        assert!(Schedule::default().is_open(at(28, 3, 0)));
    }

    #[test]
    fn the_next_opening_is_today_or_tomorrow() {
        let night = schedule(&["22:00-06:00"]);
        assert_eq!(night.next_opening(at(28, 12, 0)), Some(at(28, 22, 0)));
        assert_eq!(night.next_opening(at(28, 22, 0)), Some(at(29, 22, 0)));
        assert_eq!(night.next_opening(at(28, 23, 0)), Some(at(29, 22, 0)));
        let two = schedule(&["12:30-13:30", "22:00-06:00"]);
        assert_eq!(two.next_opening(at(28, 7, 0)), Some(at(28, 12, 30)));
        assert_eq!(two.next_opening(at(28, 14, 0)), Some(at(28, 22, 0)));
        assert_eq!(Schedule::default().next_opening(at(28, 7, 0)), None);
        // The last day of a month.
        assert_eq!(
            night.next_opening(date(2026, 11, 30).at(23, 0, 0, 0)),
            Some(date(2026, 12, 1).at(22, 0, 0, 0))
        );
    }

    #[test]
    fn touching_windows_close_together_and_a_full_day_never_closes() {
        let night = schedule(&["22:00-06:00"]);
        assert_eq!(night.closing(at(28, 23, 0)), Some(at(29, 6, 0)));
        assert_eq!(night.closing(at(29, 1, 0)), Some(at(29, 6, 0)));
        assert_eq!(night.closing(at(28, 12, 0)), None, "closed now");
        let touching = schedule(&["22:00-24:00", "00:00-02:00", "01:00-03:30"]);
        assert_eq!(touching.closing(at(28, 22, 30)), Some(at(29, 3, 30)));
        let whole_day = schedule(&["00:00-12:00", "12:00-24:00"]);
        assert_eq!(whole_day.closing(at(28, 8, 0)), None);
        assert_eq!(Schedule::default().closing(at(28, 8, 0)), None);
    }

    #[test]
    fn the_clock_is_read_in_local_time() {
        let night = schedule(&["22:00-06:00"]);
        match night.now() {
            Now::Open { closes } => {
                let closes = closes.expect("a night window closes");
                assert!(closes.from_now() <= Duration::from_secs(8 * 3600));
            }
            Now::Closed { opens } => {
                assert!(opens.from_now() <= Duration::from_secs(16 * 3600));
                assert!(opens.to_string().contains(" 22:00 "), "{opens}");
            }
        }
    }
}
