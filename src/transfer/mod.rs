//! Transfers: getting a source's data into Glance, each in a task of its own so that no
//! reconcile worker ever waits on image data.
//!
//! [`Transfers`] is what the reconciler sees: start a transfer, read its state and progress,
//! cancel it. [`TransferManager`] runs them on tokio with a concurrency limit per cloud. A
//! transfer ([`job`]) takes one of three routes:
//! - upload: download -> source hash -> unpack -> sha512 -> `PUT /file` ([`pipeline`]);
//! - glanceDirect: the same stream staged with `PUT /stage`, then Glance's import;
//! - webDownload: Glance fetches the URL itself.
//!
//! With `spec.source.convertTo` and conversion by glint, the source first lands in a bounded
//! scratch folder and is checked and converted by qemu-img ([`convert`]); the result then
//! takes the upload or glanceDirect route like a local file.
//!
//! Every URL glint fetches passes the [`SourcePolicy`]; every failure has its own condition
//! reason ([`Reason`](crate::reason::Reason)) and a message that leads with the cause.

pub mod convert;
pub mod decompress;
// The digests' backend: GnuTLS by default, the RustCrypto crates where it is absent.
#[cfg(feature = "gnutls")]
#[path = "gnutls.rs"]
mod digest_backend;
#[cfg(not(feature = "gnutls"))]
#[path = "rust_digests.rs"]
mod digest_backend;
mod failure;
mod hash;
mod hash_from;
mod job;
mod job_check;
mod job_convert;
pub mod pipeline;
mod request;
pub mod shared;
pub mod source_http;
pub mod source_policy;
pub mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::crd::{TransferPhase, TransferStatus};
use crate::glance::GlanceApi;
use crate::metrics::TransferMetrics;
use crate::reason::Reason;

pub use hash::{Digest, DigestError};
pub use request::{Conversion, SourceAccess, TransferRequest};
pub use shared::SharedDownloads;
pub use source_policy::{Cidr, SourcePolicy};

pub use crate::marks::QUARANTINE_PROPERTY;

/// Glance property values glint writes are kept this short: Glance 33 takes longer ones, but
/// older deployments and other tools cap values at 255 characters.
const QUARANTINE_NOTE_LIMIT: usize = 255;

/// Where the source -> Glance transfer of an image stands: what the plan reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TransferState {
    /// No transfer is running for this image.
    #[default]
    Idle,
    Running,
    /// The last attempt failed; `retry` says whether starting another can help.
    Failed {
        reason: Reason,
        message: String,
        retry: bool,
    },
}

/// Told the image id when one of a manager's transfers ends, done or failed, once
/// [`Transfers::state`] shows it: what lets a driver look again at once instead of on a timer.
pub type EndHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What the reconciler needs from the transfer machinery.
pub trait Transfers: Send + Sync {
    /// The state the plan reads.
    fn state(&self, image_id: &str) -> TransferState;
    /// Progress for status, once a transfer has been started for the image.
    fn progress(&self, image_id: &str) -> Option<TransferStatus>;
    /// Starts getting the data into the queued image, unless a transfer runs or the retry
    /// backoff has not passed. Returns whether a transfer was started.
    fn start(&self, image_id: &str, request: &TransferRequest) -> bool;
    /// Stops the image's transfer, if one runs (the image is being deleted).
    fn cancel(&self, image_id: &str);
}

#[derive(Debug)]
struct Entry {
    status: TransferStatus,
    reason: Reason,
    retry: bool,
    /// When the next attempt may start, after a failure.
    not_before: Option<Instant>,
    /// What the failed attempt sent without learning what Glance made of it.
    unverified: Option<failure::Unverified>,
    task: Option<tokio::task::AbortHandle>,
}

/// Entries of all transfers of one manager, by image id.
type Entries = Arc<Mutex<HashMap<String, Entry>>>;

fn lock(entries: &Entries) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
    // Entries are replaced or updated field by field with no invariant spanning fields, so a
    // poisoned map is still consistent.
    entries
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Transfers for a pass that only plans (`glint plan`): none runs or has run here, and none
/// may start.
pub struct NoTransfers;

impl Transfers for NoTransfers {
    fn state(&self, _image_id: &str) -> TransferState {
        TransferState::Idle
    }

    fn progress(&self, _image_id: &str) -> Option<TransferStatus> {
        None
    }

    fn start(&self, _image_id: &str, _request: &TransferRequest) -> bool {
        false
    }

    fn cancel(&self, _image_id: &str) {}
}

/// The HTTP client for sources could not be built (its TLS backend failed to start).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransferSetupError(String);

/// Runs transfers into one Glance (one manager per cloud and project).
pub struct TransferManager<G> {
    api: Arc<G>,
    policy: Arc<SourcePolicy>,
    entries: Entries,
    slots: Arc<Semaphore>,
    metrics: TransferMetrics,
    on_end: Option<EndHook>,
    shared: Option<Arc<SharedDownloads>>,
}

impl<G: GlanceApi + 'static> TransferManager<G> {
    /// At most `parallel` transfers run at once; more wait in Pending. Sources are fetched
    /// only from addresses `policy` allows.
    pub fn new(
        api: Arc<G>,
        parallel: usize,
        policy: Arc<SourcePolicy>,
        metrics: TransferMetrics,
    ) -> Result<Self, TransferSetupError> {
        // Fail at start-up, not at the first transfer, if no client can be built here.
        source_http::source_client(policy.clone(), &Default::default())
            .map_err(TransferSetupError)?;
        Ok(Self {
            api,
            policy,
            entries: Arc::default(),
            slots: Arc::new(Semaphore::new(parallel.max(1))),
            metrics,
            on_end: None,
            shared: None,
        })
    }

    /// When the image's next attempt may start, while a failed one waits out its backoff.
    pub fn retry_at(&self, image_id: &str) -> Option<Instant> {
        lock(&self.entries)
            .get(image_id)
            .and_then(|entry| entry.not_before)
            .filter(|at| Instant::now() < *at)
    }

    /// Transfers whose request carries a share key read their source through `downloads`,
    /// which the managers of every cloud share: one download for all of an object's targets.
    pub fn sharing(mut self, downloads: Arc<SharedDownloads>) -> Self {
        self.shared = Some(downloads);
        self
    }

    /// Calls `hook` each time a transfer of this manager ends.
    pub fn on_end(mut self, hook: EndHook) -> Self {
        self.on_end = Some(hook);
        self
    }
}

impl<G: GlanceApi + 'static> Transfers for TransferManager<G> {
    fn state(&self, image_id: &str) -> TransferState {
        match lock(&self.entries).get(image_id) {
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
        }
    }

    fn progress(&self, image_id: &str) -> Option<TransferStatus> {
        lock(&self.entries)
            .get(image_id)
            .map(|entry| entry.status.clone())
    }

    fn start(&self, image_id: &str, request: &TransferRequest) -> bool {
        let mut entries = lock(&self.entries);
        let previous = entries.get(image_id);
        let busy = previous.is_some_and(|entry| {
            matches!(
                entry.status.phase,
                TransferPhase::Pending | TransferPhase::Running
            ) || entry.not_before.is_some_and(|at| Instant::now() < at)
                || (entry.status.phase == TransferPhase::Failed && !entry.retry)
        });
        if busy {
            return false;
        }
        let attempts = previous.map_or(0, |entry| entry.status.attempts) + 1;
        let unverified = previous.and_then(|entry| entry.unverified.clone());
        let job = job::Job {
            api: self.api.clone(),
            policy: self.policy.clone(),
            entries: self.entries.clone(),
            slots: self.slots.clone(),
            metrics: self.metrics.clone(),
            on_end: self.on_end.clone(),
            shared: self.shared.clone(),
            image_id: image_id.to_string(),
            request: request.clone(),
            attempts,
            unverified,
        };
        self.metrics.queued.inc();
        // The transfer's log lines say which Image they belong to, like the reconcile's.
        let task = tokio::spawn(tracing::Instrument::in_current_span(job.run()));
        entries.insert(
            image_id.to_string(),
            Entry {
                status: TransferStatus {
                    phase: TransferPhase::Pending,
                    attempts,
                    ..TransferStatus::default()
                },
                reason: Reason::TransferFailed,
                retry: true,
                not_before: None,
                unverified: None,
                task: Some(task.abort_handle()),
            },
        );
        true
    }

    fn cancel(&self, image_id: &str) {
        if let Some(entry) = lock(&self.entries).remove(image_id)
            && let Some(task) = entry.task
            && !task.is_finished()
        {
            task.abort();
            // The aborted task never reaches its own bookkeeping.
            if entry.status.phase == TransferPhase::Pending {
                self.metrics.queued.dec();
            } else {
                self.metrics.active.dec();
            }
            tracing::info!(image = %image_id, "transfer cancelled");
        }
    }
}
