//! The baseline of known (user, protocol) pairs: its key and its file.
//!
//! File format `signin-radar.baseline.v1` (JSON):
//!
//! ```json
//! {"schema":"signin-radar.baseline.v1","key":"user,protocol","pairs":[["alice@contoso.com","IMAP4"]]}
//! ```
//!
//! Each pair lists the key's fields in the key's order: user (lower-cased UPN), the protocol's
//! canonical `clientAppUsed` name, then the IP and/or the application when the key has them.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::Protocol;

pub const SCHEMA: &str = "signin-radar.baseline.v1";
/// The file's name in the state directory.
pub const FILE_NAME: &str = "baseline.json";

/// What identifies a known pair: always user and protocol, optionally the IP and the application
/// (Sentinel's hunting query keys on user, client app, application and IP).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BaselineKey {
    pub ip: bool,
    pub app: bool,
}

impl BaselineKey {
    /// Parses `user,protocol[,ip][,app]` (any order; `+` also separates).
    pub fn parse(s: &str) -> Result<BaselineKey, String> {
        let mut key = BaselineKey::default();
        let (mut user, mut protocol) = (false, false);
        for part in s.split([',', '+']).map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_lowercase().as_str() {
                "user" => user = true,
                "protocol" => protocol = true,
                "ip" => key.ip = true,
                "app" | "application" => key.app = true,
                other => {
                    return Err(format!(
                        "unknown baseline key field {other:?}: expected user,protocol optionally with ip and/or app, e.g. user,protocol,ip"
                    ))
                }
            }
        }
        if !user || !protocol {
            return Err(format!(
                "baseline key {s:?} must contain user and protocol, e.g. user,protocol or user,protocol,ip,app"
            ));
        }
        Ok(key)
    }
}

impl fmt::Display for BaselineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("user,protocol")?;
        if self.ip {
            f.write_str(",ip")?;
        }
        if self.app {
            f.write_str(",app")?;
        }
        Ok(())
    }
}

/// One known pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pair {
    pub user: String,
    pub protocol: Protocol,
    pub ip: Option<String>,
    pub app: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot read the baseline {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the baseline {}: {source}; check the directory and its permissions", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("the baseline {} is not a {SCHEMA} file: {reason}; rebuild it with `signin-radar baseline`", path.display())]
    Format { path: PathBuf, reason: String },
    #[error(
        "the baseline {} was built with key {file}, this run uses {run}; rebuild it with `signin-radar baseline --baseline-key {run}`",
        path.display()
    )]
    Key {
        path: PathBuf,
        file: String,
        run: String,
    },
}

#[derive(Serialize, Deserialize)]
struct FileBody {
    schema: String,
    key: String,
    pairs: Vec<Vec<String>>,
}

fn protocol_by_name(name: &str) -> Option<Protocol> {
    Protocol::ALL.iter().copied().find(|p| p.name() == name)
}

/// Reads a baseline file made with `key`.
pub fn read(path: &Path, key: BaselineKey) -> Result<Vec<Pair>, BaselineError> {
    let bytes = fs::read(path).map_err(|source| BaselineError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| BaselineError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let body: FileBody = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if body.schema != SCHEMA {
        return Err(bad(format!("schema is {:?}", body.schema)));
    }
    let file_key = BaselineKey::parse(&body.key).map_err(bad)?;
    if file_key != key {
        return Err(BaselineError::Key {
            path: path.to_path_buf(),
            file: file_key.to_string(),
            run: key.to_string(),
        });
    }
    let width = 2 + usize::from(key.ip) + usize::from(key.app);
    let mut out = Vec::with_capacity(body.pairs.len());
    for (i, p) in body.pairs.into_iter().enumerate() {
        if p.len() != width {
            return Err(bad(format!(
                "pair {i} has {} fields, the key {key} needs {width}",
                p.len()
            )));
        }
        let protocol = protocol_by_name(&p[1])
            .ok_or_else(|| bad(format!("pair {i}: unknown protocol {:?}", p[1])))?;
        let mut rest = p.into_iter();
        let user = rest.next().unwrap_or_default().trim().to_lowercase();
        rest.next();
        let ip = key.ip.then(|| rest.next().unwrap_or_default());
        let app = key.app.then(|| rest.next().unwrap_or_default());
        out.push(Pair {
            user,
            protocol,
            ip,
            app,
        });
    }
    Ok(out)
}

/// Writes pairs atomically (temporary file, sync, rename).
pub fn write(path: &Path, key: BaselineKey, pairs: &[Pair]) -> Result<(), BaselineError> {
    let body = FileBody {
        schema: SCHEMA.into(),
        key: key.to_string(),
        pairs: pairs
            .iter()
            .map(|p| {
                let mut v = vec![p.user.clone(), p.protocol.name().to_string()];
                if key.ip {
                    v.push(p.ip.clone().unwrap_or_default());
                }
                if key.app {
                    v.push(p.app.clone().unwrap_or_default());
                }
                v
            })
            .collect(),
    };
    let err = |source| BaselineError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let data = serde_json::to_vec(&body).map_err(|e| err(io::Error::other(e)))?;
    (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })()
    .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_or_say_what_is_expected() {
        let ok = [
            ("user,protocol", (false, false)),
            ("protocol+user", (false, false)),
            ("user,protocol,ip", (true, false)),
            (" user , protocol , app ", (false, true)),
            ("user,protocol,ip,app", (true, true)),
        ];
        for (s, (ip, app)) in ok {
            assert_eq!(BaselineKey::parse(s), Ok(BaselineKey { ip, app }), "{s}");
        }
        for bad in ["", "user", "user,ip", "user,protocol,device"] {
            let e = BaselineKey::parse(bad).unwrap_err();
            assert!(e.contains("user,protocol"), "{bad}: {e}");
        }
    }

    #[test]
    fn files_round_trip_and_refuse_another_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let key = BaselineKey {
            ip: true,
            app: false,
        };
        let pairs = vec![Pair {
            user: "a@x.com".into(),
            protocol: Protocol::Imap4,
            ip: Some("10.0.0.1".into()),
            app: None,
        }];
        write(&path, key, &pairs).unwrap();
        assert_eq!(read(&path, key).unwrap(), pairs);
        let e = read(&path, BaselineKey::default()).unwrap_err().to_string();
        assert!(e.contains("--baseline-key user,protocol"), "{e}");
        fs::write(&path, "{\"schema\":\"x\"}").unwrap();
        assert!(read(&path, key)
            .unwrap_err()
            .to_string()
            .contains("rebuild"));
    }
}
