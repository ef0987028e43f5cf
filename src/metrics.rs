//! What glint tells operators about itself: the counters behind `/metrics` and the
//! `/healthz`, `/readyz` and `/metrics` endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Counters for /metrics and for the idle-writes measurement.
#[derive(Debug, Default)]
pub struct Metrics {
    pub reconciles: AtomicU64,
    pub failures: AtomicU64,
    /// Reconciles that panicked and were turned into an InternalError condition.
    pub panics: AtomicU64,
    /// Every write glint sends to Kubernetes: status patches, Events, finalizer changes.
    pub kube_writes: AtomicU64,
}

/// `/healthz`, `/readyz` and `/metrics` (Prometheus text) on a plain listener: three fixed
/// answers do not need an HTTP framework.
pub async fn serve_health(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 1024];
            let read = socket.read(&mut buffer).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buffer[..read]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/healthz" | "/readyz" => ("200 OK", "ok\n".to_string()),
                "/metrics" => ("200 OK", render_metrics(&metrics)),
                _ => ("404 Not Found", "not found\n".to_string()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}

/// Prometheus text exposition of the controller's counters.
pub fn render_metrics(metrics: &Metrics) -> String {
    let counters = [
        (
            "glint_reconciles_total",
            "Reconciles started.",
            metrics.reconciles.load(Ordering::Relaxed),
        ),
        (
            "glint_reconcile_failures_total",
            "Reconciles that ended in an error.",
            metrics.failures.load(Ordering::Relaxed),
        ),
        (
            "glint_reconcile_panics_total",
            "Reconciles that panicked; each set its Image's InternalError condition.",
            metrics.panics.load(Ordering::Relaxed),
        ),
        (
            "glint_kubernetes_writes_total",
            "Writes sent to Kubernetes (status patches, Events, finalizer changes).",
            metrics.kube_writes.load(Ordering::Relaxed),
        ),
    ];
    counters
        .iter()
        .map(|(name, help, value)| {
            format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n")
        })
        .collect()
}
