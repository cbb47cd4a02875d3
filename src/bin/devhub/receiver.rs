//! Receiver links on partitions: delivering events from a start position as link credit
//! allows, forced detaches (`--detach-every`), and epochs (owner levels).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fe2o3_amqp::link::DetachError;
use fe2o3_amqp::types::definitions::{self, ErrorCondition, LinkError};
use fe2o3_amqp::Sender;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::hub::{Hub, Partition};

/// How long devhub waits for the peer's answer to a detach it sends.
pub const DETACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a receiver link has to go.
#[derive(Debug)]
pub struct Stolen {
    pub description: String,
}

/// The active receivers of each (consumer group, partition), for epochs.
///
/// Event Hubs semantics: a receiver with an epoch (owner level) disconnects every receiver
/// whose epoch is lower or equal and every receiver without one; it is refused while a
/// receiver with a higher epoch is active. A receiver without an epoch is refused while any
/// receiver with an epoch is active; receivers without an epoch share the partition.
#[derive(Default)]
pub struct Owners {
    next_id: AtomicU64,
    active: Mutex<HashMap<(String, String), Vec<Owner>>>,
}

struct Owner {
    id: u64,
    name: String,
    epoch: Option<i64>,
    stop: Option<oneshot::Sender<Stolen>>,
}

/// Keeps a receiver registered; unregisters it when dropped.
pub struct Ownership {
    owners: Arc<Owners>,
    key: (String, String),
    id: u64,
}

impl Drop for Ownership {
    fn drop(&mut self) {
        let mut active = self.owners.active.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = active.get_mut(&self.key) {
            list.retain(|o| o.id != self.id);
            if list.is_empty() {
                active.remove(&self.key);
            }
        }
    }
}

impl Owners {
    /// Registers a receiver, stealing the partition from the receivers it displaces.
    /// `Err` is the description of the refusal.
    pub fn register(
        self: &Arc<Self>,
        consumer_group: &str,
        partition: &str,
        name: &str,
        epoch: Option<i64>,
    ) -> Result<(Ownership, oneshot::Receiver<Stolen>), String> {
        let key = (consumer_group.to_ascii_lowercase(), partition.to_string());
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let list = active.entry(key.clone()).or_default();
        let highest = list.iter().filter_map(|o| o.epoch).max();
        match (epoch, highest) {
            (Some(e), Some(h)) if h > e => {
                return Err(format!(
                    "Receiver '{name}' with epoch '{e}' cannot be created: a receiver with a \
                     higher epoch '{h}' is active on partition '{partition}' of consumer group \
                     '{consumer_group}'"
                ));
            }
            (None, Some(h)) => {
                return Err(format!(
                    "Receiver '{name}' without an epoch cannot be created: a receiver with epoch \
                     '{h}' is active on partition '{partition}' of consumer group \
                     '{consumer_group}'"
                ));
            }
            (Some(e), _) => {
                for old in list.iter_mut() {
                    if let Some(stop) = old.stop.take() {
                        let old_epoch = old
                            .epoch
                            .map_or_else(|| "none".to_string(), |x| x.to_string());
                        let _ = stop.send(Stolen {
                            description: format!(
                                "New receiver '{name}' with higher epoch of '{e}' is created \
                                 hence current receiver '{}' with epoch '{old_epoch}' is getting \
                                 disconnected",
                                old.name
                            ),
                        });
                    }
                }
            }
            (None, None) => {}
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        list.push(Owner {
            id,
            name: name.to_string(),
            epoch,
            stop: Some(tx),
        });
        Ok((
            Ownership {
                owners: self.clone(),
                key,
                id,
            },
            rx,
        ))
    }
}

/// One receiver link on a partition.
pub struct PartitionLink {
    pub sender: Sender,
    pub hub: Arc<Hub>,
    /// Index of the partition in `hub.partitions`.
    pub partition: usize,
    pub start: u64,
    pub detach_every: u64,
    pub ownership: Ownership,
    pub stolen: oneshot::Receiver<Stolen>,
    pub label: String,
}

impl PartitionLink {
    /// Delivers events from `start` until the link goes: the client detaches, the connection
    /// drops, a higher epoch steals it, or `detach_every` deliveries are done.
    pub async fn run(self) {
        let PartitionLink {
            mut sender,
            hub,
            partition,
            start,
            detach_every,
            ownership,
            mut stolen,
            label,
        } = self;
        let part: &Partition = &hub.partitions[partition];
        let mut visible = part.subscribe();
        let mut next = start;
        let mut delivered = 0u64;
        info!(link = %label, start, "receiver attached");
        loop {
            // The next event, once visible.
            let event = loop {
                visible.borrow_and_update();
                if let Some(ev) = part.get(next) {
                    break ev;
                }
                tokio::select! {
                    biased;
                    s = &mut stolen => {
                        drop(ownership);
                        return steal(sender, s, &label).await;
                    }
                    e = sender.on_detach() => {
                        return answer_detach(sender, e, &label).await;
                    }
                    r = visible.changed() => {
                        if r.is_err() {
                            return;
                        }
                    }
                }
            };
            // Pre-settled, and the delivery future is dropped: devhub never waits for an
            // outcome. `send` waits for credit and answers a detach that comes meanwhile.
            tokio::select! {
                biased;
                s = &mut stolen => {
                    drop(ownership);
                    return steal(sender, s, &label).await;
                }
                r = sender.send_batchable_ref(&event.sendable) => {
                    if let Err(e) = r {
                        debug!(link = %label, error = %e, "receiver link ended");
                        return;
                    }
                }
            }
            next += 1;
            delivered += 1;
            if detach_every > 0 && delivered % detach_every == 0 {
                // A plain detach, without an error: the client recovers the same way
                // (re-attach), and its `close` does not fail on a detach it had not read yet,
                // as it does on one that carries an error.
                info!(link = %label, delivered, "forcing a detach (--detach-every)");
                drop(ownership);
                return detach(sender, None, &label).await;
            }
        }
    }
}

async fn steal(sender: Sender, stolen: Result<Stolen, oneshot::error::RecvError>, label: &str) {
    let description = stolen
        .map(|s| s.description)
        .unwrap_or_else(|_| "receiver replaced".into());
    info!(link = %label, %description, "receiver stolen");
    let error = definitions::Error::new(LinkError::Stolen, description, None);
    detach(sender, Some(error), label).await
}

/// Detaches the link (not closing it), with an error or without, waiting a bounded time for
/// the peer's answer. A non-closing detach is what the client answers in kind, and it collides cleanly
/// with the client's own detach (`close_receiver` detaches without closing); a closing one
/// would make fe2o3 re-attach to close, which the client does not expect.
pub async fn detach(sender: Sender, error: Option<definitions::Error>, label: &str) {
    let done = match error {
        Some(error) => tokio::time::timeout(DETACH_TIMEOUT, sender.detach_with_error(error)).await,
        None => tokio::time::timeout(DETACH_TIMEOUT, sender.detach()).await,
    };
    match done {
        Ok(Ok(_)) => {}
        Ok(Err((_, e))) => debug!(link = %label, error = %e, "detach"),
        Err(_) => warn!(link = %label, "no answer to a detach; link dropped"),
    }
}

/// Closes the link with an error (refusing it), waiting a bounded time for the peer's answer.
pub async fn close(sender: Sender, error: definitions::Error, label: &str) {
    match tokio::time::timeout(DETACH_TIMEOUT, sender.close_with_error(error)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(link = %label, error = %e, "closing detach"),
        Err(_) => warn!(link = %label, "no answer to a closing detach; link dropped"),
    }
}

/// Answers the peer's detach in kind (closing or not).
pub async fn answer_detach(sender: Sender, why: DetachError, label: &str) {
    debug!(link = %label, reason = %why, "peer detached");
    let done = match why {
        DetachError::DetachedByRemote | DetachError::RemoteDetachedWithError(_) => {
            tokio::time::timeout(DETACH_TIMEOUT, async {
                let _ = sender.detach().await;
            })
            .await
        }
        DetachError::IllegalSessionState => return,
        _ => {
            tokio::time::timeout(DETACH_TIMEOUT, async {
                let _ = sender.close().await;
            })
            .await
        }
    };
    if done.is_err() {
        warn!(link = %label, "answering a detach timed out");
    }
}

/// An error condition by name, for conditions fe2o3 has no variant for.
pub fn custom(condition: &str, description: String) -> definitions::Error {
    definitions::Error::new(ErrorCondition::Custom(condition.into()), description, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_steal_and_refuse() {
        let owners = Arc::new(Owners::default());
        let (a, mut a_stop) = owners.register("$Default", "0", "a", None).unwrap();
        let (_b, mut b_stop) = owners.register("$default", "0", "b", None).unwrap();
        // An epoch receiver displaces both receivers without one.
        let (c, mut c_stop) = owners.register("$Default", "0", "c", Some(1)).unwrap();
        assert!(a_stop.try_recv().is_ok());
        assert!(b_stop.try_recv().is_ok());
        drop(a);
        // Without an epoch, or with a lower one: refused.
        assert!(owners.register("$Default", "0", "d", None).is_err());
        assert!(owners.register("$Default", "0", "d", Some(0)).is_err());
        // Another partition or consumer group is independent.
        assert!(owners.register("$Default", "1", "e", None).is_ok());
        assert!(owners.register("other", "0", "e", None).is_ok());
        // The same epoch steals.
        let (_f, mut f_stop) = owners.register("$Default", "0", "f", Some(1)).unwrap();
        let s = c_stop.try_recv().unwrap();
        assert!(s.description.contains("'f'"), "{}", s.description);
        assert!(f_stop.try_recv().is_err());
        drop(c);
        // A closed receiver no longer counts.
        let owners2 = Arc::new(Owners::default());
        let (g, _g_stop) = owners2.register("$Default", "0", "g", Some(5)).unwrap();
        drop(g);
        assert!(owners2.register("$Default", "0", "h", None).is_ok());
    }
}
