//! The spool: `{state dir}/alerts.json`, the dispatcher's state between runs.
//!
//! Versioned JSON (`format`, `version`): the active alerts, the done keys with the time they
//! ended, and the pending notifications of each sink (by kind and URL). Written atomically: a
//! temporary file in the same directory (mode 0600: findings name users and addresses),
//! synced, renamed over the spool, the directory synced.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::metrics::{DropReason, Metrics, SubmitDrop};
use super::state::{Pending, State};
use super::{now_ns, Alert, Shared, Sink, SinkKind};

pub(crate) const FILE_NAME: &str = "alerts.json";
const TEMP_NAME: &str = "alerts.json.tmp";
const FORMAT: &str = "signin-radar.alert-spool";
const VERSION: u32 = 1;

#[derive(Serialize)]
struct SpoolOut<'a> {
    format: &'static str,
    version: u32,
    written_at_unix_ns: i64,
    active: Vec<&'a Alert>,
    done: Vec<DoneOut<'a>>,
    sinks: Vec<SinkOut<'a>>,
}

#[derive(Serialize)]
struct DoneOut<'a> {
    key: &'a str,
    at_unix_ns: i64,
}

#[derive(Serialize)]
struct SinkOut<'a> {
    kind: SinkKind,
    url: &'a str,
    pending: Vec<&'a Pending>,
}

/// A spool as read.
#[derive(Deserialize)]
pub(crate) struct SpoolFile {
    format: String,
    version: u32,
    #[allow(dead_code)]
    written_at_unix_ns: i64,
    active: Vec<Alert>,
    done: Vec<DoneIn>,
    sinks: Vec<SinkIn>,
}

#[derive(Deserialize)]
struct DoneIn {
    key: String,
    at_unix_ns: i64,
}

#[derive(Deserialize)]
struct SinkIn {
    kind: SinkKind,
    url: String,
    pending: Vec<Pending>,
}

/// Reads the spool at `path`. Missing: `None`. Unreadable: `None` with an ERROR log. Not a
/// spool of this version: renamed to `alerts.json.corrupt-<unix secs>`, `None`, ERROR log.
pub(crate) fn load(path: &Path) -> Option<SpoolFile> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            error!(
                path = %path.display(),
                error = %e,
                "Cannot read the alert spool; starting without it (it will be overwritten). \
                 Check the permissions of the state directory."
            );
            return None;
        }
    };
    let reason = match serde_json::from_slice::<SpoolFile>(&bytes) {
        Ok(f) if f.format == FORMAT && f.version == VERSION => return Some(f),
        Ok(f) => format!(
            "it is {:?} version {}, this build reads {FORMAT:?} version {VERSION}",
            f.format, f.version
        ),
        Err(e) => format!("it is not a valid spool: {e}"),
    };
    match set_aside(path) {
        Ok(aside) => error!(
            path = %path.display(),
            moved_to = %aside.display(),
            reason = %reason,
            "The alert spool is corrupt; moved it aside and starting without it. Alerts and \
             notifications pending in it are not delivered: look at the file if they matter."
        ),
        Err(e) => error!(
            path = %path.display(),
            reason = %reason,
            error = %e,
            "The alert spool is corrupt and could not be moved aside; starting without it \
             (it will be overwritten). Check the permissions of the state directory."
        ),
    }
    None
}

/// Renames `path` to `<path>.corrupt-<unix secs>` (with `-N` added if that exists).
fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let secs = now_ns() / 1_000_000_000;
    let dir = path.parent().unwrap_or(Path::new("."));
    let base = format!("{FILE_NAME}.corrupt-{secs}");
    let mut aside = dir.join(&base);
    let mut n = 1;
    while aside.try_exists()? {
        aside = dir.join(format!("{base}-{n}"));
        n += 1;
    }
    fs::rename(path, &aside)?;
    Ok(aside)
}

/// Puts a loaded spool into `st` under the current configuration: pending notifications of
/// sinks no longer configured are dropped and counted, new webhook sinks are told of the
/// active alerts, bounds apply (what they drop is counted).
pub(crate) fn restore(file: SpoolFile, st: &mut State, sinks: &[Sink], m: &Metrics, now: i64) {
    let mut active = file.active;
    active.sort_by(|a, b| (a.starts_at, &a.key).cmp(&(b.starts_at, &b.key)));
    let n_active = active.len();
    for a in active {
        if !st.restore_active(a) {
            m.alerts_dropped[SubmitDrop::ActiveFull as usize].inc();
        }
    }
    let mut done = file.done;
    done.sort_by_key(|d| d.at_unix_ns);
    for d in done {
        if !st.active.contains_key(&d.key) {
            st.done.insert(d.key, d.at_unix_ns.min(now));
        }
    }
    let mut seen = vec![false; sinks.len()];
    let mut pending = 0usize;
    for s in file.sinks {
        match sinks
            .iter()
            .position(|c| c.kind == s.kind && c.url == s.url)
        {
            Some(i) => {
                seen[i] = true;
                pending += s.pending.len();
                for p in s.pending {
                    st.queues[i].push(p);
                }
            }
            None => {
                if !s.pending.is_empty() {
                    let n = s.pending.len() as u64;
                    m.dropped(s.kind, DropReason::SinkRemoved).inc_by(n);
                    warn!(
                        sink = %super::sink::redact(&s.url),
                        kind = s.kind.name(),
                        dropped = n,
                        "Dropped the spooled notifications of a sink that is no longer \
                         configured. Configure it again before the next start to keep them."
                    );
                }
            }
        }
    }
    for (i, s) in sinks.iter().enumerate() {
        if !seen[i] && s.kind == SinkKind::Webhook {
            st.introduce(i);
        }
    }
    info!(
        active = n_active,
        done = st.done.len(),
        pending,
        "Restored the alert spool."
    );
}

/// Writes the spool now (blocking); logs and counts failures.
pub(crate) fn write_now(shared: &Shared) {
    let Some(path) = &shared.settings.spool_path else {
        return;
    };
    let mut failing = shared.spool_lock.lock();
    let bytes = {
        let st = shared.state.lock();
        let mut active: Vec<&Alert> = st.active.values().collect();
        active.sort_by(|a, b| (a.starts_at, &a.key).cmp(&(b.starts_at, &b.key)));
        let out = SpoolOut {
            format: FORMAT,
            version: VERSION,
            written_at_unix_ns: now_ns(),
            active,
            done: st
                .done
                .iter()
                .map(|(key, at_unix_ns)| DoneOut { key, at_unix_ns })
                .collect(),
            sinks: shared
                .sinks
                .iter()
                .zip(&st.queues)
                .map(|(s, q)| SinkOut {
                    kind: s.kind,
                    url: &s.url,
                    pending: q.iter().collect(),
                })
                .collect(),
        };
        serde_json::to_vec(&out).expect("the spool serialises")
    };
    match write_atomic(path, &bytes) {
        Ok(()) => {
            shared.metrics.spool_writes[0].inc();
            if *failing {
                info!(path = %path.display(), "Writing the alert spool works again.");
            }
            *failing = false;
        }
        Err(e) => {
            shared.metrics.spool_writes[1].inc();
            if !*failing {
                error!(
                    path = %path.display(),
                    error = %e,
                    "Cannot write the alert spool; alerts not delivered yet would be lost on a \
                     restart. Check the space and permissions of the state directory."
                );
            }
            *failing = true;
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(TEMP_NAME);
    let written = (|| {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        // Findings name users and addresses: readable by the service's user only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}
