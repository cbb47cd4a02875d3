//! Event-time parsing and formatting, without allocation. Times are nanoseconds since the
//! Unix epoch, UTC.

/// Nanoseconds per second.
pub const NS: i64 = 1_000_000_000;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

struct Cur<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn digits(&mut self, min: usize, max: usize) -> Option<(u32, usize)> {
        let start = self.i;
        let mut v: u32 = 0;
        while self.i < self.s.len() && self.i - start < max && self.s[self.i].is_ascii_digit() {
            v = v * 10 + u32::from(self.s[self.i] - b'0');
            self.i += 1;
        }
        let n = self.i - start;
        (n >= min).then_some((v, n))
    }
    /// Digits, then the separator `sep`.
    fn field(&mut self, min: usize, max: usize, sep: u8) -> Option<u32> {
        let (v, _) = self.digits(min, max)?;
        self.eat(sep).then_some(v)
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
}

/// A civil date-time and its offset from UTC, as parsed.
struct Civil {
    y: i64,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    frac: i64,
    off_s: i64,
}

fn to_ns(c: Civil) -> Option<i64> {
    let Civil {
        y,
        mo,
        d,
        h,
        mi,
        s,
        frac,
        off_s,
    } = c;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60
    {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s) - off_s;
    secs.checked_mul(NS)?.checked_add(frac)
}

/// Parses an ISO 8601 / RFC 3339 date-time (`T` or space; 0-9 fraction digits, more are
/// truncated; `Z`, `+hh:mm`, `+hhmm`, `+hh` or no offset, which means UTC), or the US form
/// `11/14/2025 1:48:53 AM` (UTC).
pub fn parse(text: &str) -> Option<i64> {
    let t = text.as_bytes().trim_ascii();
    if t.len() >= 5 && t[..5].contains(&b'/') {
        return parse_us(t);
    }
    let mut c = Cur { s: t, i: 0 };
    let y = c.field(4, 4, b'-')?;
    let mo = c.field(2, 2, b'-')?;
    let (d, _) = c.digits(2, 2)?;
    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return None;
    }
    let h = c.field(2, 2, b':')?;
    let (mi, _) = c.digits(2, 2)?;
    let mut s = 0;
    if c.eat(b':') {
        s = c.digits(2, 2)?.0;
    }
    let mut frac: i64 = 0;
    if c.eat(b'.') || c.eat(b',') {
        let (v, n) = c.digits(1, 9)?;
        frac = i64::from(v) * 10i64.pow(9 - n as u32);
        while c.peek().is_some_and(|b| b.is_ascii_digit()) {
            c.i += 1;
        }
    }
    let off = match c.peek() {
        None => 0,
        Some(b'Z' | b'z') => {
            c.i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let (oh, _) = c.digits(2, 2)?;
            c.eat(b':');
            let om = c.digits(2, 2).map_or(0, |v| v.0);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = i64::from(oh * 3600 + om * 60);
            if sign == b'-' {
                -o
            } else {
                o
            }
        }
        Some(_) => return None,
    };
    if c.i != t.len() {
        return None;
    }
    to_ns(Civil {
        y: i64::from(y),
        mo,
        d,
        h,
        mi,
        s,
        frac,
        off_s: off,
    })
}

fn parse_us(t: &[u8]) -> Option<i64> {
    let mut c = Cur { s: t, i: 0 };
    let mo = c.field(1, 2, b'/')?;
    let d = c.field(1, 2, b'/')?;
    let y = c.field(4, 4, b' ')?;
    let mut h = c.field(1, 2, b':')?;
    let (mi, _) = c.digits(2, 2)?;
    let mut s = 0;
    if c.eat(b':') {
        s = c.digits(2, 2)?.0;
    }
    while c.eat(b' ') {}
    let rest = &t[c.i..];
    if rest.eq_ignore_ascii_case(b"AM") {
        if !(1..=12).contains(&h) {
            return None;
        }
        if h == 12 {
            h = 0;
        }
    } else if rest.eq_ignore_ascii_case(b"PM") {
        if !(1..=12).contains(&h) {
            return None;
        }
        if h != 12 {
            h += 12;
        }
    } else if !rest.is_empty() {
        return None;
    }
    to_ns(Civil {
        y: i64::from(y),
        mo,
        d,
        h,
        mi,
        s,
        frac: 0,
        off_s: 0,
    })
}

/// RFC 3339 in UTC, fraction digits as needed (none, or up to 9 without trailing zeros).
pub fn format(ns: i64) -> String {
    let secs = ns.div_euclid(NS);
    let frac = ns.rem_euclid(NS);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if frac != 0 {
        let f = format!("{frac:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let base = parse("2022-01-24T05:10:08Z").unwrap();
        let cases: &[(&str, Option<i64>)] = &[
            ("2022-01-24T05:10:08Z", Some(base)),
            ("2022-01-24T05:10:08.6816663Z", Some(base + 681_666_300)),
            (
                "2022-01-24T05:10:08.6816663+00:00",
                Some(base + 681_666_300),
            ),
            (
                "2022-01-24T05:10:08.681666312+00:00",
                Some(base + 681_666_312),
            ),
            (
                "2022-01-24T05:10:08.6816663123456Z",
                Some(base + 681_666_312),
            ),
            ("2022-01-24T00:10:08.5-05:00", Some(base + 500_000_000)),
            ("2022-01-24T10:40:08+0530", Some(base)),
            ("2022-01-24T05:10:08", Some(base)),
            ("2022-01-24 05:10:08Z", Some(base)),
            (" 2022-01-24T05:10:08Z ", Some(base)),
            ("1/24/2022 5:10:08 AM", Some(base)),
            ("01/24/2022 05:10:08 PM", Some(base + 12 * 3600 * NS)),
            ("1/24/2022 12:10:08 AM", Some(base - 5 * 3600 * NS)),
            ("2022-02-30T00:00:00Z", None),
            ("2022-13-01T00:00:00Z", None),
            ("2022-01-24T25:00:00Z", None),
            ("2022-01-24", None),
            ("", None),
            ("yesterday", None),
            ("2022-01-24T05:10:08Zjunk", None),
            ("13/24/2022 5:10:08 AM", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), *want, "{text:?}");
        }
        assert_eq!(base, 1_643_001_008 * NS);
    }

    #[test]
    fn format_round_trips() {
        for t in [
            "2022-01-24T05:10:08Z",
            "2022-01-24T05:10:08.6816663Z",
            "1999-12-31T23:59:59.000000001Z",
            "2024-02-29T12:00:00.5Z",
        ] {
            assert_eq!(format(parse(t).unwrap()), t);
        }
    }
}
