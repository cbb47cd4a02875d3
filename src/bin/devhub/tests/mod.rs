//! End-to-end tests: devhub in-process on 127.0.0.1:0, driven by the official
//! `azure_messaging_eventhubs` client. Every wait has a timeout; none sleeps to synchronise.

mod faults;
mod receive;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_messaging_eventhubs::models::ReceivedEventData;
use azure_messaging_eventhubs::{
    ConsumerClient, EventHubsError, EventReceiver, OpenReceiverOptions, RetryOptions,
    StartLocation, StartPosition,
};
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::mgmt::Auth;
use crate::server;
use crate::Config;

pub const HUB: &str = "hub";
pub const NAMESPACE: &str = "devhub.servicebus.windows.net";
/// A fake SAS connection string: the key is `c2VjcmV0`, the key name `k`.
pub const CONNECTION_STRING: &str =
    "Endpoint=sb://devhub.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0";
/// Bound on any single wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// A devhub serving in this process.
pub struct Devhub {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Devhub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn config(partitions: usize) -> Config {
    Config {
        hub: HUB.to_string(),
        partitions,
        consumer_groups: vec!["$Default".into(), "other".into()],
        detach_every: 0,
        publish_rate: None,
        enqueued_start_ms: Some(1_700_000_000_000),
        auth: Auth::AcceptAll,
    }
}

pub async fn start(config: Config, messages: Vec<Vec<u8>>) -> Devhub {
    // Logs of devhub and the client, when RUST_LOG asks for them.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = crate::start(config, messages);
    let task = tokio::spawn(server::serve(listener, shared));
    Devhub { addr, task }
}

/// Message bodies `{"records":[{"n":i, "pad":...}]}` of about `size` bytes.
pub fn bodies(count: usize, size: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let head = format!("{{\"records\":[{{\"n\":{i},\"pad\":\"");
            let pad = size.saturating_sub(head.len() + 4);
            let mut b = head.into_bytes();
            b.resize(b.len() + pad, b'x');
            b.extend_from_slice(b"\"}]}");
            b
        })
        .collect()
}

fn retry() -> RetryOptions {
    RetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(20),
        max_delay: azure_core::time::Duration::milliseconds(200),
        max_retries: 3,
        max_total_elapsed: azure_core::time::Duration::seconds(10),
    }
}

/// The official client on devhub, with a SAS connection string.
pub async fn consumer(d: &Devhub) -> ConsumerClient {
    consumer_with(d, CONNECTION_STRING, None).await.unwrap()
}

pub async fn consumer_with(
    d: &Devhub,
    connection_string: &str,
    consumer_group: Option<&str>,
) -> azure_messaging_eventhubs::Result<ConsumerClient> {
    let mut b = ConsumerClient::builder()
        .with_custom_endpoint(format!("amqp://{}", d.addr))
        .with_retry_options(retry());
    if let Some(cg) = consumer_group {
        b = b.with_consumer_group(cg.to_string());
    }
    tokio::time::timeout(
        WAIT,
        b.open_with_connection_string(connection_string, Some(HUB)),
    )
    .await
    .expect("open timed out")
}

/// A credential that hands out a fixed bearer token (the Entra path: token type `jwt`).
#[derive(Debug)]
pub struct FixedToken;

impl TokenCredential for FixedToken {
    fn get_token<'a, 'b, 'c, 'd, 'f>(
        &'a self,
        _scopes: &'b [&'c str],
        _options: Option<TokenRequestOptions<'d>>,
    ) -> Pin<Box<dyn Future<Output = azure_core::Result<AccessToken>> + Send + 'f>>
    where
        'a: 'f,
        'b: 'f,
        'c: 'f,
        'd: 'f,
        Self: 'f,
    {
        Box::pin(async {
            Ok(AccessToken::new(
                "devhub-test-token",
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        })
    }
}

pub async fn consumer_with_credential(d: &Devhub) -> ConsumerClient {
    let fut = ConsumerClient::builder()
        .with_custom_endpoint(format!("amqp://{}", d.addr))
        .with_retry_options(retry())
        .open(NAMESPACE, HUB.to_string(), Arc::new(FixedToken));
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("open timed out")
        .unwrap()
}

pub async fn receiver(
    c: &ConsumerClient,
    partition: &str,
    location: StartLocation,
    inclusive: bool,
    owner_level: Option<i64>,
) -> EventReceiver {
    let options = OpenReceiverOptions {
        start_position: Some(StartPosition {
            location,
            inclusive,
        }),
        owner_level,
        ..Default::default()
    };
    c.open_receiver_on_partition(partition.to_string(), Some(options))
        .await
        .unwrap()
}

/// The next `n` items of a receiver's stream (each within [`WAIT`]).
pub async fn take(r: &EventReceiver, n: usize) -> Vec<Result<ReceivedEventData, EventHubsError>> {
    let mut stream = std::pin::pin!(r.stream_events());
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(WAIT, stream.next()).await {
            Ok(Some(item)) => {
                let stop = item.is_err();
                out.push(item);
                if stop {
                    break;
                }
            }
            Ok(None) => break,
            Err(_) => panic!("no event within {WAIT:?} after {} events", out.len()),
        }
    }
    out
}

/// The next `n` events, which must all arrive.
pub async fn events(r: &EventReceiver, n: usize) -> Vec<ReceivedEventData> {
    take(r, n)
        .await
        .into_iter()
        .map(|e| e.expect("a stream error"))
        .collect()
}

pub fn seqs(evs: &[ReceivedEventData]) -> Vec<i64> {
    evs.iter().map(|e| e.sequence_number().unwrap()).collect()
}

/// Closes a client whose connection saw errors: the client's own teardown may then report an
/// error (a refused token leaves it in a state its close does not expect), but must not hang.
pub async fn close_after_errors(c: ConsumerClient) {
    let _ = tokio::time::timeout(WAIT, c.close())
        .await
        .expect("close hung");
}

pub async fn close(c: ConsumerClient) {
    tokio::time::timeout(WAIT, c.close())
        .await
        .expect("close hung")
        .unwrap();
}
