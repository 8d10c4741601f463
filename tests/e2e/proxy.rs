//! A fault-injecting HTTP proxy in front of a cluster's plain-HTTP API:
//! it cuts watches and log streams, answers watches with 410 Gone, and
//! fails or loses the answers of pod creations, as real networks and API
//! servers do.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// What to break.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Status codes to answer the first pod creations with.
    pub create_errors: Vec<u16>,
    /// How many pod creations reach the API but have their answer lost.
    pub lose_create_answers: usize,
    /// Cut every watch after this long.
    pub cut_watches_after: Option<Duration>,
    /// How many watches to answer with an expired-resource-version error.
    pub gone_watches: usize,
    /// Cut every followed log stream after this many bytes.
    pub cut_logs_after_bytes: Option<usize>,
    /// Hold every log request this long before passing it on.
    pub delay_logs: Option<Duration>,
}

#[derive(Default)]
struct Counters {
    creates_failed: AtomicUsize,
    gone_sent: AtomicUsize,
    watches_cut: AtomicUsize,
    logs_cut: AtomicUsize,
}

struct State {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    create_errors: Mutex<VecDeque<u16>>,
    lose_create_answers: AtomicUsize,
    gone_watches: AtomicUsize,
    faults: Faults,
    counters: Counters,
    /// The path and query of every pod watch asked for.
    pod_watches: Mutex<Vec<String>>,
}

/// A running proxy and a kubeconfig that points at it.
pub struct Proxy {
    /// A kubeconfig whose server is the proxy.
    pub kubeconfig: PathBuf,
    state: Arc<State>,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:8080`) on a free
    /// loopback port.
    pub fn start(upstream: &str, faults: Faults) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            create_errors: Mutex::new(faults.create_errors.iter().copied().collect()),
            lose_create_answers: AtomicUsize::new(faults.lose_create_answers),
            gone_watches: AtomicUsize::new(faults.gone_watches),
            faults,
            counters: Counters::default(),
            pod_watches: Mutex::new(Vec::new()),
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let serving = state.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: proxy\n  cluster: {{server: \"http://127.0.0.1:{port}\"}}\n\
                 users:\n- name: anyone\n  user: {{}}\ncontexts:\n- name: proxy\n  context: {{cluster: proxy, user: anyone, namespace: default}}\n\
                 current-context: proxy\n"
            ),
        )
        .unwrap();
        Proxy {
            kubeconfig,
            state,
            _dir: dir,
            _runtime: runtime,
        }
    }

    /// Pod creations answered with an error.
    pub fn creates_failed(&self) -> usize {
        self.state.counters.creates_failed.load(Ordering::SeqCst)
    }

    /// Watches answered with 410 Gone.
    pub fn gone_sent(&self) -> usize {
        self.state.counters.gone_sent.load(Ordering::SeqCst)
    }

    /// Watches cut.
    pub fn watches_cut(&self) -> usize {
        self.state.counters.watches_cut.load(Ordering::SeqCst)
    }

    /// The path and query of every pod watch asked for so far.
    pub fn pod_watches(&self) -> Vec<String> {
        self.state.pod_watches.lock().unwrap().clone()
    }

    /// Log streams cut.
    pub fn logs_cut(&self) -> usize {
        self.state.counters.logs_cut.load(Ordering::SeqCst)
    }
}

fn full(status: StatusCode, body: String) -> Response<Body> {
    let body = Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

fn status_json(code: u16, reason: &str, message: &str) -> String {
    serde_json::json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                       "message": message, "reason": reason, "code": code})
    .to_string()
}

fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let creates_pod = req.method() == hyper::Method::POST && req.uri().path().ends_with("/pods");
    let watch = path.contains("watch=true") || path.contains("watch=1");
    let reads_log = req.uri().path().ends_with("/log");
    let follows_log = reads_log && path.contains("follow=true");
    if watch && req.uri().path().ends_with("/pods") {
        state.pod_watches.lock().unwrap().push(path.clone());
    }

    if creates_pod {
        let code = state.create_errors.lock().unwrap().pop_front();
        if let Some(code) = code {
            state.counters.creates_failed.fetch_add(1, Ordering::SeqCst);
            let status = StatusCode::from_u16(code).unwrap();
            return Ok(full(
                status,
                status_json(code, "InjectedFault", "injected by the test proxy"),
            ));
        }
    }
    if watch && take_one(&state.gone_watches) {
        state.counters.gone_sent.fetch_add(1, Ordering::SeqCst);
        let event = serde_json::json!({"type": "ERROR", "object": serde_json::from_str::<serde_json::Value>(
            &status_json(410, "Expired", "too old resource version")).unwrap()});
        return Ok(full(StatusCode::OK, format!("{event}\n")));
    }

    if let (true, Some(delay)) = (reads_log, state.faults.delay_logs) {
        tokio::time::sleep(delay).await;
    }
    let response = match forward(&state, req).await {
        Ok(r) => r,
        Err(e) => {
            return Ok(full(
                StatusCode::BAD_GATEWAY,
                status_json(502, "ProxyError", &e),
            ));
        }
    };
    if creates_pod && take_one(&state.lose_create_answers) {
        // The pod exists now; the caller never hears of it.
        return Ok(full(
            StatusCode::GATEWAY_TIMEOUT,
            status_json(504, "Timeout", "the answer was lost"),
        ));
    }
    let (parts, body) = response.into_parts();
    let body: Body = match (
        watch,
        follows_log,
        state.faults.cut_watches_after,
        state.faults.cut_logs_after_bytes,
    ) {
        (true, _, Some(after), _) => cut_after_time(body, after, state.clone()),
        (_, true, _, Some(bytes)) => cut_after_bytes(body, bytes, state.clone()),
        _ => body.map_err(|e| Box::new(e) as _).boxed(),
    };
    Ok(Response::from_parts(parts, body))
}

async fn forward(state: &State, req: Request<Incoming>) -> Result<Response<Incoming>, String> {
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut upstream = Request::builder()
        .method(parts.method)
        .uri(format!("{}{path}", state.upstream));
    for (k, v) in &parts.headers {
        if k != hyper::header::HOST {
            upstream = upstream.header(k, v);
        }
    }
    let upstream = upstream.body(Full::new(bytes)).map_err(|e| e.to_string())?;
    state
        .client
        .request(upstream)
        .await
        .map_err(|e| e.to_string())
}

/// Passes the body through for `after`, then breaks the connection.
fn cut_after_time(body: Incoming, after: Duration, state: Arc<State>) -> Body {
    let deadline = tokio::time::Instant::now() + after;
    let stream = futures::stream::unfold(
        (BodyStream::new(body), false),
        move |(mut inner, done)| {
            let state = state.clone();
            async move {
                if done {
                    return None;
                }
                tokio::select! {
                    frame = inner.next() => frame.map(|f| (f.map_err(|e| Box::new(e) as _), (inner, false))),
                    _ = tokio::time::sleep_until(deadline) => {
                        state.counters.watches_cut.fetch_add(1, Ordering::SeqCst);
                        let cut: Box<dyn std::error::Error + Send + Sync> = "cut by the test proxy".into();
                        Some((Err(cut), (inner, true)))
                    }
                }
            }
        },
    );
    BodyExt::boxed(StreamBody::new(stream))
}

/// Passes `limit` bytes of the body through, then breaks the connection
/// (usually in the middle of a line).
fn cut_after_bytes(body: Incoming, limit: usize, state: Arc<State>) -> Body {
    enum Phase {
        Passing(usize),
        Cut,
        Done,
    }
    let stream = futures::stream::unfold(
        (BodyStream::new(body), Phase::Passing(0)),
        move |(mut inner, phase)| {
            let state = state.clone();
            async move {
                let sent = match phase {
                    Phase::Done => return None,
                    Phase::Cut => {
                        let cut: Box<dyn std::error::Error + Send + Sync> =
                            "cut by the test proxy".into();
                        return Some((Err(cut), (inner, Phase::Done)));
                    }
                    Phase::Passing(sent) => sent,
                };
                match inner.next().await? {
                    Ok(frame) => match frame.into_data() {
                        Ok(data) if sent + data.len() > limit => {
                            state.counters.logs_cut.fetch_add(1, Ordering::SeqCst);
                            Some((
                                Ok(Frame::data(data.slice(..limit - sent))),
                                (inner, Phase::Cut),
                            ))
                        }
                        Ok(data) => {
                            let n = data.len();
                            Some((Ok(Frame::data(data)), (inner, Phase::Passing(sent + n))))
                        }
                        Err(other) => Some((Ok(other), (inner, Phase::Passing(sent)))),
                    },
                    Err(e) => Some((Err(Box::new(e) as _), (inner, Phase::Done))),
                }
            }
        },
    );
    BodyExt::boxed(StreamBody::new(stream))
}
