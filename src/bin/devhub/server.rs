//! Connections, sessions and the dispatch of incoming links: `$cbs` and `$management`
//! request/reply pairs, and receivers on partitions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SaslAnonymousMechanism,
    SessionAcceptor,
};
use fe2o3_amqp::link::RecvError;
use fe2o3_amqp::types::definitions::{self, AmqpError};
use fe2o3_amqp::types::messaging::{Body, TargetArchetype};
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::Value;
use fe2o3_amqp::{Delivery, Receiver, Sendable, Sender};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::hub::{Hub, StartFilter};
use crate::mgmt::{self, Auth, Reply};
use crate::receiver::{self, Owners, PartitionLink, DETACH_TIMEOUT};

/// Largest frame devhub accepts (the official client uses the same).
const MAX_FRAME_BYTES: u32 = 64 * 1024;
/// Sessions per connection (the client opens one per partition and one per token put).
const MAX_SESSIONS: u16 = 1024;
/// Links per session.
const MAX_LINKS: u32 = 256;
/// Largest request accepted on `$cbs` and `$management` (tokens are a few KB).
const MAX_REQUEST_BYTES: u64 = 1 << 20;
/// Frames buffered per session and per connection.
const BUFFER_FRAMES: usize = 1024;
/// How long devhub waits before it accepts a request (see `request_task`).
const DISPOSITION_DELAY: Duration = Duration::from_millis(5);
/// How long a `$cbs` or `$management` link waits before it answers a detach (see
/// `request_task`).
const LINGER: Duration = Duration::from_millis(50);
/// Time a client has to finish the SASL and AMQP open handshake.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// What every connection shares.
pub struct Shared {
    pub hub: Arc<Hub>,
    pub auth: Auth,
    /// Force-detach each receiver link after this many deliveries (0: never).
    pub detach_every: u64,
    pub owners: Arc<Owners>,
}

impl Shared {
    pub fn new(hub: Arc<Hub>, auth: Auth, detach_every: u64) -> Arc<Shared> {
        Arc::new(Shared {
            hub,
            auth,
            detach_every,
            owners: Arc::new(Owners::default()),
        })
    }
}

/// Accepts connections until the task is dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let acceptor = Arc::new(
        ConnectionAcceptor::builder()
            .container_id("devhub")
            .max_frame_size(MAX_FRAME_BYTES)
            .channel_max(MAX_SESSIONS)
            .buffer_size(BUFFER_FRAMES)
            .sasl_acceptor(SaslAnonymousMechanism::new())
            .build(),
    );
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(connection(stream, peer, acceptor.clone(), shared.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little, keep serving.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Arc<ConnectionAcceptor<(), SaslAnonymousMechanism>>,
    shared: Arc<Shared>,
) {
    // The transfers are the only traffic; do not let Nagle hold them.
    let _ = stream.set_nodelay(true);
    let mut conn = match tokio::time::timeout(OPEN_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            info!(%peer, error = %e, "connection failed to open");
            return;
        }
        Err(_) => {
            info!(%peer, "connection did not open in time");
            return;
        }
    };
    info!(%peer, "connection opened");
    let sessions = SessionAcceptor::builder()
        .handle_max(MAX_LINKS)
        .buffer_size(BUFFER_FRAMES)
        .build();
    while let Some(incoming) = conn.next_incoming_session().await {
        match sessions.accept_incoming_session(incoming, &mut conn).await {
            Ok(session) => {
                tokio::spawn(session_task(session, shared.clone(), peer));
            }
            Err(e) => {
                warn!(%peer, error = %e, "session refused");
                break;
            }
        }
    }
    let _ = tokio::time::timeout(DETACH_TIMEOUT, conn.close()).await;
    info!(%peer, "connection closed");
}

/// What devhub needs from an incoming attach (read before it is accepted).
#[derive(Debug, Default)]
struct AttachInfo {
    name: String,
    source: Option<String>,
    target: Option<String>,
    selector: Option<String>,
    epoch: Option<i64>,
}

impl AttachInfo {
    fn from_attach(a: &Attach) -> AttachInfo {
        let source = a.source.as_ref().and_then(|s| s.address.clone());
        let target = a.target.as_ref().and_then(|t| match t.as_ref() {
            TargetArchetype::Target(t) => t.address.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        });
        let selector = a
            .source
            .as_ref()
            .and_then(|s| s.filter.as_ref())
            .and_then(|f| {
                f.iter().find_map(|(_, v)| match v {
                    Value::Described(d) => match &d.value {
                        Value::String(s) => Some(s.clone()),
                        _ => None,
                    },
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                })
            });
        let epoch = a
            .properties
            .as_ref()
            .and_then(|p| p.iter().find(|(k, _)| k.as_str() == "com.microsoft:epoch"))
            .and_then(|(_, v)| match v {
                Value::Long(x) => Some(*x),
                Value::Int(x) => Some(i64::from(*x)),
                Value::Short(x) => Some(i64::from(*x)),
                Value::Ulong(x) => i64::try_from(*x).ok(),
                Value::Uint(x) => Some(i64::from(*x)),
                _ => None,
            });
        AttachInfo {
            name: a.name.clone(),
            source,
            target,
            selector,
            epoch,
        }
    }
}

/// Management nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Cbs,
    Management,
}

impl Node {
    fn of(address: Option<&str>) -> Option<Node> {
        let a = address?;
        if a == "$cbs" || a.ends_with("/$cbs") {
            Some(Node::Cbs)
        } else if a == "$management" || a.ends_with("/$management") {
            Some(Node::Management)
        } else {
            None
        }
    }
}

/// The reply links of a session, by their target address (the requests' `reply-to`).
#[derive(Default)]
struct Replies {
    next_id: u64,
    links: HashMap<String, (u64, Node, mpsc::Sender<Reply>)>,
}

type SharedReplies = Arc<Mutex<Replies>>;

impl Replies {
    fn route(&self, reply_to: Option<&str>, node: Node) -> Option<mpsc::Sender<Reply>> {
        if let Some((_, _, tx)) = reply_to.and_then(|r| self.links.get(r)) {
            return Some(tx.clone());
        }
        // No (known) reply-to: the only reply link of that node, if there is one.
        let mut of_node = self.links.values().filter(|(_, n, _)| *n == node);
        match (of_node.next(), of_node.next()) {
            (Some((_, _, tx)), None) => Some(tx.clone()),
            _ => None,
        }
    }
}

async fn session_task(mut session: ListenerSessionHandle, shared: Arc<Shared>, peer: SocketAddr) {
    let acceptor = LinkAcceptor::builder()
        .max_message_size(MAX_REQUEST_BYTES)
        .build();
    let replies: SharedReplies = Arc::default();
    while let Some(attach) = session.next_incoming_attach().await {
        let info = AttachInfo::from_attach(&attach);
        debug!(%peer, ?info, "attach");
        let link = match acceptor.accept_incoming_attach(attach, &mut session).await {
            Ok(link) => link,
            Err(e) => {
                warn!(%peer, link = %info.name, error = %e, "attach failed");
                continue;
            }
        };
        match link {
            LinkEndpoint::Sender(sender) => match Node::of(info.source.as_deref()) {
                Some(node) => {
                    let key = info.target.clone().unwrap_or_else(|| info.name.clone());
                    let (tx, rx) = mpsc::channel(16);
                    let id = {
                        let mut r = replies.lock().unwrap_or_else(|e| e.into_inner());
                        r.next_id += 1;
                        let id = r.next_id;
                        r.links.insert(key.clone(), (id, node, tx));
                        id
                    };
                    tokio::spawn(reply_task(sender, rx, replies.clone(), key, id));
                }
                None => {
                    tokio::spawn(partition_link(sender, info, shared.clone(), peer));
                }
            },
            LinkEndpoint::Receiver(receiver) => match Node::of(info.target.as_deref()) {
                Some(node) => {
                    tokio::spawn(request_task(
                        receiver,
                        node,
                        shared.clone(),
                        replies.clone(),
                    ));
                }
                None => {
                    let error = definitions::Error::new(
                        AmqpError::NotImplemented,
                        "devhub serves receivers only: sending events is not supported".to_string(),
                        None,
                    );
                    tokio::spawn(async move {
                        let _ =
                            tokio::time::timeout(DETACH_TIMEOUT, receiver.close_with_error(error))
                                .await;
                    });
                }
            },
        }
    }
    debug!(%peer, "session ended");
}

/// Serves requests to `$cbs` or `$management`; the answers go out on the reply link.
async fn request_task(
    mut receiver: Receiver,
    node: Node,
    shared: Arc<Shared>,
    replies: SharedReplies,
) {
    loop {
        let delivery: Delivery<Body<Value>> = match receiver.recv().await {
            Ok(d) => d,
            Err(RecvError::LinkStateError(e)) => {
                debug!(?node, error = %e, "request link ended");
                return;
            }
            Err(e) => {
                warn!(?node, error = %e, "bad request; closing the link");
                let error = definitions::Error::new(AmqpError::DecodeError, e.to_string(), None);
                let _ =
                    tokio::time::timeout(DETACH_TIMEOUT, receiver.close_with_error(error)).await;
                return;
            }
        };
        // The official client (fe2o3) registers a request as unsettled only after handing
        // its transfer to the session: an Accepted disposition that comes back sooner is
        // dropped and the client's `send` waits forever (seen on loopback about once in ten
        // management calls). A real namespace is a network round trip away; so is devhub.
        tokio::time::sleep(DISPOSITION_DELAY).await;
        if receiver.accept(&delivery).await.is_err() {
            return;
        }
        let request = delivery.message();
        let response = match node {
            Node::Cbs => mgmt::cbs(request, &shared.auth),
            Node::Management => mgmt::management(request, &shared.hub, &shared.auth),
        };
        let reply_to = request.properties.as_ref().and_then(|p| p.reply_to.clone());
        debug!(
            ?node,
            ?reply_to,
            status = ?response.application_properties.as_ref().and_then(|a| a.0.get("status-code")),
            "request answered"
        );
        let tx = replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .route(reply_to.as_deref(), node);
        match tx {
            Some(tx) => {
                if tx.send(response).await.is_err() {
                    debug!(?node, "reply link gone");
                }
            }
            None => warn!(?node, ?reply_to, "no reply link for a request; dropped"),
        }
        // `recv` answers a detach at once. The official client drops its `$cbs` links right
        // after the reply and ends the session without waiting for the answers; an answer that
        // overtakes its End makes it end the session with an error (and then drop the whole
        // connection). Waiting a moment lets the End come first: then nothing is answered.
        tokio::time::sleep(LINGER).await;
    }
}

/// Sends the replies of one reply link, pre-settled.
async fn reply_task(
    mut sender: Sender,
    mut rx: mpsc::Receiver<Reply>,
    replies: SharedReplies,
    key: String,
    id: u64,
) {
    let unregister = || {
        let mut r = replies.lock().unwrap_or_else(|e| e.into_inner());
        if r.links.get(&key).is_some_and(|(i, _, _)| *i == id) {
            r.links.remove(&key);
        }
    };
    loop {
        let reply = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => return,
            },
            e = sender.on_detach() => {
                unregister();
                // See the end of `request_task`.
                tokio::time::sleep(LINGER).await;
                return receiver::answer_detach(sender, e, &key).await;
            }
        };
        let sendable = Sendable::builder().message(reply).settled(true).build();
        if let Err(e) = sender.send_batchable(sendable).await {
            debug!(link = %key, error = %e, "reply link ended");
            unregister();
            return;
        }
        tracing::trace!(link = %key, "reply sent");
    }
}

/// `amqps://<ns>/<hub>/ConsumerGroups/<cg>/Partitions/<id>` (the scheme and host optional)
/// to (hub, consumer group, partition id).
fn parse_partition_address(address: &str) -> Option<(String, String, String)> {
    let path = match address.split_once("://") {
        Some((_, rest)) => rest.split_once('/')?.1,
        None => address.trim_start_matches('/'),
    };
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        [hub, cgs, cg, parts, id]
            if cgs.eq_ignore_ascii_case("ConsumerGroups")
                && parts.eq_ignore_ascii_case("Partitions") =>
        {
            Some((
                mgmt::percent_decode(hub),
                mgmt::percent_decode(cg),
                mgmt::percent_decode(id),
            ))
        }
        _ => None,
    }
}

/// Checks a receiver's address, filter and epoch, then runs it.
async fn partition_link(sender: Sender, info: AttachInfo, shared: Arc<Shared>, peer: SocketAddr) {
    let label = format!("{peer} {}", info.source.as_deref().unwrap_or("?"));
    let not_found = |what: String| definitions::Error::new(AmqpError::NotFound, what, None);
    let hub = &shared.hub;
    let Some((hub_name, cg, pid)) = info.source.as_deref().and_then(parse_partition_address) else {
        let what = format!(
            "devhub has no node '{}': receivers attach to <hub>/ConsumerGroups/<group>/Partitions/<id>",
            info.source.as_deref().unwrap_or("")
        );
        return receiver::close(sender, not_found(what), &label).await;
    };
    if !hub_name.eq_ignore_ascii_case(&hub.name) {
        let what = format!("The messaging entity '{hub_name}' could not be found");
        return receiver::close(sender, not_found(what), &label).await;
    }
    if !hub.has_consumer_group(&cg) {
        let what = format!(
            "The consumer group '{cg}' of '{}' could not be found",
            hub.name
        );
        return receiver::close(sender, not_found(what), &label).await;
    }
    let Some(index) = hub.partitions.iter().position(|p| p.id == pid) else {
        let what = format!("The partition '{pid}' of '{}' could not be found", hub.name);
        return receiver::close(sender, not_found(what), &label).await;
    };
    let filter = match info.selector.as_deref().map(StartFilter::parse) {
        None => StartFilter::Earliest,
        Some(Ok(f)) => f,
        Some(Err(why)) => {
            let error = definitions::Error::new(AmqpError::InvalidField, why, None);
            return receiver::close(sender, error, &label).await;
        }
    };
    let (ownership, stolen) = match shared.owners.register(&cg, &pid, &info.name, info.epoch) {
        Ok(o) => o,
        Err(why) => {
            info!(link = %label, %why, "receiver refused");
            let error = definitions::Error::new(definitions::LinkError::Stolen, why, None);
            return receiver::close(sender, error, &label).await;
        }
    };
    let start = match hub.partitions[index].resolve_start(&filter) {
        Ok(s) => s,
        Err(why) => {
            drop(ownership);
            let error = receiver::custom("com.microsoft:argument-out-of-range", why);
            return receiver::close(sender, error, &label).await;
        }
    };
    PartitionLink {
        sender,
        hub: hub.clone(),
        partition: index,
        start,
        detach_every: shared.detach_every,
        ownership,
        stolen,
        label,
    }
    .run()
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_addresses() {
        assert_eq!(
            parse_partition_address(
                "amqps://devhub.servicebus.windows.net/hub/ConsumerGroups/$Default/Partitions/3"
            ),
            Some(("hub".into(), "$Default".into(), "3".into()))
        );
        assert_eq!(
            parse_partition_address("hub/consumergroups/%24default/partitions/0"),
            Some(("hub".into(), "$default".into(), "0".into()))
        );
        assert_eq!(parse_partition_address("amqps://ns/hub/Partitions/0"), None);
        assert_eq!(parse_partition_address("$cbs"), None);
    }
}
