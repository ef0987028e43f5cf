//! What glint tells operators about itself: Prometheus metrics, and the `/metrics`,
//! `/healthz` and `/readyz` endpoints.
//!
//! - [`Metrics`]: the controller's metrics (reconciles, Kubernetes writes, transfers, Images by
//!   condition reason, leadership), one registry per controller.
//! - [`glance_metrics`]: Glance requests by operation and status code. The Glance client is
//!   shared by the controller and the CLI and is built in many places, so its counters are
//!   process-wide rather than threaded through every constructor.
//! - [`KubeWrites`]: a tower layer on the Kubernetes client that counts every write, so no
//!   write can go uncounted.
//! - [`Health`] and [`serve`]: readiness means the leader state is known and, on the leader,
//!   the watch caches have synced.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::reason::Reason;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    verb: &'static str,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeriesLabels {
    namespace: String,
    name: String,
}

impl SeriesLabels {
    fn of(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// Per ImageSeries: the versions it keeps, and when it last read its releases.
#[derive(Clone, Default)]
pub struct SeriesMetrics {
    versions: Family<SeriesLabels, Gauge>,
    last_check: Family<SeriesLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl SeriesMetrics {
    /// What one reconcile of the series `namespace/name` found.
    pub fn record(&self, namespace: &str, name: &str, versions: usize, last_check: Option<f64>) {
        let labels = SeriesLabels::of(namespace, name);
        self.versions
            .get_or_create(&labels)
            .set(i64::try_from(versions).unwrap_or(i64::MAX));
        if let Some(at) = last_check {
            self.last_check.get_or_create(&labels).set(at);
        }
    }

    /// The series is gone: its series end.
    pub fn forget(&self, namespace: &str, name: &str) {
        let labels = SeriesLabels::of(namespace, name);
        self.versions.remove(&labels);
        self.last_check.remove(&labels);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    ready: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GlanceLabels {
    operation: &'static str,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Reconcile results as the `result` label says them.
pub mod results {
    pub const OK: &str = "ok";
    pub const ERROR: &str = "error";
    pub const PANIC: &str = "panic";
}

fn latency_histogram() -> Histogram {
    // 5 ms .. about 40 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

fn transfer_histogram() -> Histogram {
    // 1 s .. about 4.5 h.
    Histogram::new(exponential_buckets(1.0, 2.0, 15))
}

/// Glance requests, counted by the Glance client for the whole process.
#[derive(Clone)]
pub struct GlanceMetrics {
    requests: Family<GlanceLabels, Counter>,
    duration: HistogramFamily<OperationLabels>,
}

impl GlanceMetrics {
    /// One answered request (`code` is the HTTP status) or one that got no answer (`None`).
    pub fn observe(&self, operation: &'static str, code: Option<u16>, took: Duration) {
        let code = code.map_or_else(|| "none".to_string(), |code| code.to_string());
        self.requests
            .get_or_create(&GlanceLabels { operation, code })
            .inc();
        self.duration
            .get_or_create(&OperationLabels { operation })
            .observe(took.as_secs_f64());
    }
}

static GLANCE: LazyLock<GlanceMetrics> = LazyLock::new(|| GlanceMetrics {
    requests: Family::default(),
    duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
});

/// The process's Glance request metrics.
pub fn glance_metrics() -> &'static GlanceMetrics {
    &GLANCE
}

/// Transfer metrics, recorded by the transfer tasks.
#[derive(Clone)]
pub struct TransferMetrics {
    pub bytes: Counter,
    pub active: Gauge,
    pub queued: Gauge,
    duration: Histogram,
    ended: Family<TransferEndLabels, Counter>,
    /// Transfer ends that woke the object waiting on them.
    pub wakeups: Counter,
    /// The cloud (clouds.yaml's name) and region these transfers go to: an object's targets
    /// are told apart by them.
    place: (Arc<str>, Arc<str>),
}

/// How a transfer ended: `result` succeeded or failed, and for a failure its condition reason
/// (a fixed set, so the series stay few); `cloud` and `region` where it went (as many as the
/// clouds glint publishes to).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransferEndLabels {
    result: &'static str,
    reason: &'static str,
    cloud: Arc<str>,
    region: Arc<str>,
}

impl Default for TransferMetrics {
    fn default() -> Self {
        Self {
            bytes: Counter::default(),
            active: Gauge::default(),
            queued: Gauge::default(),
            duration: transfer_histogram(),
            ended: Family::default(),
            wakeups: Counter::default(),
            place: (Arc::from(""), Arc::from("")),
        }
    }
}

impl TransferMetrics {
    /// The same metrics, for transfers into `cloud` (and `region`, when one overrides the
    /// cloud's own).
    pub fn into_cloud(&self, cloud: &str, region: Option<&str>) -> Self {
        Self {
            place: (Arc::from(cloud), Arc::from(region.unwrap_or_default())),
            ..self.clone()
        }
    }

    /// One transfer ended after `took`: succeeded, or failed with `failure_reason`.
    pub fn finished(&self, took: Duration, failure_reason: Option<Reason>) {
        self.duration.observe(took.as_secs_f64());
        let (cloud, region) = self.place.clone();
        let labels = match failure_reason {
            None => TransferEndLabels {
                result: "succeeded",
                reason: "",
                cloud,
                region,
            },
            Some(reason) => TransferEndLabels {
                result: "failed",
                reason: reason.as_str(),
                cloud,
                region,
            },
        };
        self.ended.get_or_create(&labels).inc();
    }
}

/// Counts Images by their Ready condition: filled at scrape time by the controller.
pub type ImageCensus = Box<dyn Fn() -> BTreeMap<(String, String), i64> + Send + Sync>;

/// The controller's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    kube_writes: Family<WriteLabels, Counter>,
    /// The same, summed: reading the family by label sets would create empty series.
    kube_writes_sum: std::sync::atomic::AtomicU64,
    images: Family<ReasonLabels, Gauge>,
    census: Mutex<Option<ImageCensus>>,
    pub transfers: TransferMetrics,
    pub series: SeriesMetrics,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("glint");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let reconcile_duration = latency_histogram();
        let kube_writes = Family::<WriteLabels, Counter>::default();
        let images = Family::<ReasonLabels, Gauge>::default();
        let transfers = TransferMetrics::default();
        let series = SeriesMetrics::default();
        let leader = Gauge::default();
        registry.register(
            "series_versions",
            "Versions an ImageSeries keeps in Glance",
            series.versions.clone(),
        );
        registry.register(
            "series_last_check_timestamp_seconds",
            "When an ImageSeries last read its releases successfully, in Unix seconds",
            series.last_check.clone(),
        );
        let glance = glance_metrics();
        registry.register(
            "reconciles",
            "Reconciles finished, by result (ok, error, panic)",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            reconcile_duration.clone(),
        );
        registry.register(
            "kubernetes_writes",
            "Writes sent to Kubernetes (status patches, Events, finalizer changes), by verb and resource",
            kube_writes.clone(),
        );
        registry.register(
            "glance_requests",
            "Requests to Glance, by operation and HTTP status code (none: no answer)",
            glance.requests.clone(),
        );
        registry.register(
            "glance_request_duration_seconds",
            "Time Glance took to answer, by operation",
            glance.duration.clone(),
        );
        registry.register(
            "transfer_bytes",
            "Bytes copied from sources into Glance",
            transfers.bytes.clone(),
        );
        registry.register(
            "transfers_active",
            "Transfers copying data now",
            transfers.active.clone(),
        );
        registry.register(
            "transfers_queued",
            "Transfers waiting for a free slot",
            transfers.queued.clone(),
        );
        registry.register(
            "transfer_duration_seconds",
            "Time one transfer took, from its start to Glance's answer",
            transfers.duration.clone(),
        );
        registry.register(
            "transfers",
            "Transfers ended, by result (succeeded, failed) and, for failures, reason",
            transfers.ended.clone(),
        );
        registry.register(
            "transfer_wakeups",
            "Transfer ends that reconciled their object at once (not on its next timer)",
            transfers.wakeups.clone(),
        );
        registry.register(
            "images",
            "Images by their Ready condition's status and reason",
            images.clone(),
        );
        registry.register(
            "leader",
            "1 while this process holds the leader lease and reconciles, else 0",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            kube_writes,
            kube_writes_sum: std::sync::atomic::AtomicU64::new(0),
            images,
            census: Mutex::default(),
            transfers,
            series,
            leader,
        }
    }

    pub fn reconciled(&self, result: &'static str, took: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// Reconciles that ended with `result` so far.
    pub fn reconciles_with(&self, result: &'static str) -> u64 {
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .get()
    }

    pub fn count_write(&self, verb: &'static str, resource: String) {
        self.kube_writes_sum.fetch_add(1, Ordering::Relaxed);
        self.kube_writes
            .get_or_create(&WriteLabels { verb, resource })
            .inc();
    }

    /// Writes to Kubernetes so far, of every verb and resource.
    pub fn kube_writes_total(&self) -> u64 {
        self.kube_writes_sum.load(Ordering::Relaxed)
    }

    /// Where the Images-by-reason gauge gets its counts at each scrape.
    pub fn set_census(&self, census: ImageCensus) {
        *self
            .census
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(census);
    }

    /// The Prometheus text exposition (OpenMetrics).
    pub fn render(&self) -> String {
        if let Some(census) = self
            .census
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
        {
            self.images.clear();
            for ((ready, reason), count) in census() {
                self.images
                    .get_or_create(&ReasonLabels { ready, reason })
                    .set(count);
            }
        }
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(%err, "could not encode the metrics");
        }
        text
    }
}

/// The resource a Kubernetes API path writes to, as a label value: one of a fixed few, so a
/// label never grows with object names.
fn resource_of(path: &str) -> String {
    let mut segments = path.split('/').filter(|segment| !segment.is_empty());
    let resource = segments.find_map(|segment| {
        ["images", "events", "leases", "secrets"]
            .into_iter()
            .find(|known| *known == segment)
    });
    resource.unwrap_or("other").to_string()
}

/// A tower layer for the Kubernetes client that counts writes by verb and resource.
#[derive(Clone)]
pub struct KubeWrites {
    metrics: Arc<Metrics>,
}

impl KubeWrites {
    pub fn layer(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for KubeWrites {
    type Service = CountedWrites<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountedWrites {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`KubeWrites`] wraps around the client's stack.
#[derive(Clone)]
pub struct CountedWrites<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> tower::Service<http::Request<B>> for CountedWrites<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let verb = match *request.method() {
            http::Method::POST => Some("create"),
            http::Method::PUT => Some("update"),
            http::Method::PATCH => Some("patch"),
            http::Method::DELETE => Some("delete"),
            _ => None,
        };
        if let Some(verb) = verb {
            self.metrics
                .count_write(verb, resource_of(request.uri().path()));
        }
        self.inner.call(request)
    }
}

/// What /readyz answers from.
#[derive(Debug, Default)]
pub struct Health {
    leader_known: AtomicBool,
    leader: AtomicBool,
    synced: AtomicBool,
}

impl Health {
    /// The lease said who leads (`true`: this process).
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
        self.leader_known.store(true, Ordering::Relaxed);
    }

    /// The watch caches have their first full listing.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    /// Ready: the leader state is known, and a leader has synced caches. A standby is ready
    /// too: it can take over, and a rolling update must be able to wait for it.
    pub fn is_ready(&self) -> bool {
        self.leader_known.load(Ordering::Relaxed)
            && (!self.leader.load(Ordering::Relaxed) || self.synced.load(Ordering::Relaxed))
    }
}

/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may stay open at all.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves /metrics, /healthz and /readyz until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, health: Arc<Health>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(%err, "metrics listener could not accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let answer = answer(&request, &metrics, &health);
                async move { Ok::<_, Infallible>(answer) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
        });
    }
}

fn answer(
    request: &Request<Incoming>,
    metrics: &Metrics,
    health: &Health,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&hyper::Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        (&hyper::Method::GET, "/readyz") if health.is_ready() => {
            (StatusCode::OK, "text/plain", "ok\n".to_string())
        }
        (&hyper::Method::GET, "/readyz") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready: waiting for the leader lease or the watch caches\n".to_string(),
        ),
        (&hyper::Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    tracing::trace!(
        path = request.uri().path(),
        took_us = started.elapsed().as_micros() as u64,
        "served"
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_paths_map_to_a_few_resource_labels() {
        let rows = [
            (
                "/apis/glint.dev/v1alpha1/namespaces/a/images/x/status",
                "images",
            ),
            ("/apis/glint.dev/v1alpha1/namespaces/a/images/x", "images"),
            ("/apis/events.k8s.io/v1/namespaces/a/events", "events"),
            (
                "/apis/coordination.k8s.io/v1/namespaces/a/leases/glint",
                "leases",
            ),
            ("/api/v1/namespaces/a/configmaps/x", "other"),
        ];
        for (path, resource) in rows {
            assert_eq!(resource_of(path), resource, "{path}");
        }
    }

    #[test]
    fn readiness_needs_a_known_leader_state_and_synced_caches_on_the_leader() {
        let health = Health::default();
        assert!(!health.is_ready(), "nothing known yet");
        health.set_leader(false);
        assert!(health.is_ready(), "a standby is ready to take over");
        health.set_leader(true);
        assert!(!health.is_ready(), "a leader without caches is not");
        health.set_synced();
        assert!(health.is_ready());
    }

    #[test]
    fn the_exposition_names_every_metric() {
        let metrics = Metrics::new();
        metrics.reconciled(results::OK, Duration::from_millis(3));
        metrics.count_write("patch", "images".into());
        glance_metrics().observe("create image", Some(201), Duration::from_millis(20));
        metrics.set_census(Box::new(|| {
            [(("True".to_string(), "Synced".to_string()), 3)].into()
        }));
        let text = metrics.render();
        for name in [
            "glint_reconciles_total{result=\"ok\"} 1",
            "glint_reconcile_duration_seconds_bucket",
            "glint_kubernetes_writes_total{verb=\"patch\",resource=\"images\"} 1",
            "glint_images{ready=\"True\",reason=\"Synced\"} 3",
            "glint_leader 0",
            "glint_transfers_active 0",
            "glint_transfer_bytes_total 0",
            "glint_glance_requests_total{operation=\"create image\",code=\"201\"}",
            "glint_glance_request_duration_seconds_bucket{le=\"0.04\",operation=\"create image\"}",
            "# TYPE glint_transfer_duration_seconds histogram",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert_eq!(metrics.kube_writes_total(), 1);
        assert!(
            !metrics
                .render()
                .contains("verb=\"create\",resource=\"secrets\""),
            "reading the total creates no empty series"
        );
    }

    #[test]
    fn transfers_are_counted_by_how_they_ended_and_where_they_went() {
        let metrics = Metrics::new();
        metrics.transfers.finished(Duration::from_secs(3), None);
        metrics
            .transfers
            .finished(Duration::from_secs(1), Some(Reason::HashMismatch));
        metrics
            .transfers
            .finished(Duration::from_secs(2), Some(Reason::HashMismatch));
        let eu = metrics.transfers.into_cloud("ops", Some("RegionTwo"));
        eu.finished(Duration::from_secs(2), Some(Reason::HashMismatch));
        let text = metrics.render();
        for line in [
            "glint_transfers_total{result=\"succeeded\",reason=\"\",cloud=\"\",region=\"\"} 1",
            "glint_transfers_total{result=\"failed\",reason=\"HashMismatch\",cloud=\"\",region=\"\"} 2",
            "glint_transfers_total{result=\"failed\",reason=\"HashMismatch\",cloud=\"ops\",region=\"RegionTwo\"} 1",
            "glint_transfer_duration_seconds_count 4",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn a_series_reports_its_versions_and_last_check_until_it_is_gone() {
        let metrics = Metrics::new();
        metrics
            .series
            .record("team", "cirros", 2, Some(1_796_000_000.5));
        let text = metrics.render();
        for line in [
            "glint_series_versions{namespace=\"team\",name=\"cirros\"} 2",
            "glint_series_last_check_timestamp_seconds{namespace=\"team\",name=\"cirros\"} 1796000000.5",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        metrics.series.forget("team", "cirros");
        assert!(!metrics.render().contains("name=\"cirros\""));
    }
}
