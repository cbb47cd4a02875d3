//! The lifecycle of alerts and the pending notifications of each sink; no I/O.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{webhook, Alert, AlertState, SinkKind};

/// One notification waiting for a sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// The alert as it is to be sent (its state is the notification's status).
    pub alert: Alert,
    /// Webhook: the `X-Signin-Radar-Delivery` id; empty for Alertmanager.
    #[serde(default)]
    pub delivery_id: String,
    /// Whether its delivery is observed in the latency histogram (a transition, not a
    /// re-send).
    #[serde(default)]
    pub measure: bool,
}

/// The pending notifications of one sink, oldest first, bounded (the oldest is dropped).
/// For Alertmanager, one per key (latest wins, and moves to the back).
pub(crate) struct Queue {
    pub kind: SinkKind,
    items: BTreeMap<u64, Pending>,
    by_key: HashMap<String, u64>,
    next_seq: u64,
    cap: usize,
    /// Dropped because full since the owner last took this count.
    pub dropped_full: u64,
}

impl Queue {
    pub fn new(kind: SinkKind, cap: usize) -> Queue {
        Queue {
            kind,
            items: BTreeMap::new(),
            by_key: HashMap::new(),
            next_seq: 0,
            cap: cap.max(1),
            dropped_full: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn push(&mut self, mut p: Pending) {
        if self.kind == SinkKind::Alertmanager {
            if let Some(old) = self.by_key.remove(&p.alert.key) {
                if let Some(old) = self.items.remove(&old) {
                    p.measure |= old.measure;
                }
            }
        }
        while self.items.len() >= self.cap {
            let Some((seq, old)) = self.items.pop_first() else {
                break;
            };
            if self.by_key.get(&old.alert.key) == Some(&seq) {
                self.by_key.remove(&old.alert.key);
            }
            self.dropped_full += 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.kind == SinkKind::Alertmanager {
            self.by_key.insert(p.alert.key.clone(), seq);
        }
        self.items.insert(seq, p);
    }

    /// Copies of the first `n` pending notifications, with their sequence numbers.
    pub fn take(&self, n: usize) -> Vec<(u64, Pending)> {
        self.items
            .iter()
            .take(n)
            .map(|(s, p)| (*s, p.clone()))
            .collect()
    }

    /// Removes the notifications `seqs` that are still pending (one may have been replaced or
    /// dropped meanwhile); returns those removed.
    pub fn ack(&mut self, seqs: &[u64]) -> Vec<Pending> {
        let mut out = Vec::new();
        for seq in seqs {
            if let Some(p) = self.items.remove(seq) {
                if self.by_key.get(&p.alert.key) == Some(seq) {
                    self.by_key.remove(&p.alert.key);
                }
                out.push(p);
            }
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.items.values()
    }
}

/// Keys of alerts that ended, oldest first, bounded (the oldest is forgotten).
pub(crate) struct Done {
    map: HashMap<String, i64>,
    order: VecDeque<(String, i64)>,
    cap: usize,
    /// Forgotten because full since the owner last took this count.
    pub forgotten: u64,
}

impl Done {
    pub fn new(cap: usize) -> Done {
        Done {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            forgotten: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn insert(&mut self, key: String, at: i64) {
        // A key inserted again leaves a stale entry in `order`, skipped when it comes out.
        if self.map.insert(key.clone(), at) == Some(at) {
            return;
        }
        self.order.push_back((key, at));
        while self.map.len() > self.cap || self.order.len() > 2 * self.cap {
            let Some((k, t)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k) == Some(&t) {
                self.map.remove(&k);
                self.forgotten += 1;
            }
        }
    }

    /// (key, time) oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.order
            .iter()
            .filter(|(k, t)| self.map.get(k) == Some(t))
            .map(|(k, t)| (k.as_str(), *t))
    }
}

/// What a submit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A transition (new firing key, or resolve of an active key): queued for every sink.
    Notified,
    /// An active key's alert was replaced.
    Updated,
    /// A done key, or a resolve of an unknown key: ignored.
    Deduplicated,
    /// A new key while the active alerts are at their bound: dropped.
    ActiveFull,
}

pub(crate) struct State {
    pub active: HashMap<String, Alert>,
    pub done: Done,
    /// One per sink, in the order of the dispatcher's sinks.
    pub queues: Vec<Queue>,
    cap: usize,
}

impl State {
    pub fn new(kinds: &[SinkKind], cap: usize, done_cap: usize) -> State {
        State {
            active: HashMap::new(),
            done: Done::new(done_cap),
            queues: kinds.iter().map(|k| Queue::new(*k, cap)).collect(),
            cap: cap.max(1),
        }
    }

    /// Applies one submitted alert at wall time `now` (unix ns).
    pub fn submit(&mut self, mut alert: Alert, now: i64) -> Outcome {
        alert.starts_at = alert.starts_at.min(now);
        match alert.state {
            AlertState::Firing => {
                if self.done.contains(&alert.key) {
                    return Outcome::Deduplicated;
                }
                if let Some(stored) = self.active.get_mut(&alert.key) {
                    // Keep the earliest start: Alertmanager keeps it too.
                    alert.starts_at = alert.starts_at.min(stored.starts_at);
                    *stored = alert;
                    return Outcome::Updated;
                }
                if self.active.len() >= self.cap {
                    return Outcome::ActiveFull;
                }
                self.notify_all(&alert);
                self.active.insert(alert.key.clone(), alert);
                Outcome::Notified
            }
            AlertState::Resolved => {
                let Some(stored) = self.active.remove(&alert.key) else {
                    return Outcome::Deduplicated;
                };
                let resolved = resolve(stored, alert, now);
                self.notify_all(&resolved);
                self.done.insert(resolved.key.clone(), now);
                Outcome::Notified
            }
        }
    }

    fn notify_all(&mut self, alert: &Alert) {
        for q in &mut self.queues {
            let delivery_id = match q.kind {
                SinkKind::Alertmanager => String::new(),
                SinkKind::Webhook => webhook::delivery_id(alert),
            };
            q.push(Pending {
                alert: alert.clone(),
                delivery_id,
                measure: true,
            });
        }
    }

    /// Queues a firing notice of every active alert for webhook sink `i` (a sink new since
    /// the spool was written).
    pub fn introduce(&mut self, i: usize) {
        let mut alerts: Vec<&Alert> = self.active.values().collect();
        alerts.sort_by(|a, b| (a.starts_at, &a.key).cmp(&(b.starts_at, &b.key)));
        let q = &mut self.queues[i];
        for a in alerts {
            q.push(Pending {
                alert: a.clone(),
                delivery_id: webhook::delivery_id(a),
                measure: false,
            });
        }
    }

    /// Point alerts whose end has passed move to done.
    pub fn expire(&mut self, now: i64) {
        let mut ended: Vec<(i64, String)> = self
            .active
            .values()
            .filter_map(|a| match a.ends_at {
                Some(t) if t <= now => Some((t, a.key.clone())),
                _ => None,
            })
            .collect();
        ended.sort();
        for (t, key) in ended {
            self.active.remove(&key);
            self.done.insert(key, t.min(now));
        }
    }

    /// Queues every active alert for each Alertmanager sink (coalesced with what is pending).
    pub fn queue_resends(&mut self) {
        if !self.queues.iter().any(|q| q.kind == SinkKind::Alertmanager) {
            return;
        }
        let mut alerts: Vec<&Alert> = self.active.values().collect();
        alerts.sort_by(|a, b| (a.starts_at, &a.key).cmp(&(b.starts_at, &b.key)));
        for q in self
            .queues
            .iter_mut()
            .filter(|q| q.kind == SinkKind::Alertmanager)
        {
            for a in &alerts {
                q.push(Pending {
                    alert: (*a).clone(),
                    delivery_id: String::new(),
                    measure: false,
                });
            }
        }
    }

    /// Restores an active alert (from the spool); false when at the bound.
    pub fn restore_active(&mut self, alert: Alert) -> bool {
        if self.active.len() >= self.cap && !self.active.contains_key(&alert.key) {
            return false;
        }
        self.active.insert(alert.key.clone(), alert);
        true
    }
}

/// The resolve notification of `stored` from the submitted `resolved`: labels and start as
/// fired, annotations and finding from the resolve when it has them, end clamped to
/// `start ..= now`.
fn resolve(stored: Alert, resolved: Alert, now: i64) -> Alert {
    let ends_at = resolved
        .ends_at
        .unwrap_or(now)
        .min(now)
        .max(stored.starts_at);
    Alert {
        state: AlertState::Resolved,
        ends_at: Some(ends_at),
        annotations: if resolved.annotations.is_empty() {
            stored.annotations
        } else {
            resolved.annotations
        },
        detail: if resolved.detail.is_null() {
            stored.detail
        } else {
            resolved.detail
        },
        generator_url: if resolved.generator_url.is_empty() {
            stored.generator_url
        } else {
            resolved.generator_url
        },
        observed_ns: resolved.observed_ns,
        ..stored
    }
}
