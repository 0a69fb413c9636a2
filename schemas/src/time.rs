//! Terminal time: six plain binary bytes `YY MM DD hh mm ss`, year 2000+YY, in UTC+8
//! (PROTOCOL.md §3). Converted to UTC microseconds for every timestamp downstream.

use std::fmt;

use crate::error::Error;

/// Terminal local time is UTC+8.
pub const TERMINAL_UTC_OFFSET_SECS: i64 = 8 * 3600;
/// Encoded length of a time field.
pub const TIME_LEN: usize = 6;

/// A validated terminal time (local, UTC+8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TerminalTime {
    bytes: [u8; TIME_LEN],
}

fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl TerminalTime {
    /// Validates six wire bytes.
    pub fn from_bytes(bytes: [u8; TIME_LEN]) -> Result<Self, Error> {
        let [yy, mo, dd, hh, mi, ss] = bytes;
        let year = 2000 + i64::from(yy);
        let valid = yy <= 99
            && (1..=12).contains(&mo)
            && dd >= 1
            && dd <= days_in_month(year, mo)
            && hh <= 23
            && mi <= 59
            && ss <= 59;
        if !valid {
            return Err(Error::malformed(format!(
                "invalid terminal time {}",
                hex::encode_upper(bytes)
            )));
        }
        Ok(TerminalTime { bytes })
    }

    /// The terminal-local time of a UTC instant in microseconds (sub-second part dropped).
    /// Instants outside 2000..=2099 local are clamped to that range's ends.
    pub fn from_utc_micros(utc_us: i64) -> Self {
        let lo = days_from_civil(2000, 1, 1) * 86_400;
        let hi = days_from_civil(2099, 12, 31) * 86_400 + 86_399;
        let local = (utc_us.div_euclid(1_000_000) + TERMINAL_UTC_OFFSET_SECS).clamp(lo, hi);
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        TerminalTime {
            bytes: [
                (year - 2000) as u8,
                month,
                day,
                (secs / 3600) as u8,
                (secs % 3600 / 60) as u8,
                (secs % 60) as u8,
            ],
        }
    }

    pub fn bytes(&self) -> [u8; TIME_LEN] {
        self.bytes
    }

    /// Seconds since the Unix epoch, UTC.
    pub fn unix_seconds(&self) -> i64 {
        let [yy, mo, dd, hh, mi, ss] = self.bytes;
        let days = days_from_civil(2000 + i64::from(yy), i64::from(mo), i64::from(dd));
        days * 86_400 + i64::from(hh) * 3600 + i64::from(mi) * 60 + i64::from(ss)
            - TERMINAL_UTC_OFFSET_SECS
    }

    /// Microseconds since the Unix epoch, UTC: the event time of everything in the frame.
    pub fn utc_micros(&self) -> i64 {
        self.unix_seconds() * 1_000_000
    }
}

impl fmt::Display for TerminalTime {
    /// RFC 3339 with the terminal's own offset, e.g. `2026-11-23T20:15:30+08:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [yy, mo, dd, hh, mi, ss] = self.bytes;
        write!(
            f,
            "{:04}-{mo:02}-{dd:02}T{hh:02}:{mi:02}:{ss:02}+08:00",
            2000 + u32::from(yy)
        )
    }
}

/// The wall clock now, UTC microseconds: the received time of what arrives now. (The one clock
/// read in this crate; the codec itself never reads it.)
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// RFC 3339 in UTC with microseconds, e.g. `2026-11-23T12:15:30.000000Z`.
pub fn format_utc_micros(utc_us: i64) -> String {
    let secs = utc_us.div_euclid(1_000_000);
    let micros = utc_us.rem_euclid(1_000_000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Reads back what [`format_utc_micros`] writes (`YYYY-MM-DDTHH:MM:SS.ffffffZ`).
pub fn parse_utc_micros(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 27 || b[26] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, us) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?);
    let secs = days_from_civil(year, month, day) * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(secs * 1_000_000 + us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_round_trips() {
        for us in [0, 1_700_000_000_123_456, 1_795_000_000_000_000] {
            assert_eq!(parse_utc_micros(&format_utc_micros(us)), Some(us));
        }
        assert_eq!(parse_utc_micros("2026-11-24"), None);
    }

    #[test]
    fn converts_to_utc() {
        let t = TerminalTime::from_bytes([26, 11, 23, 20, 15, 30]).unwrap();
        assert_eq!(t.to_string(), "2026-11-23T20:15:30+08:00");
        // 2026-11-23T12:15:30Z
        assert_eq!(t.unix_seconds(), 1_795_436_130);
        assert_eq!(
            format_utc_micros(t.utc_micros()),
            "2026-11-23T12:15:30.000000Z"
        );
        assert_eq!(TerminalTime::from_utc_micros(t.utc_micros()), t);
    }

    #[test]
    fn rejects_impossible_dates() {
        for bytes in [
            [26, 2, 29, 0, 0, 0],
            [26, 13, 1, 0, 0, 0],
            [26, 1, 1, 24, 0, 0],
            [0, 0, 1, 0, 0, 0],
        ] {
            assert!(TerminalTime::from_bytes(bytes).is_err(), "{bytes:?}");
        }
        assert!(TerminalTime::from_bytes([24, 2, 29, 23, 59, 59]).is_ok());
    }

    #[test]
    fn round_trips_every_day_of_a_leap_cycle() {
        let start = TerminalTime::from_bytes([24, 1, 1, 0, 0, 0])
            .unwrap()
            .utc_micros();
        for day in 0..(4 * 366) {
            let us = start + day * 86_400_000_000 + 3_723_000_000;
            let t = TerminalTime::from_utc_micros(us);
            assert_eq!(t.utc_micros(), us);
            assert_eq!(TerminalTime::from_bytes(t.bytes()), Ok(t));
        }
    }
}
