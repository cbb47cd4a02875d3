//! The detector's state in the snapshot (section 6, see `state`): everything it holds, so a
//! restart neither alerts again nor forgets the baseline. Indices are checked on decode.
//!
//! ```text
//! strings: var n, n strings | learning_start, watermark: opt zvar | learning_checked u8
//! seeded: var n, n pair keys (user var, protocol u8, ip var+1, app var+1)
//! pairs: var n, per pair key | first, last zvar | count var | ip, client var | alerted u8
//! privileged: var n, per user var, protocol u8 | first, last zvar | success, blocked var | ip var+1 | alerted u8
//! ips: var n, per ip string | settled_until zvar | fails: var n (time zvar, user var, protocol u8, tool u8)
//!      | hits: var n (time zvar, user var, protocol u8, outcome u8)
//!      | reported: var n (key string, first_seen, end zvar, users var, ended u8, valid: var n (user var, key string))
//! surge: 13 x (var n, (hour zvar, count var)) | reported surges: var n (protocol u8, hour zvar)
//! drops: 5 var | settled: var n, n findings as JSON text
//! ```

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::spray::Fail;
use super::{
    Detector, FailEv, Finding, Hit, IpState, Kind, PairKey, PairStats, PrivStats, Reported, State,
    NONE,
};
use crate::model::{Outcome, Protocol};
use crate::state::codec::{CodecError, Reader, Writer};

fn opt_id(w: &mut Writer, id: u32) {
    w.var(if id == NONE { 0 } else { u64::from(id) + 1 });
}

fn key(w: &mut Writer, k: &PairKey) {
    w.var(u64::from(k.user));
    w.u8(k.protocol as u8);
    opt_id(w, k.ip);
    opt_id(w, k.app);
}

impl Detector {
    /// Appends the state (call while intake is held still).
    pub fn encode(&self, w: &mut Writer) {
        let st = self.state.lock();
        w.len_var(st.strings.strings.len());
        for s in &st.strings.strings {
            w.bytes(s.as_bytes());
        }
        w.opt_i(st.learning_start);
        w.opt_i(st.watermark);
        w.u8(u8::from(st.learning_checked));
        w.len_var(st.seeded.len());
        for k in &st.seeded {
            key(w, k);
        }
        w.len_var(st.pairs.len());
        for (k, p) in &st.pairs {
            key(w, k);
            w.var_i(p.first);
            w.var_i(p.last);
            w.var(p.count);
            w.var(u64::from(p.ip));
            w.var(u64::from(p.client));
            w.u8(u8::from(p.alerted));
        }
        w.len_var(st.privileged.len());
        for ((u, proto), p) in &st.privileged {
            w.var(u64::from(*u));
            w.u8(*proto as u8);
            w.var_i(p.first);
            w.var_i(p.last);
            w.var(p.success);
            w.var(p.blocked);
            opt_id(w, p.ip);
            w.u8(u8::from(p.alerted));
        }
        w.len_var(st.ips.len());
        for (ip, s) in &st.ips {
            w.bytes(ip.as_bytes());
            w.var_i(s.settled_until);
            w.len_var(s.fails.len());
            for f in &s.fails {
                w.var_i(f.fail.time);
                w.var(u64::from(f.fail.user));
                w.u8(f.protocol as u8);
                w.u8(u8::from(f.tool));
            }
            w.len_var(s.hits.len());
            for h in &s.hits {
                w.var_i(h.time);
                w.var(u64::from(h.user));
                w.u8(h.protocol as u8);
                w.u8(h.outcome as u8);
            }
            w.len_var(s.reported.len());
            for r in &s.reported {
                w.bytes(r.key.as_bytes());
                w.var_i(r.first_seen);
                w.var_i(r.end);
                w.var(r.users);
                w.u8(u8::from(r.ended));
                w.len_var(r.valid.len());
                for (u, k) in &r.valid {
                    w.var(u64::from(*u));
                    w.bytes(k.as_bytes());
                }
            }
        }
        for hours in &st.surge {
            w.len_var(hours.len());
            for (h, n) in hours {
                w.var_i(*h);
                w.var(*n);
            }
        }
        w.len_var(st.reported_surges.len());
        for (p, h) in &st.reported_surges {
            w.u8(*p as u8);
            w.var_i(*h);
        }
        for v in st.drops.values() {
            w.var(v);
        }
        w.len_var(st.settled.len());
        for f in &st.settled {
            let mut o = f.to_json();
            if let Some(m) = o.as_object_mut() {
                m.insert("key".into(), f.key.clone().into());
                m.insert("at_ns".into(), f.at.into());
                m.insert("first_ns".into(), f.first_seen.into());
                m.insert("last_ns".into(), f.last_seen.into());
                m.insert("ended_ns".into(), f.ended.into());
            }
            w.bytes(o.to_string().as_bytes());
        }
    }

    /// Replaces the state with one read from `r` (the section body).
    pub fn decode(&self, r: &mut Reader<'_>) -> Result<(), CodecError> {
        let mut st = State::new();
        let n = r.count(1)?;
        for _ in 0..n {
            let s: Arc<str> = Arc::from(r.str()?);
            let id = st.strings.strings.len() as u32;
            st.strings.strings.push(s.clone());
            st.strings.ids.insert(s, id);
        }
        let strings = st.strings.strings.len();
        let id = |r: &mut Reader<'_>| -> Result<u32, CodecError> {
            let v = r.var()?;
            if v >= strings as u64 {
                return Err(r.invalid("string index out of range"));
            }
            Ok(v as u32)
        };
        let opt = |r: &mut Reader<'_>| -> Result<u32, CodecError> {
            match r.var()? {
                0 => Ok(NONE),
                v if v <= strings as u64 => Ok((v - 1) as u32),
                _ => Err(r.invalid("string index out of range")),
            }
        };
        let protocol = |r: &mut Reader<'_>| -> Result<Protocol, CodecError> {
            let v = r.u8()? as usize;
            Protocol::ALL
                .get(v)
                .copied()
                .ok_or_else(|| r.invalid("bad protocol"))
        };
        let flag = |r: &mut Reader<'_>| -> Result<bool, CodecError> {
            match r.u8()? {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(r.invalid("bad flag")),
            }
        };
        let pair_key = |r: &mut Reader<'_>| -> Result<PairKey, CodecError> {
            Ok(PairKey {
                user: id(r)?,
                protocol: protocol(r)?,
                ip: opt(r)?,
                app: opt(r)?,
            })
        };
        st.learning_start = r.opt_i()?;
        st.watermark = r.opt_i()?;
        st.learning_checked = flag(r)?;
        let n = r.count(4)?;
        for _ in 0..n {
            st.seeded.insert(pair_key(r)?);
        }
        let n = r.count(10)?;
        st.pairs = FxHashMap::default();
        st.pairs.reserve(n);
        for _ in 0..n {
            let k = pair_key(r)?;
            let p = PairStats {
                first: r.var_i()?,
                last: r.var_i()?,
                count: r.var()?,
                ip: id(r)?,
                client: id(r)?,
                alerted: flag(r)?,
            };
            st.pairs.insert(k, p);
        }
        let n = r.count(9)?;
        for _ in 0..n {
            let u = id(r)?;
            let p = protocol(r)?;
            let s = PrivStats {
                first: r.var_i()?,
                last: r.var_i()?,
                success: r.var()?,
                blocked: r.var()?,
                ip: opt(r)?,
                alerted: flag(r)?,
            };
            st.privileged.insert((u, p), s);
        }
        let n = r.count(5)?;
        for _ in 0..n {
            let ip: Arc<str> = Arc::from(r.str()?);
            let mut s = IpState {
                settled_until: r.var_i()?,
                ..IpState::default()
            };
            let m = r.count(4)?;
            for _ in 0..m {
                let time = r.var_i()?;
                let user = id(r)?;
                let p = protocol(r)?;
                let tool = flag(r)?;
                s.fails.push(FailEv {
                    fail: Fail { time, user },
                    protocol: p,
                    tool,
                });
            }
            let m = r.count(4)?;
            for _ in 0..m {
                let time = r.var_i()?;
                let user = id(r)?;
                let p = protocol(r)?;
                let outcome = match r.u8()? {
                    0 => Outcome::Success,
                    1 => Outcome::Blocked,
                    _ => return Err(r.invalid("bad outcome")),
                };
                s.hits.push(Hit {
                    time,
                    user,
                    protocol: p,
                    outcome,
                });
            }
            let m = r.count(6)?;
            for _ in 0..m {
                let key = r.str()?.to_string();
                let first_seen = r.var_i()?;
                let end = r.var_i()?;
                let users = r.var()?;
                let ended = flag(r)?;
                let v = r.count(2)?;
                let mut valid = Vec::with_capacity(v);
                for _ in 0..v {
                    valid.push((id(r)?, r.str()?.to_string()));
                }
                s.reported.push(Reported {
                    key,
                    first_seen,
                    end,
                    users,
                    ended,
                    valid,
                });
            }
            s.sorted = s.fails.windows(2).all(|p| p[0] <= p[1]);
            s.hits_sorted = s.hits.windows(2).all(|p| p[0] <= p[1]);
            st.events += s.fails.len() + s.hits.len();
            if s.reported.iter().any(|r| !r.ended) {
                st.open_ips.insert(ip.clone());
            }
            st.ips.insert(ip, s);
        }
        for p in 0..Protocol::COUNT {
            let n = r.count(2)?;
            for _ in 0..n {
                let h = r.var_i()?;
                let c = r.var()?;
                st.surge[p].insert(h, c);
            }
        }
        let n = r.count(2)?;
        st.reported_surges = FxHashSet::default();
        for _ in 0..n {
            let p = protocol(r)?;
            st.reported_surges.insert((p, r.var_i()?));
        }
        st.drops.events = r.var()?;
        st.drops.pairs = r.var()?;
        st.drops.strings = r.var()?;
        st.drops.late = r.var()?;
        st.drops.settled = r.var()?;
        let n = r.count(2)?;
        for _ in 0..n {
            let text = r.str()?;
            let f = finding_from_json(text).ok_or_else(|| r.invalid("bad settled finding"))?;
            st.settled.push(f);
        }
        // What was not evaluated before the snapshot is looked at again.
        st.dirty_pairs = st
            .pairs
            .iter()
            .filter(|(_, p)| !p.alerted)
            .map(|(k, _)| *k)
            .collect();
        st.dirty_privileged = st
            .privileged
            .iter()
            .filter(|(_, p)| !p.alerted)
            .map(|(k, _)| *k)
            .collect();
        for (ip, s) in st.ips.iter_mut() {
            s.dirty = true;
            st.dirty_ips.push(ip.clone());
        }
        st.dirty_surges = Protocol::ALL
            .iter()
            .flat_map(|p| st.surge[p.index()].keys().map(move |h| (*p, *h)))
            .filter(|k| !st.reported_surges.contains(k))
            .collect();
        *self.state.lock() = st;
        Ok(())
    }
}

fn finding_from_json(text: &str) -> Option<Finding> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let o = v.as_object()?;
    let kind_name = o.get("kind")?.as_str()?;
    let kind = Kind::ALL.into_iter().find(|k| k.name() == kind_name)?;
    let s = |k: &str| o.get(k).and_then(|v| v.as_str()).map(Arc::<str>::from);
    let mut evidence = o.get("evidence")?.as_object()?.clone();
    for k in ["first_seen", "last_seen", "ended"] {
        evidence.remove(k);
    }
    Some(Finding {
        key: o.get("key")?.as_str()?.to_string(),
        kind,
        at: o.get("at_ns")?.as_i64()?,
        user: s("user"),
        protocol: o
            .get("protocol")
            .and_then(|p| p.as_str())
            .and_then(|p| Protocol::ALL.into_iter().find(|x| x.name() == p)),
        ip: s("ip"),
        first_seen: o.get("first_ns")?.as_i64()?,
        last_seen: o.get("last_ns")?.as_i64()?,
        ended: o.get("ended_ns").and_then(|v| v.as_i64()),
        evidence,
    })
}
