//! Why a transfer attempt failed, in the words and reason the user reads, and whether (and
//! how soon) another attempt can help.

use std::time::Duration;

use super::pipeline::{PipelineError, Sent};
use crate::glance::GlanceError;
use crate::reason::Reason;

/// First retry delay; doubles per failed attempt up to [`MAX_BACKOFF`].
pub(super) const FIRST_BACKOFF: Duration = Duration::from_secs(5);
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The shortest wait after Glance refused the data for a full quota or store: freeing either
/// takes a person, and every attempt reads the source again.
const LIMIT_BACKOFF: Duration = Duration::from_secs(60);
/// Conditions keep messages short; the cause comes first, so cutting the tail is safe.
const MESSAGE_LIMIT: usize = 900;

/// Why a transfer failed, and whether another attempt can help.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) reason: Reason,
    pub(super) message: String,
    pub(super) retry: bool,
    /// Glance's HTTP status, when Glance answered with an error.
    pub(super) glance_status: Option<u16>,
    /// The next attempt waits at least this long.
    pub(super) min_backoff: Duration,
    /// Every byte went out but glint could not learn what Glance made of it (the answer, or
    /// the read of the image after it, was lost): the next attempt checks Glance's image
    /// against these digests before it sends anything again.
    pub(super) unverified: Option<Unverified>,
}

/// What an attempt sent, kept for the next one to check Glance's image against.
#[derive(Debug, Clone)]
pub(super) struct Unverified {
    pub(super) sent: Sent,
    /// Staged for glance-direct (Glance imports it), not uploaded.
    pub(super) staged: bool,
}

impl Failure {
    pub(super) fn new(reason: Reason, message: impl Into<String>, retry: bool) -> Self {
        Self {
            reason,
            message: message.into(),
            retry,
            glance_status: None,
            min_backoff: Duration::ZERO,
            unverified: None,
        }
    }

    pub(super) fn from_pipeline(error: PipelineError) -> Self {
        let reason = match &error {
            PipelineError::Download(_) | PipelineError::Short { .. } => Reason::SourceUnavailable,
            PipelineError::Hash { .. } => Reason::HashMismatch,
            PipelineError::Corrupt { .. } => Reason::CorruptArchive,
            PipelineError::Abandoned | PipelineError::Digest(_) => Reason::TransferFailed,
        };
        let retry = error.is_transient();
        Self::new(reason, error.to_string(), retry)
    }

    pub(super) fn from_glance(what: &str, error: &GlanceError) -> Self {
        if error.status() == Some(413) {
            return Self::over_limit(what, error);
        }
        // 400/415: Glance judged the data itself (for example: not the diskFormat).
        let rejected = matches!(error.status(), Some(400 | 415));
        let reason = if rejected {
            Reason::GlanceRejectedData
        } else {
            Reason::TransferFailed
        };
        Self {
            glance_status: error.status(),
            ..Self::new(
                reason,
                format!("Glance {what}: {error}"),
                error.is_transient(),
            )
        }
    }
}

impl Failure {
    /// This failure, with what was sent kept for the next attempt to check (when another
    /// attempt will come).
    pub(super) fn sent_all(self, sent: &Sent, staged: bool) -> Self {
        let unverified = self.retry.then(|| Unverified {
            sent: sent.clone(),
            staged,
        });
        Self { unverified, ..self }
    }

    /// Glance's 413 to the data, told apart by Glance's words (glance/api/v2/image_data.py):
    /// an image over the cloud's size cap waits for a change; a full quota or store is tried
    /// again, never sooner than [`LIMIT_BACKOFF`].
    fn over_limit(what: &str, error: &GlanceError) -> Self {
        let words = error.to_string();
        let lower = words.to_ascii_lowercase();
        let (reason, retry, advice) = if lower.contains("too large") {
            (
                Reason::ImageTooLarge,
                false,
                "the image is larger than this cloud takes (its image_size_cap): ask the cloud's operators to raise it, or make the image smaller (spec.source.convertTo: qcow2 leaves out a raw disk's unused space)",
            )
        } else if lower.contains("storage media is full") {
            (
                Reason::GlanceStorageFull,
                true,
                "Glance's store is full: tell the cloud's operators; glint tries again in a few minutes",
            )
        } else {
            (
                Reason::GlanceQuotaExceeded,
                true,
                "the project's image quota is used up: delete images it no longer needs, or ask the cloud's operators for more (Keystone's image_size_total limit, or Glance's user_storage_quota); glint tries again in a few minutes",
            )
        };
        Self {
            glance_status: Some(413),
            min_backoff: LIMIT_BACKOFF,
            ..Self::new(reason, format!("{advice}. Glance {what}: {words}"), retry)
        }
    }
}

pub(super) fn cut(message: String) -> String {
    cut_to(message, MESSAGE_LIMIT)
}

/// At most `limit` bytes of `message`, on a character boundary, with an ellipsis when cut.
pub(super) fn cut_to(message: String, limit: usize) -> String {
    if message.len() <= limit {
        return message;
    }
    let mut end = limit.saturating_sub('…'.len_utf8());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}
