//! A loopback HTTP/1.1 proxy in front of the real Glance that breaks requests on demand: the
//! failures a cloud shows in production (5xx, resets, slow answers, answers lost after Glance
//! acted, a restart) without mocking Glance itself. Every request that is forwarded meets the
//! real service, so what glint does afterwards is checked against real state.
//!
//! Bodies are streamed both ways: an upload passes through without being held in memory, and
//! can be broken inside, in either direction ([`super::fault_bodies`]). The proxy is plain
//! HTTP/1.1, so it stands as well in front of Keystone or a source's web server.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::fault_bodies::{BoxError, Break, Breaking};

/// What happens to a request that a rule matches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Answer with this status (and a Glance-like JSON error) without forwarding.
    Status(u16),
    /// Answer with this status and these words, as Glance words its refusal, without
    /// forwarding: what a real Glance says in a state the bed cannot reach (a full store).
    GlanceSays(u16, &'static str),
    /// Close the connection without answering; Glance never sees the request.
    Drop,
    /// Wait this long, then forward.
    Delay(Duration),
    /// Forward, so Glance acts on the request, then close the connection instead of answering.
    LoseAnswer,
    /// Forward, so Glance acts on the request, then answer this status instead of Glance's: what
    /// the loser of two overlapping requests sees (Glance refuses a second delete with 400).
    ActThenRefuse(u16),
    /// Answer a delete as a Glance on an rbd (Ceph) store does while clones of the image exist
    /// (volumes, ephemeral disks): 409, with the words glance/api/v2/images.py wraps around
    /// glance_store's InUseByStore. Glance changes nothing in that case, so neither does this.
    InUseByStore,
    /// Forward, but break the connection after this many bytes of the request's body: an
    /// upload reset on its way (both sides see the connection go).
    CutBodyAfter(u64),
    /// Forward, but after this many bytes of the request's body take nothing more for the
    /// time given (Glance, or a load balancer, gone silent mid-body), then break both sides.
    StallBodyAfter(u64, Duration),
    /// Take the whole request body, forward nothing, answer this status: a load balancer whose
    /// backend failed while the upload came in. Glance never sees the request.
    SwallowThen(u16),
    /// Forward, but break the answer's body after this many bytes: a download that ends early.
    CutAnswerAfter(u64),
    /// Forward, but after this many bytes of the answer's body send nothing more for the time
    /// given, then break the connection: a source gone silent.
    StallAnswerAfter(u64, Duration),
}

impl Fault {
    /// The fault's kind, for counts: `Status(503)` -> "Status".
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Status(_) => "Status",
            Self::GlanceSays(..) => "GlanceSays",
            Self::Drop => "Drop",
            Self::Delay(_) => "Delay",
            Self::LoseAnswer => "LoseAnswer",
            Self::ActThenRefuse(_) => "ActThenRefuse",
            Self::InUseByStore => "InUseByStore",
            Self::CutBodyAfter(_) => "CutBodyAfter",
            Self::StallBodyAfter(..) => "StallBodyAfter",
            Self::SwallowThen(_) => "SwallowThen",
            Self::CutAnswerAfter(_) => "CutAnswerAfter",
            Self::StallAnswerAfter(..) => "StallAnswerAfter",
        }
    }
}

/// Which requests a rule applies to: a method and a path kind (see [`path_kind`]), e.g.
/// `Route::new("PATCH", "/v2/images/*")`; the kind `*` matches every path.
#[derive(Debug, Clone)]
pub struct Route {
    method: Method,
    kind: String,
}

impl Route {
    pub fn new(method: &str, kind: &str) -> Self {
        let method = method.parse().expect("an HTTP method");
        Self {
            method,
            kind: kind.to_string(),
        }
    }
}

/// `/v2/images/6f1c.../members/abc` -> `/v2/images/*/members/*`: ids become `*`, so counts
/// and rules speak of kinds of calls.
pub fn path_kind(path: &str) -> String {
    let mut previous = "";
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let after_collection = matches!(previous, "images" | "members" | "tags");
            previous = if after_collection { "*" } else { segment };
            previous
        })
        .collect();
    segments.join("/")
}

impl Route {
    fn matches(&self, method: &Method, kind: &str) -> bool {
        self.method == method && (self.kind == "*" || self.kind == kind)
    }
}

struct Rule {
    route: Route,
    fault: Fault,
    remaining: u32,
}

/// Faults drawn at random: each request on `route` meets one of `faults` with probability
/// `1 / one_in`.
struct RandomRule {
    route: Route,
    faults: Vec<Fault>,
    one_in: u32,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    random: Vec<RandomRule>,
    /// xorshift64 state of the random draws; fixed seed, so a run can be repeated.
    seed: u64,
    down_until: Option<Instant>,
    /// Requests that reached the proxy, by (method, path kind).
    seen: HashMap<(String, String), u64>,
    /// Requests that Glance answered, by (method, path kind) and Glance's status.
    answered: HashMap<(String, String, u16), u64>,
    injected: u64,
    /// Faults met, by fault kind and route (method, path kind).
    injected_by: HashMap<(&'static str, String, String), u64>,
}

impl State {
    /// When the outage under way ends, if one is.
    fn down_until(&self) -> Option<Instant> {
        self.down_until.filter(|until| Instant::now() < *until)
    }

    /// The fault for this request, if any; a rule is used up one request at a time.
    fn fault_for(&mut self, method: &Method, kind: &str) -> Option<Fault> {
        *self
            .seen
            .entry((method.to_string(), kind.to_string()))
            .or_default() += 1;
        let fault = if self.down_until().is_some() {
            Some(Fault::Drop)
        } else if let Some(rule) = self
            .rules
            .iter_mut()
            .find(|rule| rule.remaining > 0 && rule.route.matches(method, kind))
        {
            rule.remaining -= 1;
            Some(rule.fault)
        } else {
            self.draw(method, kind)
        }?;
        self.injected += 1;
        *self
            .injected_by
            .entry((fault.kind(), method.to_string(), kind.to_string()))
            .or_default() += 1;
        Some(fault)
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.seed.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed = x;
        x
    }

    fn draw(&mut self, method: &Method, kind: &str) -> Option<Fault> {
        let index = self
            .random
            .iter()
            .position(|rule| rule.route.matches(method, kind))?;
        let (one_in, count) = (self.random[index].one_in, self.random[index].faults.len());
        if count == 0 || !self.next_random().is_multiple_of(u64::from(one_in.max(1))) {
            return None;
        }
        let pick = usize::try_from(self.next_random() % count as u64).unwrap_or(0);
        Some(self.random[index].faults[pick])
    }
}

/// The proxy and the handle that steers it. Dropping it stops accepting connections.
pub struct FaultProxy {
    url: String,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ProxyBody = BoxBody<Bytes, BoxError>;

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State::default()));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(accept_loop(listener, upstream, state.clone(), wake.clone()));
        Self {
            url: format!("http://{address}"),
            state,
            wake,
            task,
        }
    }

    /// Where clients should connect instead of Glance.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The next `times` requests matching `route` meet `fault`. Rules apply in the order they
    /// were added; the first with uses left wins.
    pub fn inject(&self, route: Route, fault: Fault, times: u32) {
        self.state().rules.push(Rule {
            route,
            fault,
            remaining: times,
        });
    }

    /// From now on each request on `route` meets one of `faults`, drawn at random, with
    /// probability `1 / one_in` (after the counted rules of [`Self::inject`]). The draws
    /// follow a fixed seed ([`Self::seed`]), so a run can be repeated.
    pub fn inject_at_random(&self, route: Route, faults: Vec<Fault>, one_in: u32) {
        self.state().random.push(RandomRule {
            route,
            faults,
            one_in,
        });
    }

    /// Seeds the random draws.
    pub fn seed(&self, seed: u64) {
        self.state().seed = seed;
    }

    /// Removes every rule, counted and random; requests pass untouched from now on.
    pub fn clear(&self) {
        let mut state = self.state();
        state.rules.clear();
        state.random.clear();
    }

    /// Glance "restarts": for `period` connections are refused and requests on connections
    /// already open are dropped; then everything works again.
    pub fn outage(&self, period: Duration) {
        self.state().down_until = Some(Instant::now() + period);
        self.wake.notify_one();
    }

    /// Ends the outage under way now, whatever its period.
    pub fn end_outage(&self) {
        self.state().down_until = None;
        self.wake.notify_one();
    }

    /// Requests on `route` that reached the proxy.
    pub fn seen(&self, route: &Route) -> u64 {
        let key = (route.method.to_string(), route.kind.clone());
        self.state().seen.get(&key).copied().unwrap_or(0)
    }

    /// Requests on `route` that Glance received and answered.
    pub fn forwarded(&self, route: &Route) -> u64 {
        let state = self.state();
        let method = route.method.as_str();
        let matching = state
            .answered
            .iter()
            .filter(|((m, k, _), _)| m == method && *k == route.kind);
        matching.map(|(_, count)| count).sum()
    }

    /// Requests on `route` that Glance answered with `status`.
    pub fn answered(&self, route: &Route, status: u16) -> u64 {
        let key = (route.method.to_string(), route.kind.clone(), status);
        self.state().answered.get(&key).copied().unwrap_or(0)
    }

    /// Requests that met a fault (outage drops included).
    pub fn injected(&self) -> u64 {
        self.state().injected
    }

    /// Faults met, by fault kind, method and path kind (outage drops included).
    pub fn injected_by(&self) -> Vec<((&'static str, String, String), u64)> {
        let mut counts: Vec<_> = self.state().injected_by.clone().into_iter().collect();
        counts.sort();
        counts
    }

    /// Every count, for the test's log.
    pub fn summary(&self) -> String {
        let state = self.state();
        let mut answered: Vec<_> = state.answered.iter().collect();
        answered.sort();
        format!(
            "faults injected: {}; Glance answered: {answered:?}",
            state.injected
        )
    }
}

async fn accept_loop(
    mut listener: TcpListener,
    upstream: String,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
) {
    let address = listener.local_addr().expect("local address");
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = wake.notified() => {
                if down_until(&state).is_some() {
                    // A stopped service has no listening socket: clients get "connection
                    // refused", as from a Glance being restarted.
                    drop(listener);
                    while let Some(until) = down_until(&state) {
                        tokio::select! {
                            () = tokio::time::sleep_until(until.into()) => {}
                            () = wake.notified() => {}
                        }
                    }
                    listener = rebind(address).await;
                }
                continue;
            }
        };
        let Ok((stream, _)) = accepted else { continue };
        let state = state.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                handle(state.clone(), upstream.clone(), request)
            });
            // Errors here are the drops this proxy makes on purpose, or clients going away.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn down_until(state: &Mutex<State>) -> Option<Instant> {
    lock(state).down_until()
}

/// Listens on the same port again, as a restarted Glance does.
async fn rebind(address: std::net::SocketAddr) -> TcpListener {
    for _ in 0..100 {
        if let Ok(listener) = TcpListener::bind(address).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("could not listen on {address} again after the outage");
}

async fn handle(
    state: Arc<Mutex<State>>,
    upstream: String,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, std::io::Error> {
    // hyper closes the connection without an answer when the service fails.
    let dropped = || std::io::Error::other("connection dropped by the fault proxy");
    let method = request.method().clone();
    let kind = path_kind(request.uri().path());
    let fault = lock(&state).fault_for(&method, &kind);
    match fault {
        Some(Fault::Drop) => return Err(dropped()),
        Some(Fault::Status(code)) => return Ok(error_answer(code, "injected by the fault proxy")),
        Some(Fault::GlanceSays(code, words)) => {
            // Glance reads the upload it refuses (a client still writing would otherwise meet
            // a closed connection before the answer, which is another fault).
            if request.into_body().collect().await.is_err() {
                return Err(dropped());
            }
            return Ok(glance_answer(code, words));
        }
        Some(Fault::InUseByStore) => {
            let id = request.uri().path().rsplit('/').next().unwrap_or_default();
            return Ok(glance_answer(
                409,
                &format!(
                    "Image {id} could not be deleted because it is in use: The image cannot be deleted because it is in use through the backend store outside of Glance."
                ),
            ));
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::SwallowThen(code)) => {
            if request.into_body().collect().await.is_err() {
                return Err(dropped());
            }
            return Ok(error_answer(
                code,
                "the upstream failed (injected by the fault proxy)",
            ));
        }
        _ => {}
    }
    let tripped = Arc::new(AtomicBool::new(false));
    let body_break = match fault {
        Some(Fault::CutBodyAfter(after)) => Some((after, Break::Cut)),
        Some(Fault::StallBodyAfter(after, hold)) => Some((after, Break::Stall(hold))),
        _ => None,
    };
    let request = request.map(|body| match body_break {
        Some((after, mode)) => Breaking::new(body, after, mode, tripped.clone()).boxed(),
        None => body.map_err(BoxError::from).boxed(),
    });
    let answer = match forward(&upstream, request).await {
        Ok(answer) => answer,
        // The upload broken on purpose breaks the client's connection too.
        Err(_) if tripped.load(std::sync::atomic::Ordering::Relaxed) => return Err(dropped()),
        Err(err) => return Ok(error_answer(502, &format!("upstream: {err}"))),
    };
    let key = (method.to_string(), kind, answer.status().as_u16());
    *lock(&state).answered.entry(key).or_default() += 1;
    if fault == Some(Fault::LoseAnswer) {
        // Read Glance's whole answer first, so its work is surely done before the drop.
        let _ = answer.into_body().collect().await;
        return Err(dropped());
    }
    if let Some(Fault::ActThenRefuse(code)) = fault {
        let _ = answer.into_body().collect().await;
        return Ok(error_answer(
            code,
            "refused after acting, by the fault proxy",
        ));
    }
    let answer_break = match fault {
        Some(Fault::CutAnswerAfter(after)) => Some((after, Break::Cut)),
        Some(Fault::StallAnswerAfter(after, hold)) => Some((after, Break::Stall(hold))),
        _ => None,
    };
    Ok(answer.map(|body| match answer_break {
        Some((after, mode)) => Breaking::new(body, after, mode, tripped).boxed(),
        None => body.map_err(BoxError::from).boxed(),
    }))
}

/// One upstream connection per request: simple, and a fault never leaves a half-used
/// connection to Glance behind.
async fn forward(
    upstream: &str,
    mut request: Request<ProxyBody>,
) -> Result<Response<Incoming>, BoxError> {
    let stream = TcpStream::connect(upstream).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    request
        .headers_mut()
        .insert(header::HOST, upstream.parse()?);
    Ok(sender.send_request(request).await?)
}

/// An error the way Glance words one: JSON with the HTML-ish message and a request id.
fn error_answer(code: u16, detail: &str) -> Response<ProxyBody> {
    let title = StatusCode::from_u16(code)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("Error");
    glance_answer(code, &format!("{title}: {detail}"))
}

/// An error answer shaped as Glance (webob) writes one.
fn glance_answer(code: u16, message: &str) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = status.canonical_reason().unwrap_or("Error");
    let body = serde_json::json!({
        "code": format!("{code} {title}"),
        "title": title,
        "message": format!("{message}<br /><br />\n\n\n"),
    });
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-openstack-request-id", format!("req-fault-{code}"))
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never: Infallible| match never {})
                .boxed(),
        )
        .expect("a valid response")
}
