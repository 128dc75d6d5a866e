//! Timestamps: the CEF date formats (epoch milliseconds and the `MMM dd [yyyy] HH:mm:ss[.SSS]
//! [zone]` family), ISO 8601, year inference for year-less forms, and the fast ISO 8601 UTC
//! writer used for every row's `TimeGenerated`.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};

/// The zone of a sender's clock, for its timestamps that carry none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SenderZone {
    /// A fixed offset (`UTC`, `+01:00`).
    Fixed(FixedOffset),
    /// An IANA zone (`Europe/Berlin`): the offset of each timestamp follows its rules.
    Named(chrono_tz::Tz),
    /// This machine's zone, following its rules at each timestamp.
    Local,
}

impl Default for SenderZone {
    fn default() -> Self {
        SenderZone::Fixed(FixedOffset::east_opt(0).expect("UTC"))
    }
}

/// A zone name [`SenderZone`] does not know. Says what is accepted; the caller names the
/// setting before it (`timezone "Mars/Base" is not ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not UTC, local, an IANA zone such as Europe/Berlin or an offset such as +01:00")]
pub struct UnknownZone(pub String);

/// [`SenderZone::parse`], for `[record] timezone`, a listener's zones and `--timezone`.
impl std::str::FromStr for SenderZone {
    type Err = UnknownZone;

    fn from_str(text: &str) -> Result<Self, UnknownZone> {
        SenderZone::parse(text).ok_or_else(|| UnknownZone(text.to_string()))
    }
}

impl SenderZone {
    /// `local`, an IANA name (`Europe/Berlin`), `UTC` or an offset (`+01:00`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("local") {
            return Some(SenderZone::Local);
        }
        if let Some(fixed) = parse_zone(text) {
            return Some(SenderZone::Fixed(fixed));
        }
        text.parse::<chrono_tz::Tz>().ok().map(SenderZone::Named)
    }

    /// The offset in force at `t`.
    pub fn offset_at(&self, t: DateTime<Utc>) -> FixedOffset {
        match self {
            SenderZone::Fixed(f) => *f,
            SenderZone::Named(tz) => t.with_timezone(tz).offset().fix(),
            SenderZone::Local => *t.with_timezone(&chrono::Local).offset(),
        }
    }

    /// A wall-clock time in this zone as UTC. In the hour a clock is set back, the earlier
    /// of the two readings; in the hour skipped when it is set forward, the time just after.
    pub fn to_utc(&self, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
        fn resolve<Z: TimeZone>(zone: &Z, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
            match zone.from_local_datetime(&naive) {
                chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
                chrono::LocalResult::Ambiguous(early, _) => Some(early.with_timezone(&Utc)),
                chrono::LocalResult::None => zone
                    .from_local_datetime(&(naive + chrono::TimeDelta::hours(1)))
                    .earliest()
                    .map(|t| t.with_timezone(&Utc)),
            }
        }
        match self {
            SenderZone::Fixed(f) => resolve(f, naive),
            SenderZone::Named(tz) => resolve(tz, naive),
            SenderZone::Local => resolve(&chrono::Local, naive),
        }
    }
}

/// What a timestamp without a year or zone is relative to.
#[derive(Debug, Clone, Copy)]
pub struct TimeContext {
    /// When cefgate received the message.
    pub received_at: DateTime<Utc>,
    /// The zone assumed for timestamps that carry none.
    pub zone: SenderZone,
}

impl TimeContext {
    pub fn new(received_at: DateTime<Utc>, zone: SenderZone) -> Self {
        Self { received_at, zone }
    }

    /// The year for a timestamp written without one: the receive year, unless that puts it
    /// more than 31 days in the future (then the year before: a `Dec 31` message received on
    /// `Jan 1`) or more than 334 days in the past (then the year after). Clocks run a little
    /// ahead, but logs arrive late far more often than early.
    pub fn infer_year(&self, month: u32, day: u32, hour: u32, min: u32, sec: u32) -> i32 {
        let here = self
            .received_at
            .with_timezone(&self.zone.offset_at(self.received_at))
            .naive_local();
        let year = here.year();
        // Fast path (this runs for every RFC 3164 header): months that decide it alone.
        let gap = month as i32 - here.month() as i32;
        if !(month == 2 && day == 29) {
            if (-10..=0).contains(&gap) {
                return year;
            }
            if gap >= 3 {
                return year - 1;
            }
        }
        let at = |y: i32| {
            NaiveDate::from_ymd_opt(y, month, day).and_then(|d| d.and_hms_opt(hour, min, sec))
        };
        if let Some(local) = at(year) {
            let ahead = (local - here).num_seconds();
            return if ahead > 31 * 86_400 {
                year - 1
            } else if ahead < -334 * 86_400 {
                year + 1
            } else {
                year
            };
        }
        // Feb 29 outside a leap year: the nearest year that has it.
        (1..=4)
            .flat_map(|d| [year + d, year - d])
            .find(|y| at(*y).is_some())
            .unwrap_or(year)
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

pub(crate) fn month_number(name: &str) -> Option<u32> {
    let abbrev = name.get(..3)?;
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(abbrev))
        .map(|i| i as u32 + 1)
}

/// Zone abbreviations devices put after CEF timestamps, with their UTC offsets in seconds.
const ZONES: [(&str, i32); 16] = [
    ("UTC", 0),
    ("GMT", 0),
    ("UT", 0),
    ("Z", 0),
    ("EST", -5 * 3600),
    ("EDT", -4 * 3600),
    ("CST", -6 * 3600),
    ("CDT", -5 * 3600),
    ("MST", -7 * 3600),
    ("MDT", -6 * 3600),
    ("PST", -8 * 3600),
    ("PDT", -7 * 3600),
    ("CET", 3600),
    ("CEST", 2 * 3600),
    ("BST", 3600),
    ("IST", 5 * 3600 + 1800),
];

/// True for a zone abbreviation of the table above written as devices write it (upper case),
/// which after a time is the time's zone and never a host name.
pub fn is_zone_abbreviation(word: &str) -> bool {
    (1..=4).contains(&word.len())
        && word.bytes().all(|b| b.is_ascii_uppercase())
        && ZONES.iter().any(|(n, _)| *n == word)
}

/// Parses `Z`, `UTC`, an abbreviation above, `+05`, `+0500`, `+05:00`, `GMT+05:00`.
pub fn parse_zone(text: &str) -> Option<FixedOffset> {
    let text = text.trim();
    if let Some(&(_, secs)) = ZONES.iter().find(|(n, _)| n.eq_ignore_ascii_case(text)) {
        return FixedOffset::east_opt(secs);
    }
    let offset = text
        .strip_prefix("GMT")
        .or_else(|| text.strip_prefix("UTC"))
        .unwrap_or(text);
    let (sign, digits) = match offset.as_bytes().first()? {
        b'+' => (1, &offset[1..]),
        b'-' => (-1, &offset[1..]),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    if h > 18 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// Parses any CEF timestamp form (grammars/cef.abnf, `rt`/`start`/`end`) or ISO 8601.
/// Epoch numbers below 10^11 are read as seconds, larger ones as milliseconds.
pub fn parse_cef_time(text: &str, ctx: &TimeContext) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    if bytes.iter().all(|b| b.is_ascii_digit()) {
        let n: i64 = text.parse().ok()?;
        return if n < 100_000_000_000 {
            Utc.timestamp_opt(n, 0).single()
        } else {
            Utc.timestamp_millis_opt(n).single()
        };
    }
    if bytes.len() >= 10 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-' {
        return parse_iso(text, ctx);
    }
    parse_month_day(text, ctx)
}

fn parse_iso(text: &str, ctx: &TimeContext) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, fmt) {
            return ctx.zone.to_utc(naive);
        }
    }
    None
}

/// `MMM dd [yyyy] HH:mm:ss[.SSS][ zone]`
fn parse_month_day(text: &str, ctx: &TimeContext) -> Option<DateTime<Utc>> {
    let mut parts = text.split_ascii_whitespace();
    let month = month_number(parts.next()?)?;
    let day: u32 = parts.next()?.parse().ok()?;
    let mut next = parts.next()?;
    let mut year = None;
    if next.len() == 4 && next.bytes().all(|b| b.is_ascii_digit()) {
        year = Some(next.parse::<i32>().ok()?);
        next = parts.next()?;
    }
    let (hms, frac) = match next.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (next, None),
    };
    let mut clock = hms.split(':');
    let hour: u32 = clock.next()?.parse().ok()?;
    let min: u32 = clock.next()?.parse().ok()?;
    let sec: u32 = clock.next()?.parse().ok()?;
    if clock.next().is_some() {
        return None;
    }
    let nanos = match frac {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32)
        }
        Some(_) => return None,
        None => 0,
    };
    let zone = match parts.next() {
        Some(z) => SenderZone::Fixed(parse_zone(z)?),
        None => ctx.zone,
    };
    if parts.next().is_some() {
        return None;
    }
    let year = year.unwrap_or_else(|| ctx.infer_year(month, day, hour, min, sec));
    let naive =
        NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(hour, min, sec, nanos)?;
    zone.to_utc(naive)
}

/// Appends `t` as ISO 8601 UTC (`2026-11-26T10:00:00Z`, with `.fff`, `.ffffff` or
/// `.fffffffff` when the time has a fraction). Hand-written: it runs once per row.
pub fn write_iso8601(t: &DateTime<Utc>, out: &mut Vec<u8>) {
    let d = t.date_naive();
    let secs = t.timestamp().rem_euclid(86_400) as u32;
    let year = d.year();
    if !(0..=9999).contains(&year) {
        out.extend_from_slice(
            t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                .as_bytes(),
        );
        return;
    }
    let mut buf = *b"0000-00-00T00:00:00";
    put(&mut buf[0..4], year as u32);
    put(&mut buf[5..7], d.month());
    put(&mut buf[8..10], d.day());
    put(&mut buf[11..13], secs / 3600);
    put(&mut buf[14..16], secs / 60 % 60);
    put(&mut buf[17..19], secs % 60);
    out.extend_from_slice(&buf);
    let nanos = t.timestamp_subsec_nanos().min(999_999_999);
    if nanos != 0 {
        let mut frac = *b".000000000";
        put(&mut frac[1..], nanos);
        // Milli-, micro- or 100-nanosecond digits (Azure's datetime resolution) when that
        // is all the time has; all nine otherwise.
        let len = if nanos.is_multiple_of(1_000_000) {
            4
        } else if nanos.is_multiple_of(1_000) {
            7
        } else if nanos.is_multiple_of(100) {
            8
        } else {
            10
        };
        out.extend_from_slice(&frac[..len]);
    }
    out.push(b'Z');
}

fn put(slot: &mut [u8], mut n: u32) {
    for b in slot.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The context the unit tests use: received 2026-11-26T10:00:00Z, zone UTC.
#[cfg(test)]
pub(crate) fn test_context() -> TimeContext {
    let received = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").expect("valid");
    TimeContext::new(received.with_timezone(&Utc), SenderZone::default())
}

/// `write_iso8601` into a new string.
pub fn iso8601(t: &DateTime<Utc>) -> String {
    let mut out = Vec::with_capacity(30);
    write_iso8601(t, &mut out);
    String::from_utf8(out).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::time::test_context as ctx;

    fn iso(text: &str) -> Option<String> {
        parse_cef_time(text, &ctx()).map(|t| iso8601(&t))
    }

    #[test]
    fn epoch_millis_and_seconds() {
        assert_eq!(
            iso("1388577900000").as_deref(),
            Some("2014-01-01T12:05:00Z")
        );
        assert_eq!(
            iso("1601808073102").as_deref(),
            Some("2020-10-04T10:41:13.102Z")
        );
        assert_eq!(iso("1388577900").as_deref(), Some("2014-01-01T12:05:00Z"));
    }

    #[test]
    fn all_cef_month_day_forms() {
        assert_eq!(
            iso("Nov 20 08:15:30.123 UTC").as_deref(),
            Some("2026-11-20T08:15:30.123Z")
        );
        assert_eq!(
            iso("Nov 20 08:15:30.123").as_deref(),
            Some("2026-11-20T08:15:30.123Z")
        );
        assert_eq!(
            iso("Nov 20 08:15:30 EST").as_deref(),
            Some("2026-11-20T13:15:30Z")
        );
        assert_eq!(
            iso("Nov 20 08:15:30").as_deref(),
            Some("2026-11-20T08:15:30Z")
        );
        assert_eq!(
            iso("Jan 17 2020 08:52:10.5 +01:00").as_deref(),
            Some("2020-01-17T07:52:10.500Z")
        );
        assert_eq!(
            iso("Jan 17 2020 08:52:10.123").as_deref(),
            Some("2020-01-17T08:52:10.123Z")
        );
        assert_eq!(
            iso("Jan 17 2020 08:52:10 GMT+05:00").as_deref(),
            Some("2020-01-17T03:52:10Z")
        );
        assert_eq!(
            iso("Jan  7 2020 08:52:10").as_deref(),
            Some("2020-01-07T08:52:10Z")
        );
    }

    #[test]
    fn iso_8601_forms() {
        assert_eq!(
            iso("2018-02-21T14:19:02.6045416Z").as_deref(),
            Some("2018-02-21T14:19:02.6045416Z")
        );
        assert_eq!(
            iso("2026-11-26T11:00:00+01:00").as_deref(),
            Some("2026-11-26T10:00:00Z")
        );
        assert_eq!(
            iso("2026-11-26 11:00:00").as_deref(),
            Some("2026-11-26T11:00:00Z")
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "abc",
            "Foo 20 08:15:30",
            "Nov 20 25:15:30",
            "Nov 20 08:15:30 XYZ",
            "Nov 20",
        ] {
            assert_eq!(iso(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn year_inference_crosses_new_year() {
        let received = DateTime::parse_from_rfc3339("2027-01-01T00:00:10Z").unwrap();
        let c = TimeContext::new(received.with_timezone(&Utc), SenderZone::default());
        assert_eq!(c.infer_year(12, 31, 23, 59, 59), 2026);
        assert_eq!(c.infer_year(1, 1, 0, 0, 5), 2027);
        assert_eq!(c.infer_year(2, 29, 0, 0, 0), 2028);
        assert_eq!(
            c.infer_year(1, 31, 0, 0, 0),
            2027,
            "30 days ahead is still this year"
        );
        assert_eq!(
            c.infer_year(3, 1, 0, 0, 0),
            2026,
            "two months ahead is last year"
        );
        let received = DateTime::parse_from_rfc3339("2026-12-31T23:00:00Z").unwrap();
        let c = TimeContext::new(received.with_timezone(&Utc), SenderZone::default());
        assert_eq!(c.infer_year(1, 1, 0, 0, 5), 2027);
    }

    #[test]
    fn zones() {
        assert_eq!(parse_zone("+0530").unwrap().local_minus_utc(), 19800);
        assert_eq!(parse_zone("-05").unwrap().local_minus_utc(), -18000);
        assert_eq!(parse_zone("UTC+01:00").unwrap().local_minus_utc(), 3600);
        assert!(parse_zone("+25").is_none());
    }

    #[test]
    fn iso_writer_precision() {
        let t = Utc.timestamp_opt(0, 1_000).unwrap();
        assert_eq!(iso8601(&t), "1970-01-01T00:00:00.000001Z");
        let t = Utc.timestamp_opt(0, 123_456_789).unwrap();
        assert_eq!(iso8601(&t), "1970-01-01T00:00:00.123456789Z");
        let t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(iso8601(&t), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn named_zones_follow_daylight_saving_per_timestamp() {
        let berlin = SenderZone::parse("Europe/Berlin").unwrap();
        let at = |text: &str| {
            berlin
                .to_utc(NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap())
                .unwrap()
                .to_rfc3339()
        };
        assert_eq!(at("2026-07-15 12:00:00"), "2026-07-15T10:00:00+00:00");
        assert_eq!(at("2026-01-15 12:00:00"), "2026-01-15T11:00:00+00:00");
        // 02:30 does not exist on 2026-03-29 (clocks go 02:00 -> 03:00): the time just after.
        assert_eq!(at("2026-03-29 02:30:00"), "2026-03-29T01:30:00+00:00");
        // 02:30 happens twice on 2026-10-25: the first.
        assert_eq!(at("2026-10-25 02:30:00"), "2026-10-25T00:30:00+00:00");
        assert_eq!(SenderZone::parse("local"), Some(SenderZone::Local));
        assert!(matches!(
            SenderZone::parse("+01:00"),
            Some(SenderZone::Fixed(_))
        ));
        assert_eq!(SenderZone::parse("Mars/Olympus"), None);
    }
}
