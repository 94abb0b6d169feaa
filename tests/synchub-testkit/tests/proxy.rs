//! The fault proxy in front of a small upstream that counts what reaches it:
//! it forwards untouched, answers 429 with `Retry-After` and 503 in the
//! upstream's place (the upstream sees nothing), and loses the answer to a
//! write the upstream did carry out.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Router;
use synchub_testkit::conformance::Fault;
use synchub_testkit::proxy::FaultProxy;

async fn upstream() -> (String, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .fallback(|State(h): State<Arc<AtomicU64>>, body: String| async move {
            let n = h.fetch_add(1, Ordering::SeqCst) + 1;
            ([("x-upstream", "yes")], format!("{n}:{body}"))
        })
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, hits)
}

#[tokio::test]
async fn the_proxy_forwards_throttles_refuses_and_loses_answers() {
    let (url, hits) = upstream().await;
    let proxy = FaultProxy::spawn(&url).await.unwrap();
    let http = reqwest::Client::new();
    let post = |body: &'static str| {
        http.post(format!("{}/rpc?x=1", proxy.base_url))
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
    };

    let r = post("a").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-upstream"], "yes");
    assert_eq!(r.text().await.unwrap(), "1:a");

    proxy
        .inject(Fault::Throttle {
            retry_after: Duration::from_secs(2),
        })
        .unwrap();
    let r = post("b").await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "a 429 never reaches the upstream"
    );
    assert_eq!(post("c").await.unwrap().status(), 200, "one 429 only");

    proxy.inject(Fault::Down).unwrap();
    for _ in 0..3 {
        assert_eq!(post("d").await.unwrap().status(), 503);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    proxy.inject(Fault::Clear).unwrap();

    proxy.lose_next_matching("create");
    assert_eq!(post("search").await.unwrap().status(), 200);
    let r = post("create").await.unwrap();
    assert_eq!(r.status(), 502, "the answer is lost");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        4,
        "but the upstream carried it out"
    );
    assert_eq!(post("create").await.unwrap().status(), 200, "only once");

    assert_eq!(proxy.count_requests("create"), 2);
    let stats = proxy.stats();
    assert_eq!(
        (stats.forwarded, stats.throttled, stats.refused, stats.lost),
        (5, 1, 3, 1)
    );
    assert!(proxy.inject(Fault::ExpireToken).is_err());
}
