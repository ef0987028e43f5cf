//! Transfers: source URL -> (hash check) -> Glance upload, each in its own task so that no
//! reconcile worker ever waits on image data.
//!
//! [`Transfers`] is what the reconciler sees: start a transfer, read its state and progress.
//! [`TransferManager`] runs them on tokio with a concurrency limit, streams the bytes (never
//! the whole image in memory) and, when a hash is given, holds back the final chunk until the
//! digest is checked, so a corrupt download is never completed in Glance: the upload breaks
//! off and Glance returns the image to queued. Every source request goes through the
//! [`SourcePolicy`] (see [`source_policy`]). The full engine (decompression, web-download,
//! resume) builds on this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Semaphore;

use crate::crd::{ImageSource, TransferPhase, TransferStatus};
use crate::glance::{ByteStream, GlanceApi};
use crate::metrics::TransferMetrics;

mod hash;
pub mod source_http;
pub mod source_policy;

pub use hash::{HASH_MISMATCH, verify_hash};
pub use source_policy::{Cidr, SourcePolicy};

/// Condition reasons of failed transfers.
pub mod reasons {
    /// The source URL points at an address the source policy refuses.
    pub const SOURCE_NOT_ALLOWED: &str = "SourceNotAllowed";
    /// The source could not be read (network error or an error status).
    pub const SOURCE_UNAVAILABLE: &str = "SourceUnavailable";
    /// The data does not have the hash spec.source.hash names.
    pub const HASH_MISMATCH: &str = "HashMismatch";
    /// Glance did not take the data.
    pub const TRANSFER_FAILED: &str = "TransferFailed";
}

/// Where the source -> Glance transfer of an image stands: what the plan reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TransferState {
    /// No transfer is running for this image.
    #[default]
    Idle,
    Running,
    /// The last attempt failed; `retry` says whether starting another can help.
    Failed {
        reason: &'static str,
        message: String,
        retry: bool,
    },
}

/// What the reconciler needs from the transfer machinery.
pub trait Transfers: Send + Sync {
    /// The state the plan reads.
    fn state(&self, image_id: &str) -> TransferState;
    /// Progress for status, once a transfer has been started for the image.
    fn progress(&self, image_id: &str) -> Option<TransferStatus>;
    /// Starts copying `source` into the queued image, unless one runs or the retry backoff
    /// has not passed. Returns whether a transfer was started.
    fn start(&self, image_id: &str, source: &ImageSource) -> bool;
}

#[derive(Debug, Clone)]
struct Entry {
    status: TransferStatus,
    reason: &'static str,
    retry: bool,
    /// When the next attempt may start, after a failure.
    not_before: Option<Instant>,
}

/// The HTTP client for sources could not be built (its TLS backend failed to start).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransferSetupError(String);

/// Runs transfers into one Glance (one client per cloud and project).
pub struct TransferManager<G> {
    api: Arc<G>,
    http: reqwest::Client,
    policy: Arc<SourcePolicy>,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    slots: Arc<Semaphore>,
    metrics: TransferMetrics,
}

/// First retry delay; doubles per failed attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl<G: GlanceApi + 'static> TransferManager<G> {
    /// At most `parallel` transfers run at once; more wait in Pending. Sources are fetched
    /// only from addresses `policy` allows.
    pub fn new(
        api: Arc<G>,
        parallel: usize,
        policy: Arc<SourcePolicy>,
        metrics: TransferMetrics,
    ) -> Result<Self, TransferSetupError> {
        let http = source_http::source_client(policy.clone(), Default::default())
            .map_err(TransferSetupError)?;
        Ok(Self {
            api,
            http,
            policy,
            entries: Arc::default(),
            slots: Arc::new(Semaphore::new(parallel.max(1))),
            metrics,
        })
    }

    fn with_entries<T>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> T) -> T {
        // A panic while holding the lock cannot leave an entry half-written (entries are
        // replaced whole), so a poisoned map is still consistent.
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut entries)
    }
}

impl<G: GlanceApi + 'static> Transfers for TransferManager<G> {
    fn state(&self, image_id: &str) -> TransferState {
        self.with_entries(|entries| match entries.get(image_id) {
            None => TransferState::Idle,
            Some(entry) => match entry.status.phase {
                TransferPhase::Pending | TransferPhase::Running => TransferState::Running,
                TransferPhase::Succeeded => TransferState::Idle,
                TransferPhase::Failed => TransferState::Failed {
                    reason: entry.reason,
                    message: entry.status.last_error.clone().unwrap_or_default(),
                    retry: entry.retry,
                },
            },
        })
    }

    fn progress(&self, image_id: &str) -> Option<TransferStatus> {
        self.with_entries(|entries| entries.get(image_id).map(|entry| entry.status.clone()))
    }

    fn start(&self, image_id: &str, source: &ImageSource) -> bool {
        let attempts = self.with_entries(|entries| {
            let previous = entries.get(image_id);
            let busy = previous.is_some_and(|entry| {
                matches!(
                    entry.status.phase,
                    TransferPhase::Pending | TransferPhase::Running
                ) || entry.not_before.is_some_and(|at| Instant::now() < at)
                    || (entry.status.phase == TransferPhase::Failed && !entry.retry)
            });
            if busy {
                return None;
            }
            let attempts = previous.map_or(0, |entry| entry.status.attempts) + 1;
            entries.insert(
                image_id.to_string(),
                Entry {
                    status: TransferStatus {
                        phase: TransferPhase::Pending,
                        attempts,
                        ..TransferStatus::default()
                    },
                    reason: reasons::TRANSFER_FAILED,
                    retry: true,
                    not_before: None,
                },
            );
            Some(attempts)
        });
        let Some(attempts) = attempts else {
            return false;
        };
        let job = Job {
            api: self.api.clone(),
            http: self.http.clone(),
            policy: self.policy.clone(),
            entries: self.entries.clone(),
            slots: self.slots.clone(),
            metrics: self.metrics.clone(),
            image_id: image_id.to_string(),
            source: source.clone(),
            attempts,
        };
        self.metrics.queued.inc();
        // The transfer's log lines say which Image they belong to, like the reconcile's.
        tokio::spawn(tracing::Instrument::in_current_span(job.run()));
        true
    }
}

struct Job<G> {
    api: Arc<G>,
    http: reqwest::Client,
    policy: Arc<SourcePolicy>,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    slots: Arc<Semaphore>,
    metrics: TransferMetrics,
    image_id: String,
    source: ImageSource,
    attempts: u32,
}

/// Why a transfer failed, and whether another attempt can help.
struct Failure {
    reason: &'static str,
    message: String,
    retry: bool,
}

impl Failure {
    fn refused(message: String) -> Self {
        Self {
            reason: reasons::SOURCE_NOT_ALLOWED,
            message,
            retry: false,
        }
    }
}

impl<G: GlanceApi + 'static> Job<G> {
    async fn run(self) {
        let _slot = self.slots.clone().acquire_owned().await;
        self.metrics.queued.dec();
        self.metrics.active.inc();
        let started = Instant::now();
        let outcome = self.copy().await;
        self.metrics.active.dec();
        self.metrics.finished(started.elapsed());
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entry) = entries.get_mut(&self.image_id) {
            match outcome {
                Ok(()) => {
                    tracing::info!(image = %self.image_id, bytes = entry.status.bytes_done, "transfer done");
                    entry.status.phase = TransferPhase::Succeeded;
                    entry.status.last_error = None;
                    entry.status.percent = Some(100);
                }
                Err(failure) => {
                    tracing::warn!(image = %self.image_id, error = %failure.message, retry = failure.retry, "transfer failed");
                    entry.status.phase = TransferPhase::Failed;
                    entry.status.last_error = Some(failure.message);
                    entry.reason = failure.reason;
                    entry.retry = failure.retry;
                    let backoff = FIRST_BACKOFF
                        .saturating_mul(1 << self.attempts.saturating_sub(1).min(10))
                        .min(MAX_BACKOFF);
                    entry.not_before = Some(Instant::now() + backoff);
                }
            }
        }
    }

    fn update(&self, change: impl FnOnce(&mut TransferStatus)) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entry) = entries.get_mut(&self.image_id) {
            change(&mut entry.status);
        }
    }

    async fn copy(&self) -> Result<(), Failure> {
        let url = url::Url::parse(&self.source.url).map_err(|err| Failure {
            reason: reasons::SOURCE_UNAVAILABLE,
            message: format!("spec.source.url {:?} is not a URL: {err}", self.source.url),
            retry: false,
        })?;
        source_http::check_literal(&url, &self.policy).map_err(|refusal| {
            Failure::refused(format!("source {url} is not allowed: {refusal}"))
        })?;
        let response =
            self.http.get(url.clone()).send().await.map_err(
                |err| match source_http::refusal_in(&err) {
                    Some(words) => {
                        Failure::refused(format!("source {url} is not allowed: {words}"))
                    }
                    None => Failure {
                        reason: reasons::SOURCE_UNAVAILABLE,
                        message: format!(
                            "cannot reach {url}: {}",
                            crate::http::describe_http_error(err)
                        ),
                        retry: true,
                    },
                },
            )?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failure {
                reason: reasons::SOURCE_UNAVAILABLE,
                message: format!("{url} answered {status}"),
                // 4xx will not change by asking again; 5xx and 429 may.
                retry: status.is_server_error() || status.as_u16() == 429,
            });
        }
        let total = response.content_length();
        self.update(|progress| {
            progress.phase = TransferPhase::Running;
            progress.bytes_total = total;
        });
        let entries = self.entries.clone();
        let image_id = self.image_id.clone();
        let bytes = self.metrics.bytes.clone();
        let counted = response.bytes_stream().map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            bytes.inc_by(chunk.len() as u64);
            let mut map = entries
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(entry) = map.get_mut(&image_id) {
                entry.status.bytes_done += chunk.len() as u64;
                entry.status.percent = total
                    .filter(|total| *total > 0)
                    .map(|total| ((entry.status.bytes_done * 100) / total).min(100) as u8);
            }
            Ok(chunk)
        });
        let data: ByteStream = match &self.source.hash {
            Some(expected) => Box::pin(verify_hash(counted, expected.clone())),
            None => Box::pin(counted),
        };
        self.api
            .upload(&self.image_id, data, total)
            .await
            .map_err(|err| {
                let message = err.to_string();
                match message.find(HASH_MISMATCH) {
                    // The cause first: the transport's wrapping words say nothing to a user.
                    Some(at) => Failure {
                        reason: reasons::HASH_MISMATCH,
                        message: message[at..].to_string(),
                        retry: false,
                    },
                    None => Failure {
                        reason: reasons::TRANSFER_FAILED,
                        retry: err.is_transient(),
                        message,
                    },
                }
            })
    }
}
