//! The event hub devhub serves: partitions of events with their sequence numbers, offsets and
//! enqueued times, the start positions a receiver may ask for, and the publisher that makes
//! events visible over time (`--publish-rate`).

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fe2o3_amqp::types::messaging::{Data, Message, MessageAnnotations};
use fe2o3_amqp::types::primitives::{Binary, Timestamp, Value};
use fe2o3_amqp::Sendable;
use tokio::sync::watch;

/// One event of a partition, ready to send: the AMQP message is built once, when the event
/// becomes visible, and sent by reference to every receiver.
pub struct Event {
    pub seq: i64,
    /// Byte offset of the event's body in its partition (the bodies before it, summed).
    pub offset: u64,
    pub enqueued_ms: i64,
    pub body_len: usize,
    pub sendable: Sendable<Data>,
}

impl Event {
    fn new(seq: i64, offset: u64, enqueued_ms: i64, body: Vec<u8>) -> Event {
        let body_len = body.len();
        let annotations = MessageAnnotations::builder()
            .insert("x-opt-sequence-number", Value::Long(seq))
            .insert("x-opt-offset", Value::String(offset.to_string()))
            .insert(
                "x-opt-enqueued-time",
                Value::Timestamp(Timestamp::from_milliseconds(enqueued_ms)),
            )
            .build();
        let message = Message::builder()
            .message_annotations(annotations)
            .data(Binary::from(body))
            .build();
        Event {
            seq,
            offset,
            enqueued_ms,
            body_len,
            sendable: Sendable::builder().message(message).settled(true).build(),
        }
    }
}

/// What a partition holds right now (for the management READ and start positions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Visible events.
    pub count: u64,
    pub last_seq: i64,
    /// Offset of the last event, -1 when empty.
    pub last_offset: i64,
    /// Enqueued time of the last event in Unix milliseconds, 0 when empty.
    pub last_enqueued_ms: i64,
}

pub struct Partition {
    pub id: String,
    events: RwLock<Vec<Arc<Event>>>,
    visible: watch::Sender<u64>,
}

impl Partition {
    fn new(id: String) -> Partition {
        Partition {
            id,
            events: RwLock::new(Vec::new()),
            visible: watch::Sender::new(0),
        }
    }

    /// Appends an event enqueued at `enqueued_ms` and wakes the receivers waiting for it.
    pub fn publish(&self, body: Vec<u8>, enqueued_ms: i64) {
        let count = {
            let mut events = self.events.write().unwrap_or_else(|e| e.into_inner());
            let (seq, offset) = match events.last() {
                Some(last) => (last.seq + 1, last.offset + last.body_len as u64),
                None => (0, 0),
            };
            events.push(Arc::new(Event::new(seq, offset, enqueued_ms, body)));
            events.len() as u64
        };
        self.visible.send_replace(count);
    }

    /// The event at `index` (= its sequence number), once visible.
    pub fn get(&self, index: u64) -> Option<Arc<Event>> {
        let events = self.events.read().unwrap_or_else(|e| e.into_inner());
        usize::try_from(index)
            .ok()
            .and_then(|i| events.get(i))
            .cloned()
    }

    /// Notified whenever events become visible.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.visible.subscribe()
    }

    pub fn info(&self) -> PartitionInfo {
        let events = self.events.read().unwrap_or_else(|e| e.into_inner());
        match events.last() {
            Some(last) => PartitionInfo {
                count: events.len() as u64,
                last_seq: last.seq,
                last_offset: last.offset as i64,
                last_enqueued_ms: last.enqueued_ms,
            },
            None => PartitionInfo {
                count: 0,
                last_seq: -1,
                last_offset: -1,
                last_enqueued_ms: 0,
            },
        }
    }

    /// The index of the first event a receiver with `start` gets: an index at or past the
    /// end means "the next event to become visible".
    pub fn resolve_start(&self, start: &StartFilter) -> Result<u64, String> {
        let events = self.events.read().unwrap_or_else(|e| e.into_inner());
        let count = events.len() as u64;
        let first_where =
            |pred: &dyn Fn(&Event) -> bool| -> u64 { events.partition_point(|e| !pred(e)) as u64 };
        match *start {
            StartFilter::Earliest => Ok(0),
            StartFilter::Latest => Ok(count),
            StartFilter::Sequence { value, inclusive } => {
                let from = if inclusive {
                    value
                } else {
                    value.saturating_add(1)
                };
                let from = u64::try_from(from.max(0)).unwrap_or(0);
                if from > count {
                    return Err(format!(
                        "The supplied sequence number '{value}' is invalid. The last sequence \
                         number in the system is '{}'",
                        count as i64 - 1
                    ));
                }
                Ok(from)
            }
            StartFilter::Offset { value, inclusive } => {
                let last = events.last().map_or(-1, |e| e.offset as i64);
                if value > last {
                    return Err(format!(
                        "The supplied offset '{value}' is invalid. The last offset in the system \
                         is '{last}'"
                    ));
                }
                Ok(if inclusive {
                    first_where(&|e| e.offset as i64 >= value)
                } else {
                    first_where(&|e| e.offset as i64 > value)
                })
            }
            StartFilter::EnqueuedTime { ms, inclusive } => Ok(if inclusive {
                first_where(&|e| e.enqueued_ms >= ms)
            } else {
                first_where(&|e| e.enqueued_ms > ms)
            }),
        }
    }
}

/// A receiver's start position, from its `apache.org:selector-filter:string` filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartFilter {
    Earliest,
    Latest,
    Sequence { value: i64, inclusive: bool },
    Offset { value: i64, inclusive: bool },
    EnqueuedTime { ms: i64, inclusive: bool },
}

impl StartFilter {
    /// Parses the selector expressions the official clients send, for example
    /// `amqp.annotation.x-opt-offset > '-1'` or `amqp.annotation.x-opt-sequence-number >='5'`.
    pub fn parse(expr: &str) -> Result<StartFilter, String> {
        let bad = || format!("unsupported selector filter {expr:?}");
        let e = expr.trim();
        let op_at = e.find(['>', '=']).ok_or_else(bad)?;
        let name = e[..op_at].trim();
        let rest = &e[op_at..];
        let (inclusive, rest) = if let Some(r) = rest.strip_prefix(">=") {
            (true, r)
        } else if let Some(r) = rest.strip_prefix('>') {
            (false, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (true, r)
        } else {
            return Err(bad());
        };
        let value = rest
            .trim()
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .ok_or_else(bad)?;
        let name = name.strip_prefix("amqp.annotation.").unwrap_or(name);
        let number = |v: &str| v.trim().parse::<i64>().map_err(|_| bad());
        match name {
            "x-opt-offset" => match value {
                "-1" => Ok(StartFilter::Earliest),
                "@latest" => Ok(StartFilter::Latest),
                v => Ok(StartFilter::Offset {
                    value: number(v)?,
                    inclusive,
                }),
            },
            "x-opt-sequence-number" => Ok(StartFilter::Sequence {
                value: number(value)?,
                inclusive,
            }),
            "x-opt-enqueued-time" => Ok(StartFilter::EnqueuedTime {
                ms: number(value)?,
                inclusive,
            }),
            _ => Err(bad()),
        }
    }
}

pub struct Hub {
    pub name: String,
    pub created_ms: i64,
    pub consumer_groups: Vec<String>,
    pub partitions: Vec<Partition>,
}

impl Hub {
    pub fn new(name: String, partitions: usize, consumer_groups: Vec<String>) -> Hub {
        Hub {
            name,
            created_ms: now_ms(),
            consumer_groups,
            partitions: (0..partitions)
                .map(|i| Partition::new(i.to_string()))
                .collect(),
        }
    }

    pub fn partition(&self, id: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.id == id)
    }

    pub fn has_consumer_group(&self, name: &str) -> bool {
        self.consumer_groups
            .iter()
            .any(|g| g.eq_ignore_ascii_case(name))
    }

    /// Publishes every message at once, round-robin over the partitions: message `i` is
    /// enqueued at `start_ms + i` milliseconds.
    pub fn publish_all(&self, messages: Vec<Vec<u8>>, start_ms: i64) {
        let n = self.partitions.len();
        for (i, body) in messages.into_iter().enumerate() {
            self.partitions[i % n].publish(body, start_ms + i as i64);
        }
    }
}

/// Makes `messages` visible round-robin at `rate` messages per second, each enqueued at the
/// moment it becomes visible. Returns when every message is published.
pub async fn publish_at_rate(hub: Arc<Hub>, messages: Vec<Vec<u8>>, rate: f64) {
    let n = hub.partitions.len();
    let started = tokio::time::Instant::now();
    let total = messages.len();
    for (i, body) in messages.into_iter().enumerate() {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        hub.partitions[i % n].publish(body, now_ms());
    }
    tracing::info!(messages = total, "every message is published");
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_start_position_the_client_sends() {
        let p = StartFilter::parse;
        assert_eq!(
            p("amqp.annotation.x-opt-offset > '-1'"),
            Ok(StartFilter::Earliest)
        );
        assert_eq!(
            p("amqp.annotation.x-opt-offset > '@latest'"),
            Ok(StartFilter::Latest)
        );
        assert_eq!(
            p("amqp.annotation.x-opt-sequence-number >'5'"),
            Ok(StartFilter::Sequence {
                value: 5,
                inclusive: false
            })
        );
        assert_eq!(
            p("amqp.annotation.x-opt-sequence-number >='5'"),
            Ok(StartFilter::Sequence {
                value: 5,
                inclusive: true
            })
        );
        assert_eq!(
            p("amqp.annotation.x-opt-offset >='120'"),
            Ok(StartFilter::Offset {
                value: 120,
                inclusive: true
            })
        );
        assert_eq!(
            p("amqp.annotation.x-opt-enqueued-time >'1700000000000'"),
            Ok(StartFilter::EnqueuedTime {
                ms: 1_700_000_000_000,
                inclusive: false
            })
        );
        assert!(p("amqp.annotation.x-opt-offset > 5").is_err());
        assert!(p("amqp.annotation.x-opt-owner > '5'").is_err());
        assert!(p("").is_err());
    }

    #[test]
    fn start_positions_resolve_on_sequence_offset_and_time() {
        let p = Partition::new("0".into());
        for i in 0..5 {
            p.publish(vec![b'x'; 10], 1000 + i * 10);
        }
        let r = |f| p.resolve_start(&f);
        assert_eq!(r(StartFilter::Earliest), Ok(0));
        assert_eq!(r(StartFilter::Latest), Ok(5));
        let seq = |value, inclusive| StartFilter::Sequence { value, inclusive };
        assert_eq!(r(seq(2, false)), Ok(3));
        assert_eq!(r(seq(2, true)), Ok(2));
        assert_eq!(r(seq(4, false)), Ok(5));
        assert_eq!(r(seq(5, true)), Ok(5));
        assert!(r(seq(5, false)).is_err());
        let off = |value, inclusive| StartFilter::Offset { value, inclusive };
        assert_eq!(r(off(20, false)), Ok(3));
        assert_eq!(r(off(20, true)), Ok(2));
        assert_eq!(r(off(25, true)), Ok(3));
        assert!(r(off(41, false)).is_err());
        let time = |ms, inclusive| StartFilter::EnqueuedTime { ms, inclusive };
        assert_eq!(r(time(1020, false)), Ok(3));
        assert_eq!(r(time(1020, true)), Ok(2));
        assert_eq!(r(time(0, false)), Ok(0));
        assert_eq!(r(time(9999, false)), Ok(5));
        let info = p.info();
        assert_eq!(
            info,
            PartitionInfo {
                count: 5,
                last_seq: 4,
                last_offset: 40,
                last_enqueued_ms: 1040
            }
        );
    }
}
