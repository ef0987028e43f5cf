//! Transfers: source URL -> (hash check) -> Glance upload, each in its own task so that no
//! reconcile worker ever waits on image data.
//!
//! [`Transfers`] is what the reconciler sees: start a transfer, read its state and progress.
//! [`TransferManager`] runs them on tokio with a concurrency limit, streams the bytes (never
//! the whole image in memory) and, when a hash is given, holds back the final chunk until the
//! digest is checked, so a corrupt download is never completed in Glance: the upload breaks
//! off and Glance returns the image to queued. The full engine (decompression, web-download,
//! resume) builds on this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::Semaphore;

use crate::crd::{HashAlgorithm, ImageSource, SourceHash, TransferPhase, TransferStatus};
use crate::glance::{ByteStream, GlanceApi};
use crate::plan::TransferState;

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
    retry: bool,
    /// When the next attempt may start, after a failure.
    not_before: Option<Instant>,
}

/// The HTTP client for sources could not be built (its TLS backend failed to start).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for image sources: {0}")]
pub struct TransferSetupError(String);

/// Runs transfers into one Glance (one client per cloud and project).
pub struct TransferManager<G> {
    api: Arc<G>,
    http: reqwest::Client,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    slots: Arc<Semaphore>,
}

/// First retry delay; doubles per failed attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl<G: GlanceApi + 'static> TransferManager<G> {
    /// At most `parallel` transfers run at once; more wait in Pending.
    pub fn new(api: Arc<G>, parallel: usize) -> Result<Self, TransferSetupError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(300))
            .build()
            .map_err(|err| TransferSetupError(err.to_string()))?;
        Ok(Self {
            api,
            http,
            entries: Arc::default(),
            slots: Arc::new(Semaphore::new(parallel.max(1))),
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
            entries: self.entries.clone(),
            slots: self.slots.clone(),
            image_id: image_id.to_string(),
            source: source.clone(),
            attempts,
        };
        tokio::spawn(job.run());
        true
    }
}

struct Job<G> {
    api: Arc<G>,
    http: reqwest::Client,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    slots: Arc<Semaphore>,
    image_id: String,
    source: ImageSource,
    attempts: u32,
}

/// Why a transfer failed, and whether another attempt can help.
struct Failure {
    message: String,
    retry: bool,
}

impl<G: GlanceApi + 'static> Job<G> {
    async fn run(self) {
        let _slot = self.slots.clone().acquire_owned().await;
        let outcome = self.copy().await;
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
        let response = self
            .http
            .get(&self.source.url)
            .send()
            .await
            .map_err(|err| Failure {
                message: format!("cannot reach {}: {err}", self.source.url),
                retry: true,
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failure {
                message: format!("{} answered {status}", self.source.url),
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
        let counted = response.bytes_stream().map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
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
            .map_err(|err| Failure {
                retry: err.is_transient() && !err.to_string().contains(HASH_MISMATCH),
                message: err.to_string(),
            })
    }
}

const HASH_MISMATCH: &str = "hash mismatch";

enum Digest {
    Md5(md5::Md5),
    Sha1(sha1_smol::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Digest {
    fn new(algorithm: HashAlgorithm) -> Self {
        use sha2::Digest as _;
        match algorithm {
            HashAlgorithm::Md5 => Self::Md5(md5::Md5::new()),
            HashAlgorithm::Sha1 => Self::Sha1(sha1_smol::Sha1::new()),
            HashAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha512 => Self::Sha512(sha2::Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        use sha2::Digest as _;
        match self {
            Self::Md5(hasher) => hasher.update(data),
            Self::Sha1(hasher) => hasher.update(data),
            Self::Sha256(hasher) => hasher.update(data),
            Self::Sha512(hasher) => hasher.update(data),
        }
    }

    fn hex(self) -> String {
        use sha2::Digest as _;
        let bytes: Vec<u8> = match self {
            Self::Md5(hasher) => hasher.finalize().to_vec(),
            Self::Sha1(hasher) => hasher.digest().bytes().to_vec(),
            Self::Sha256(hasher) => hasher.finalize().to_vec(),
            Self::Sha512(hasher) => hasher.finalize().to_vec(),
        };
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// Passes chunks through one step behind, hashing them; the last chunk is released only if
/// the digest matches, otherwise the stream ends in an error instead.
pub fn verify_hash(
    input: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    expected: SourceHash,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    struct State<S> {
        input: std::pin::Pin<Box<S>>,
        held: Option<Bytes>,
        digest: Option<Digest>,
        expected: SourceHash,
    }
    let state = State {
        input: Box::pin(input),
        held: None,
        digest: Some(Digest::new(expected.algorithm)),
        expected,
    };
    futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            match state.input.next().await {
                Some(Ok(chunk)) => {
                    if let Some(digest) = state.digest.as_mut() {
                        digest.update(&chunk);
                    }
                    if let Some(previous) = state.held.replace(chunk) {
                        return Some((Ok(previous), Some(state)));
                    }
                }
                Some(Err(err)) => return Some((Err(err), None)),
                None => {
                    let actual = state.digest.take().map(Digest::hex).unwrap_or_default();
                    if actual == state.expected.value {
                        return state.held.take().map(|last| (Ok(last), None));
                    }
                    let message = format!(
                        "{HASH_MISMATCH}: the source's {:?} is {actual}, spec.source.hash says {}",
                        state.expected.algorithm, state.expected.value
                    );
                    return Some((Err(std::io::Error::other(message)), None));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn chunks(
        parts: &[&'static [u8]],
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        futures::stream::iter(
            parts
                .iter()
                .map(|part| Ok(Bytes::from_static(part)))
                .collect::<Vec<_>>(),
        )
    }

    fn hash(algorithm: HashAlgorithm, value: &str) -> SourceHash {
        SourceHash {
            algorithm,
            value: value.to_string(),
        }
    }

    #[tokio::test]
    async fn a_matching_hash_lets_every_chunk_through() {
        // Known digests of "abc".
        let table = [
            (HashAlgorithm::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (
                HashAlgorithm::Sha1,
                "a9993e364706816aba3e25717850c26c9cd0d89d",
            ),
            (
                HashAlgorithm::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                HashAlgorithm::Sha512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (algorithm, digest) in table {
            let out: Vec<Bytes> = verify_hash(chunks(&[b"a", b"b", b"c"]), hash(algorithm, digest))
                .try_collect()
                .await
                .unwrap();
            assert_eq!(out.concat(), b"abc", "{algorithm:?}");
        }
    }

    #[tokio::test]
    async fn a_wrong_hash_withholds_the_last_chunk_and_ends_in_an_error() {
        let mut stream = Box::pin(verify_hash(
            chunks(&[b"a", b"b", b"c"]),
            hash(HashAlgorithm::Sha256, &"0".repeat(64)),
        ));
        let mut passed = Vec::new();
        let error = loop {
            match stream.next().await {
                Some(Ok(chunk)) => passed.push(chunk),
                Some(Err(err)) => break err,
                None => panic!("the stream must not end cleanly"),
            }
        };
        assert_eq!(passed.concat(), b"ab", "the final chunk is never released");
        assert!(error.to_string().contains("hash mismatch"), "{error}");
        assert!(stream.next().await.is_none());
    }
}
