//! Throttling and errors in 200 bodies, against a scripted HTTP peer (the
//! real Odoo here never throttles): a 429 with `Retry-After` is waited out
//! and retried; an `AccessDenied` envelope in an HTTP 200 answer to a read
//! is an auth error naming the host, not a retry loop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use synchub_core::{Connector, ConnectorError, ObjectKind};
use synchub_http::Deps;
use synchub_odoo::{OdooConfig, OdooConnector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves JSON-RPC: the first `throttle` requests get 429 + Retry-After: 1;
/// then `version`, `authenticate` and `execute_kw` answers as Odoo 11 does,
/// with `execute_kw` answering `denied` when set.
async fn peer(throttle: usize, denied: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                buf.extend_from_slice(&chunk[..n]);
                                continue;
                            }
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + 4 + len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Value =
                        serde_json::from_slice(&buf[head_end + 4..head_end + 4 + len])
                            .unwrap_or(Value::Null);
                    buf.drain(..head_end + 4 + len);
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let method = body["params"]["method"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let (status, extra, answer) = if n < throttle {
                        (
                            "429 Too Many Requests",
                            "Retry-After: 1\r\n",
                            String::from("{}"),
                        )
                    } else {
                        let result = match method.as_str() {
                            "version" => {
                                json!({"jsonrpc":"2.0","id":body["id"],"result":{"server_version":"11.0","server_version_info":[11,0,0,"final",0,""]}})
                            }
                            "authenticate" => json!({"jsonrpc":"2.0","id":body["id"],"result":2}),
                            _ if denied => {
                                json!({"jsonrpc":"2.0","id":body["id"],"error":{"code":200,"message":"Odoo Server Error",
                                "data":{"name":"odoo.exceptions.AccessDenied","message":"Access denied","arguments":[],"debug":"Traceback"}}})
                            }
                            _ => json!({"jsonrpc":"2.0","id":body["id"],"result":7}),
                        };
                        ("200 OK", "", result.to_string())
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), hits)
}

fn connector(url: &str) -> OdooConnector {
    let cfg: OdooConfig = serde_json::from_value(json!({
        "url": url, "database": "odoo", "login": "bot@example.com.tw", "api_key": "k-123",
    }))
    .unwrap();
    OdooConnector::new(cfg, &Deps::new("erp", ".")).unwrap()
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_and_retried() {
    let (url, hits) = peer(1, false).await;
    let c = connector(&url);
    let t = Instant::now();
    assert_eq!(c.estimate(ObjectKind::Contact).await, Some(7));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured: {:?}",
        t.elapsed()
    );
    // 429, version, authenticate, search_count.
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn access_denied_in_a_200_body_is_an_auth_error() {
    let (url, hits) = peer(0, true).await;
    let c = connector(&url);
    let e = c.pull(ObjectKind::Contact, None).await.expect_err("denied");
    assert!(matches!(e, ConnectorError::Auth { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("Access denied") && text.contains("127.0.0.1"),
        "{text}"
    );
    assert!(!text.contains("k-123"), "{text}");
    // Not retried: version, authenticate, one search_read.
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}
