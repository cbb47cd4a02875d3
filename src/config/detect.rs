//! Detection settings shared by `replay`, `baseline` and `run`: text as a person writes it, to
//! a [`DetectConfig`], with every problem said so that it can be fixed.

use std::path::{Path, PathBuf};

use rustc_hash::FxHashSet;

use super::parse_duration;
use crate::detect::{BaselineKey, DetectConfig};

/// The detection settings as given (flags, a file, variables).
#[derive(Clone, Debug, PartialEq)]
pub struct DetectSettings {
    pub learning: String,
    pub spray_users: usize,
    pub spray_window: String,
    pub baseline_key: String,
    pub privileged_users: Option<PathBuf>,
    pub surge_factor: f64,
    pub surge_min: u64,
    /// Sentinel's guard: a spray also needs its failing users to outnumber the users who
    /// succeed from the IP in the same span (off: the rule is N failing users, nothing else).
    pub spray_require_majority: bool,
}

impl Default for DetectSettings {
    fn default() -> Self {
        DetectSettings {
            learning: "7d".into(),
            spray_users: 10,
            spray_window: "10m".into(),
            baseline_key: "user,protocol".into(),
            privileged_users: None,
            surge_factor: 3.0,
            surge_min: 100,
            spray_require_majority: false,
        }
    }
}

/// The learning period: a duration, or zero (`0`, `0s`, `0d`: only a seeded baseline is known).
fn learning_ns(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if !t.is_empty() && t.trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" {
        return Ok(0);
    }
    parse_duration(t)
}

/// Reads a privileged-accounts file: one UPN per line; blank lines and `#` comments skipped.
pub fn read_privileged(path: &Path) -> Result<FxHashSet<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read {}: {e}; give a file with one user principal name per line",
            path.display()
        )
    })?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_lowercase())
        .filter(|l| !l.is_empty())
        .collect())
}

impl DetectSettings {
    /// Problems as (key, message), keys named as in `run`'s settings.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match learning_ns(&self.learning) {
            Err(e) => out.push(("learning", e)),
            Ok(v) if v < 0 => out.push(("learning", "must not be negative".into())),
            Ok(_) => {}
        }
        match parse_duration(&self.spray_window) {
            Err(e) => out.push(("spray_window", e)),
            Ok(v) if v <= 0 => {
                out.push(("spray_window", "must be longer than zero, e.g. 10m".into()))
            }
            Ok(_) => {}
        }
        if self.spray_users < 2 {
            out.push((
                "spray_users",
                format!(
                    "{}: a spray needs at least 2 distinct users (10 by default)",
                    self.spray_users
                ),
            ));
        }
        if let Err(e) = BaselineKey::parse(&self.baseline_key) {
            out.push(("baseline_key", e));
        }
        if !(self.surge_factor.is_finite() && self.surge_factor > 0.0) {
            out.push((
                "surge_factor",
                format!("{}: use a number above 0, e.g. 3", self.surge_factor),
            ));
        }
        if let Some(p) = &self.privileged_users {
            if let Err(e) = read_privileged(p) {
                out.push(("privileged_users", e));
            }
        }
        out
    }

    /// The detector's configuration; `lateness_ns` is `None` for replay. Call after
    /// [`problems`](Self::problems) found none (bad values fall back to defaults).
    pub fn detect_config(&self, lateness_ns: Option<i64>) -> DetectConfig {
        let d = DetectConfig::default();
        DetectConfig {
            learning_ns: learning_ns(&self.learning).unwrap_or(d.learning_ns),
            baseline_key: BaselineKey::parse(&self.baseline_key).unwrap_or_default(),
            spray_users: self.spray_users,
            spray_window_ns: parse_duration(&self.spray_window).unwrap_or(d.spray_window_ns),
            lateness_ns,
            privileged: self
                .privileged_users
                .as_deref()
                .and_then(|p| read_privileged(p).ok())
                .unwrap_or_default(),
            surge_factor: self.surge_factor,
            surge_min: self.surge_min,
            spray_require_majority: self.spray_require_majority,
            ..d
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learning_period_of_zero_is_allowed() {
        for zero in ["0", "0s", "0d"] {
            let s = DetectSettings {
                learning: zero.into(),
                ..Default::default()
            };
            assert!(s.problems().is_empty(), "{zero}");
            assert_eq!(s.detect_config(None).learning_ns, 0);
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = DetectSettings::default();
        assert!(s.problems().is_empty());
        let c = s.detect_config(None);
        assert_eq!(c.learning_ns, 7 * 86_400 * 1_000_000_000);
        assert_eq!(c.spray_users, 10);
        assert_eq!(c.spray_window_ns, 600 * 1_000_000_000);
    }

    #[test]
    fn bad_settings_are_explained() {
        let cases: Vec<(DetectSettings, &str, &str)> = vec![
            (
                DetectSettings {
                    learning: "soon".into(),
                    ..Default::default()
                },
                "learning",
                "",
            ),
            (
                DetectSettings {
                    spray_window: "0s".into(),
                    ..Default::default()
                },
                "spray_window",
                "zero",
            ),
            (
                DetectSettings {
                    spray_users: 1,
                    ..Default::default()
                },
                "spray_users",
                "at least 2",
            ),
            (
                DetectSettings {
                    baseline_key: "user".into(),
                    ..Default::default()
                },
                "baseline_key",
                "user,protocol",
            ),
            (
                DetectSettings {
                    surge_factor: f64::NAN,
                    ..Default::default()
                },
                "surge_factor",
                "above 0",
            ),
            (
                DetectSettings {
                    privileged_users: Some("/nonexistent/admins.txt".into()),
                    ..Default::default()
                },
                "privileged_users",
                "one user principal name per line",
            ),
        ];
        for (s, key, words) in cases {
            let p = s.problems();
            assert_eq!(p.len(), 1, "{key}: {p:?}");
            assert_eq!(p[0].0, key);
            assert!(p[0].1.contains(words), "{key}: {}", p[0].1);
        }
    }

    #[test]
    fn privileged_files_skip_comments_and_case() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admins.txt");
        std::fs::write(
            &path,
            "# break-glass\nAdmin@Contoso.com \n\n ga@contoso.com # global\n",
        )
        .unwrap();
        let set = read_privileged(&path).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.contains("admin@contoso.com") && set.contains("ga@contoso.com"));
    }
}
