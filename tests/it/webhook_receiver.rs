//! A minimal webhook receiver for tests: a std `TcpListener` on 127.0.0.1:0 and a thread per
//! connection speaking just enough HTTP/1.1 (request line, headers, a `Content-Length` body,
//! keep-alive). It records every request and answers a configurable status.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};
use signin_radar::alert::{webhook, Alert, AlertConfig, AlertState, Dispatcher};
use tokio_util::sync::CancellationToken;

use crate::alertmanager::poll;

/// One request as received.
#[derive(Clone, Debug)]
pub struct ReceivedRequest {
    pub method: String,
    /// The request target, e.g. `/hooks/a?x=1`.
    pub path: String,
    /// Names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status the receiver answered.
    pub answered: u16,
}

impl ReceivedRequest {
    /// The first header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, or a panic that shows it.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

struct Inner {
    requests: Mutex<Vec<ReceivedRequest>>,
    status: AtomicU16,
    stop: AtomicBool,
}

/// A running receiver; stopped when dropped.
pub struct WebhookReceiver {
    addr: SocketAddr,
    inner: Arc<Inner>,
    accept: Option<JoinHandle<()>>,
}

/// Largest request accepted (head plus body).
const MAX_REQUEST: usize = 16 << 20;

impl WebhookReceiver {
    /// Listens on 127.0.0.1 on a free port; answers 200 until told otherwise.
    pub fn start() -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let inner = Arc::new(Inner {
            requests: Mutex::new(Vec::new()),
            status: AtomicU16::new(200),
            stop: AtomicBool::new(false),
        });
        let shared = inner.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(conn) = conn {
                    let shared = shared.clone();
                    std::thread::spawn(move || serve(conn, &shared));
                }
            }
        });
        WebhookReceiver {
            addr,
            inner,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The status answered from now on.
    pub fn set_status(&self, status: u16) {
        self.inner.status.store(status, Ordering::SeqCst);
    }

    /// Every request so far, in the order received.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Requests answered 2xx so far.
    pub fn delivered(&self) -> Vec<ReceivedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    /// Waits (polling) until `pred` holds for the requests so far; returns them.
    pub fn wait_until(
        &self,
        what: &str,
        pred: impl Fn(&[ReceivedRequest]) -> bool,
    ) -> Vec<ReceivedRequest> {
        poll(what, || {
            let r = self.requests();
            if pred(&r) {
                Ok(r)
            } else {
                Err(format!("{} requests: {:?}", r.len(), summary(&r)))
            }
        })
    }
}

fn summary(r: &[ReceivedRequest]) -> Vec<String> {
    r.iter()
        .map(|q| format!("{} {} -> {}", q.method, q.path, q.answered))
        .collect()
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Serves requests on one connection until it closes, fails, or the receiver stops.
fn serve(mut conn: TcpStream, inner: &Inner) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // The head.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !fill(&mut conn, &mut buf, inner) {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default().to_string();
        let path = first.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        if header("transfer-encoding").is_some() {
            respond(&mut conn, 411, "send a Content-Length body", true);
            return;
        }
        let len: usize = match header("content-length").map(|v| v.parse()) {
            None => 0,
            Some(Ok(n)) if head_end + n <= MAX_REQUEST => n,
            _ => {
                respond(&mut conn, 400, "bad or too large Content-Length", true);
                return;
            }
        };
        while buf.len() < head_end + len {
            if !fill(&mut conn, &mut buf, inner) {
                return;
            }
        }
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        let status = inner.status.load(Ordering::SeqCst);
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        inner.requests.lock().unwrap().push(ReceivedRequest {
            method,
            path,
            headers,
            body,
            answered: status,
        });
        if !respond(&mut conn, status, "recorded by the test receiver", close) || close {
            return;
        }
    }
}

/// Reads more into `buf`; false on EOF, error, or stop.
fn fill(conn: &mut TcpStream, buf: &mut Vec<u8>, inner: &Inner) -> bool {
    let mut chunk = [0u8; 8192];
    loop {
        if inner.stop.load(Ordering::SeqCst) || buf.len() > MAX_REQUEST {
            return false;
        }
        match conn.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return true;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

fn respond(conn: &mut TcpStream, status: u16, text: &str, close: bool) -> bool {
    let body = format!("{text}\n");
    let msg = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
        reason(status),
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    conn.write_all(msg.as_bytes()).is_ok()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        411 => "Length Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

fn alert(state: AlertState) -> Alert {
    Alert {
        key: "legacy_spray/203.0.113.9/1767225600000000000".into(),
        alertname: "LegacyAuthPasswordSpray".into(),
        state,
        labels: BTreeMap::from([("severity".to_string(), "critical".to_string())]),
        annotations: BTreeMap::from([("summary".to_string(), "Password spray".to_string())]),
        starts_at: 1_767_225_600_000_000_000,
        ends_at: match state {
            AlertState::Firing => None,
            AlertState::Resolved => Some(1_767_229_200_000_000_000),
        },
        generator_url: "http://signin-radar.test/api/v1/report".into(),
        detail: json!({"ip": "203.0.113.9", "users": 41}),
        observed_ns: 0,
    }
}

/// A receiver checking the signature as documented: HMAC-SHA256 over the raw body, hex, after
/// `sha256=`; plus the delivery id, stable across retries of one notification.
#[test]
fn alert_webhook_signature_and_delivery_id_as_documented() {
    let rx = WebhookReceiver::start();
    rx.set_status(503);
    let secret = "s3cret-shared-with-the-receiver";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let d = Dispatcher::start(
        AlertConfig {
            webhook_urls: vec![rx.url("/hooks/signin-radar")],
            webhook_secret: Some(secret.into()),
            retry_min: Duration::from_millis(10),
            retry_max: Duration::from_millis(100),
            ..AlertConfig::default()
        },
        &prometheus::Registry::new(),
        rt.handle(),
        CancellationToken::new(),
    )
    .unwrap();
    d.submit(alert(AlertState::Firing));
    rx.wait_until("two refused attempts", |r| r.len() >= 2);
    rx.set_status(200);
    d.submit(alert(AlertState::Resolved));
    let reqs = rx.wait_until("firing and resolved delivered", |r| {
        r.iter().filter(|q| q.answered == 200).count() == 2
    });
    assert!(d.flush_wait(Duration::from_secs(30)));

    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hooks/signin-radar");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let sig = r.header("x-signin-radar-signature").expect("signed");
        // As a receiver in another language would: HMAC-SHA256(secret, raw body), hex.
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&r.body);
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(sig, want);
        assert!(webhook::verify_signature(secret.as_bytes(), &r.body, sig));
        assert!(!webhook::verify_signature(b"another secret", &r.body, sig));
    }
    let firing: Vec<&ReceivedRequest> = reqs
        .iter()
        .filter(|r| r.json()["status"] == "firing")
        .collect();
    assert!(firing.len() >= 3, "refused twice, then delivered");
    let id = firing[0].header("x-signin-radar-delivery").unwrap();
    assert!(
        firing
            .iter()
            .all(|r| r.header("x-signin-radar-delivery") == Some(id) && r.body == firing[0].body),
        "retries carry the same id and body"
    );
    let last = reqs.last().unwrap();
    let body = last.json();
    assert_eq!(body["version"], "signin-radar.alert.v1");
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["key"], "legacy_spray/203.0.113.9/1767225600000000000");
    assert_eq!(body["startsAt"], "2026-01-01T00:00:00Z");
    assert_eq!(body["endsAt"], "2026-01-01T01:00:00Z");
    assert_eq!(body["finding"], json!({"ip": "203.0.113.9", "users": 41}));
    assert_ne!(last.header("x-signin-radar-delivery"), Some(id));
    rt.block_on(d.shutdown(Duration::from_secs(5)));
}
