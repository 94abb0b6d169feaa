//! A loopback HTTP proxy that stands in front of a real server (or a
//! sandbox) and produces the faults of the conformance suite in its place:
//! a 429 with `Retry-After`, a server that is down (503), and a write that
//! is carried out by the server but whose answer is lost on the way back
//! (a 502 from the proxy after the upstream committed it).
//!
//! Everything else is forwarded unchanged, so the connector talks to the
//! real server through it; only the injected answers are the proxy's own.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::oneshot;

use crate::conformance::Fault;

/// Which request loses its answer.
#[derive(Debug, Clone)]
struct LoseNext {
    /// Text the request's path or body must contain (`""`: any write).
    needle: String,
}

#[derive(Debug, Default)]
struct ProxyState {
    throttle_next: Option<u64>,
    down: bool,
    lose_next: Option<LoseNext>,
    /// How long every answer is held back (a slow server).
    delay: Option<std::time::Duration>,
    forwarded: u64,
    throttled: u64,
    refused: u64,
    lost: u64,
    /// Every forwarded request: path and the start of its body.
    log: Vec<String>,
}

/// Counters of what the proxy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Requests passed to the upstream.
    pub forwarded: u64,
    /// 429s answered in its place.
    pub throttled: u64,
    /// 503s answered while down.
    pub refused: u64,
    /// Answers lost after the upstream handled the request.
    pub lost: u64,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    state: Mutex<ProxyState>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, ProxyState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running proxy.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`: configure the connector with this in place
    /// of the server's URL.
    pub base_url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("base_url", &self.base_url)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream`
    /// (`http://host:port`, no trailing slash needed).
    pub async fn spawn(upstream: &str) -> std::io::Result<FaultProxy> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            http,
            state: Mutex::new(ProxyState::default()),
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let app = Router::new().fallback(forward).with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(FaultProxy {
            base_url,
            shared,
            stop: Some(stop),
        })
    }

    /// Produces `fault` for the requests that follow. The proxy can throttle,
    /// be down and lose the answer to the next write (any request other
    /// than GET); token faults belong to the server and are refused here.
    pub fn inject(&self, fault: Fault) -> Result<(), String> {
        let mut st = self.shared.state();
        match fault {
            Fault::Throttle { retry_after } => {
                st.throttle_next = Some(retry_after.as_secs().max(1));
            }
            Fault::Down => st.down = true,
            Fault::LoseNextResponse => {
                st.lose_next = Some(LoseNext {
                    needle: String::new(),
                })
            }
            Fault::Clear => {
                st.throttle_next = None;
                st.down = false;
                st.lose_next = None;
            }
            Fault::ExpireToken | Fault::RevokeCredentials => {
                return Err(format!(
                    "{fault:?} is the server's to produce, not the proxy's"
                ))
            }
        }
        Ok(())
    }

    /// Loses the answer to the next write whose path or body contains
    /// `needle` (e.g. `"create"` for a JSON-RPC create among other calls).
    pub fn lose_next_matching(&self, needle: &str) {
        self.shared.state().lose_next = Some(LoseNext {
            needle: needle.to_string(),
        });
    }

    /// Holds every answer back by `delay` from now on: a server that
    /// serves its pages slowly.
    pub fn slow_down(&self, delay: std::time::Duration) {
        self.shared.state().delay = Some(delay);
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        let st = self.shared.state();
        ProxyStats {
            forwarded: st.forwarded,
            throttled: st.throttled,
            refused: st.refused,
            lost: st.lost,
        }
    }

    /// How many forwarded requests carried `needle` in their path or in
    /// the start of their body (e.g. a login method's name).
    pub fn count_requests(&self, needle: &str) -> usize {
        self.shared
            .state()
            .log
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Stops listening.
    pub fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Hop-by-hop headers a proxy does not pass on.
const HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "host",
    "content-length",
];

fn plain(status: StatusCode, body: &'static str) -> Response {
    (status, [("content-type", "text/plain")], body).into_response()
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (lose, delay) = {
        let mut st = shared.state();
        if let Some(secs) = st.throttle_next.take() {
            st.throttled += 1;
            let mut r = plain(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
            return r;
        }
        if st.down {
            st.refused += 1;
            return plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
        let path = uri.path_and_query().map_or("", |p| p.as_str());
        let hit = method != Method::GET
            && st.lose_next.as_ref().is_some_and(|l| {
                l.needle.is_empty()
                    || path.contains(&l.needle)
                    || String::from_utf8_lossy(&body).contains(&l.needle)
            });
        if hit {
            st.lose_next = None;
        }
        st.forwarded += 1;
        let head: String = String::from_utf8_lossy(&body).chars().take(512).collect();
        st.log.push(format!("{method} {path} {head}"));
        (hit, st.delay)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", shared.upstream);
    let mut req = shared.http.request(method, url).body(body.to_vec());
    for (name, value) in &headers {
        if !HOP.contains(&name.as_str()) {
            req = req.header(name, value);
        }
    }
    let answer = match req.send().await {
        Ok(a) => a,
        Err(_) => return plain(StatusCode::BAD_GATEWAY, "upstream unreachable"),
    };
    let status = answer.status();
    let mut out = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !HOP.contains(&name.as_str()) {
            if let Ok(n) = HeaderName::from_bytes(name.as_str().as_bytes()) {
                out.append(n, value.clone());
            }
        }
    }
    let bytes = match answer.bytes().await {
        Ok(b) => b,
        Err(_) => return plain(StatusCode::BAD_GATEWAY, "upstream answer cut"),
    };
    if lose {
        shared.state().lost += 1;
        return plain(StatusCode::BAD_GATEWAY, "the answer was lost");
    }
    let mut r = (status, bytes).into_response();
    *r.headers_mut() = out;
    r
}
