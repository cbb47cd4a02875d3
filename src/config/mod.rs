//! Settings: durations shared by the commands, and the service's configuration (`run.rs`).

pub mod detect;
pub mod run;

/// Parses a duration such as `90s`, `15m`, `24h`, `7d`, `2w` (a bare number is seconds) into
/// nanoseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().map_err(|_| {
        format!("`{text}` is not a duration: use a number and a unit, e.g. 90s, 15m, 24h, 7d")
    })?;
    let secs: i64 = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        u => {
            return Err(format!(
                "unknown unit `{u}` in `{text}`: use s, m, h, d or w (e.g. 24h)"
            ))
        }
    };
    if n == 0 {
        return Err(format!("`{text}` is zero: give a positive duration"));
    }
    n.checked_mul(secs)
        .and_then(|s| s.checked_mul(1_000_000_000))
        .ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        const S: i64 = 1_000_000_000;
        let cases: &[(&str, Result<i64, ()>)] = &[
            ("90s", Ok(90 * S)),
            ("90", Ok(90 * S)),
            ("15m", Ok(900 * S)),
            ("24h", Ok(86_400 * S)),
            ("7d", Ok(7 * 86_400 * S)),
            ("2w", Ok(14 * 86_400 * S)),
            ("0h", Err(())),
            ("h", Err(())),
            ("5y", Err(())),
            ("-5m", Err(())),
            ("", Err(())),
        ];
        for (t, want) in cases {
            assert_eq!(parse_duration(t).map_err(|_| ()), *want, "{t}");
        }
    }
}
