//! The streaming pipeline of one transfer:
//!
//! ```text
//! download (async) ──chunks──► blocking thread: source hash + count ─► unpack ─► sha512
//!                                 ─► 512 KiB chunks, the last held back ──► Glance (async)
//! ```
//!
//! sha512 of the bytes sent is what Glance reports as `os_hash_value` (its default
//! `hashing_algorithm`), so it tells whether Glance stored exactly what glint sent. glint does
//! not also compute md5 (Glance's legacy `checksum`): it checked the same bytes a second time
//! and was the largest part of glint's CPU in a transfer, CPU that Glance needs when they
//! share a machine. When the source is plain and `spec.source.hash` is sha512, the source's
//! digest is that digest, and the bytes are hashed once.
//!
//! The CPU work (hashes, unpacking) runs on a blocking thread of its own, beside the async
//! download and upload, so it never stalls the runtime and uses the second core. Memory is
//! bounded by the two small channels and the decoder's window. The last chunk is released only
//! once the download is complete, its length and hash match and the archive ended cleanly:
//! otherwise the upload ends in an error, and Glance never turns the image active.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::decompress::{self, Format};
use super::hash::{BackgroundDigest, DigestError};
use crate::crd::{Decompression, HashAlgorithm, SourceHash};
use crate::glance::ByteStream;

/// The largest chunk the pipeline hands on: large enough that per-chunk costs (a channel
/// send, a wake-up of the other side) vanish while data flows fast; when it trickles, what is
/// there goes at once. The Glance client cuts the chunks of a body without a known length
/// smaller still, as uwsgi wants them (`glance::frames`).
const CHUNK: usize = 512 * 1024;
/// Downloaded chunks waiting for the blocking thread (hyper's chunks are at most a few hundred
/// KiB): bounded by count, this keeps a transfer's memory to a few MiB.
const RAW_QUEUE: usize = 8;
/// Chunks waiting for the upload.
const OUT_QUEUE: usize = 2;
/// Downloaded chunks smaller than this are joined with those already there (see [`gather`]).
const SMALL_CHUNK: usize = 64 * 1024;

/// What the pipeline is told about the source.
#[derive(Debug, Clone, Default)]
pub struct PipelineOptions {
    pub decompression: Decompression,
    pub hash: Option<SourceHash>,
    /// The Content-Length the source announced.
    pub announced_len: Option<u64>,
    /// Where `hash` was read, for the words of a mismatch (default: spec.source.hash).
    pub hash_said_by: Option<String>,
}

/// What went through, once everything checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub format: Format,
    /// Of the bytes sent: what Glance's `os_hash_value` must be (when its `os_hash_algo` is
    /// sha512, the default).
    pub sha512: String,
}

/// Why the pipeline stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    #[error("the download broke off: {0}")]
    Download(String),
    #[error("the source sent {got} bytes but announced {announced} (Content-Length)")]
    Short { got: u64, announced: u64 },
    #[error("the source's {algorithm} is {actual}, but {said_by} says {expected}")]
    Hash {
        algorithm: &'static str,
        expected: String,
        actual: String,
        /// Where the expected hash comes from, in the user's words.
        said_by: String,
    },
    #[error("the {format} archive is corrupt or truncated: {detail}")]
    Corrupt {
        format: &'static str,
        detail: String,
    },
    /// The upload stopped reading (Glance failed, or the transfer was cancelled).
    #[error("the upload stopped reading")]
    Abandoned,
    #[error(transparent)]
    Digest(#[from] DigestError),
}

impl PipelineError {
    /// Whether another attempt can help: a broken download can, bad data cannot.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            // A digest fails when memory runs short, which passes; a GnuTLS that forbids the
            // algorithm keeps failing, with its reason in the condition.
            Self::Download(_) | Self::Short { .. } | Self::Abandoned | Self::Digest(_)
        )
    }
}

/// A running pipeline: the data for Glance, and the verdict once the data is through.
pub struct Pipeline {
    pub data: ByteStream,
    pub done: oneshot::Receiver<Result<Sent, PipelineError>>,
    /// Told as soon as the first bytes have arrived: whether they go out as they came in
    /// (plain data, said so by spec.source.decompress or by those bytes), so that the upload
    /// can announce the source's length. Dropped unanswered when the pipeline failed first.
    pub passes_through: oneshot::Receiver<bool>,
}

/// The downloaded side, shared by the decoder's reader and the final drain.
struct Raw {
    chunks: mpsc::Receiver<Result<Bytes, String>>,
    digest: Option<BackgroundDigest>,
    bytes_in: u64,
    error: Option<String>,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
}

impl Raw {
    /// The next downloaded chunk, hashed and counted; `None` at the end or on an error.
    fn next(&mut self) -> Option<Bytes> {
        match self.chunks.blocking_recv()? {
            Ok(chunk) => {
                if let Some(digest) = self.digest.as_ref() {
                    digest.update(&chunk);
                }
                self.bytes_in += chunk.len() as u64;
                (self.progress)(self.bytes_in);
                Some(chunk)
            }
            Err(error) => {
                self.error = Some(error);
                None
            }
        }
    }
}

/// A `Read` over the downloaded chunks, for the decoder.
struct RawReader {
    raw: Arc<Mutex<Raw>>,
    current: Bytes,
}

impl Read for RawReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            let mut raw = self
                .raw
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match raw.next() {
                Some(chunk) => self.current = chunk,
                None => {
                    return match &raw.error {
                        Some(error) => Err(std::io::Error::other(error.clone())),
                        None => Ok(0),
                    };
                }
            }
        }
        let len = buf.len().min(self.current.len());
        buf[..len].copy_from_slice(&self.current.split_to(len));
        Ok(len)
    }
}

/// Starts the pipeline on `download`; `progress` hears the bytes downloaded so far.
pub fn start<E: std::fmt::Display + Send + 'static>(
    download: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
    options: PipelineOptions,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> Pipeline {
    let (raw_tx, raw_rx) = mpsc::channel(RAW_QUEUE);
    let (out_tx, out_rx) = mpsc::channel::<std::io::Result<Bytes>>(OUT_QUEUE);
    let (done_tx, done_rx) = oneshot::channel();
    let (through_tx, through_rx) = oneshot::channel();
    // Dropping the data stream (Glance failed, or the transfer was cancelled) stops the
    // download at once and hangs up on the source, even one that has gone silent while the
    // blocking half waits for it; the verdict is then Abandoned, whatever the data did.
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let stopped = Arc::new(AtomicBool::new(false));
    let stopping = stopped.clone();
    tokio::spawn(async move {
        let mut download = std::pin::pin!(download);
        // What the last gather read past its chunk: the next item, or the end (`Some(None)`).
        let mut pending = None;
        loop {
            let chunk = match pending.take() {
                Some(item) => item,
                None => tokio::select! {
                    chunk = download.next() => chunk,
                    _ = &mut stop_rx => {
                        stopping.store(true, Ordering::SeqCst);
                        return;
                    }
                },
            };
            let Some(chunk) = chunk else { return };
            let chunk = match chunk {
                Ok(small) if small.len() < SMALL_CHUNK => {
                    let (joined, next) = gather(small, download.as_mut());
                    pending = next;
                    Ok(joined)
                }
                other => other.map_err(|err| err.to_string()),
            };
            let failed = chunk.is_err();
            if raw_tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    let raw = Arc::new(Mutex::new(Raw {
        chunks: raw_rx,
        digest: options
            .hash
            .as_ref()
            .map(|hash| BackgroundDigest::start(&[hash.algorithm])),
        bytes_in: 0,
        error: None,
        progress,
    }));
    tokio::task::spawn_blocking(move || {
        let verdict = match pump(&raw, &options, &out_tx, through_tx) {
            _ if stopped.load(Ordering::SeqCst) => Err(PipelineError::Abandoned),
            verdict => verdict,
        };
        if let Err(error) = &verdict {
            // The upload must fail rather than end: an ended body would complete the image.
            let _ = out_tx.blocking_send(Err(std::io::Error::other(error.to_string())));
        }
        let _ = done_tx.send(verdict);
    });
    let data = futures::stream::unfold((out_rx, stop_tx), |(mut rx, stop)| async move {
        rx.recv().await.map(|item| (item, (rx, stop)))
    });
    Pipeline {
        data: Box::pin(data),
        done: done_rx,
        passes_through: through_rx,
    }
}

/// Joins `first` with the chunks the download already has ready, up to [`CHUNK`]: a source
/// that writes a few KiB at a time (measured: 4 KiB writes) otherwise costs a channel send and
/// a wake-up of the blocking thread per few KiB, and the queue, counted in chunks, holds only
/// a few dozen KiB. Returns the joined chunk and the item read past it, if any (`Some(None)`:
/// the download ended).
#[allow(clippy::type_complexity)]
fn gather<E>(
    first: Bytes,
    mut download: std::pin::Pin<&mut impl Stream<Item = Result<Bytes, E>>>,
) -> (Bytes, Option<Option<Result<Bytes, E>>>) {
    use futures::FutureExt;
    let mut joined = None;
    let mut held = first.len();
    let mut past = None;
    while held < CHUNK {
        match download.next().now_or_never() {
            None => break,
            Some(Some(Ok(more))) if held + more.len() <= CHUNK => {
                held += more.len();
                join(&mut joined, &first, &more);
            }
            Some(other) => {
                past = Some(other);
                break;
            }
        }
    }
    (joined.map_or(first, bytes::BytesMut::freeze), past)
}

/// Appends `more` to the chunk being joined, which starts as a copy of `first`: a chunk that
/// needs no joining is never copied.
fn join(joined: &mut Option<bytes::BytesMut>, first: &[u8], more: &[u8]) {
    joined
        .get_or_insert_with(|| {
            let mut buffer = bytes::BytesMut::with_capacity(CHUNK);
            buffer.extend_from_slice(first);
            buffer
        })
        .extend_from_slice(more);
}

fn lock(raw: &Mutex<Raw>) -> std::sync::MutexGuard<'_, Raw> {
    raw.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The blocking half: unpack, hash, chunk, check, release the last chunk.
fn pump(
    raw: &Arc<Mutex<Raw>>,
    options: &PipelineOptions,
    out: &mpsc::Sender<std::io::Result<Bytes>>,
    passes_through: oneshot::Sender<bool>,
) -> Result<Sent, PipelineError> {
    let download_error = || lock(raw).error.clone().map(PipelineError::Download);
    let first = lock(raw).next().unwrap_or_default();
    // The format, when the first chunk is long enough to tell; else the decoder sniffs.
    let known = Format::chosen(options.decompression)
        .or_else(|| (first.len() >= decompress::SNIFF_LEN).then(|| Format::sniff(&first)));
    let _ = passes_through.send(known == Some(Format::Plain));
    // Plain bytes go out as they came in: a sha512 source digest is also the digest of what
    // was sent.
    let source_digest_is_sent_digest = known == Some(Format::Plain)
        && options
            .hash
            .as_ref()
            .is_some_and(|hash| hash.algorithm == HashAlgorithm::Sha512);
    let mut sink = Sink {
        out,
        sent_digest: (!source_digest_is_sent_digest)
            .then(|| BackgroundDigest::start(&[HashAlgorithm::Sha512])),
        held: None,
        bytes_out: 0,
    };
    let format = if known == Some(Format::Plain) {
        // Plain data goes on as the chunks it arrived in (joined when small): no copy into a
        // decoder's buffer, no decoder.
        pass_plain(raw, first, &mut sink)?;
        Format::Plain
    } else {
        let reader = RawReader {
            raw: raw.clone(),
            current: first,
        };
        let (mut decoder, format) = decompress::decoder(reader, options.decompression)
            .map_err(|err| download_error().unwrap_or_else(|| corrupt(Format::Plain, &err)))?;
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let mut filled = 0;
            while filled < CHUNK {
                match decoder.read(&mut buffer[filled..]) {
                    Ok(0) => break,
                    Ok(read) => {
                        filled += read;
                        // A slow source must not make Glance wait for a full chunk: its WSGI
                        // server gives up on a chunked body that pauses for a few seconds.
                        if lock(raw).chunks.is_empty() {
                            break;
                        }
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        return Err(download_error().unwrap_or_else(|| corrupt(format, &err)));
                    }
                }
            }
            if filled == 0 {
                break;
            }
            sink.emit(Bytes::copy_from_slice(&buffer[..filled]))?;
        }
        format
    };
    // The archive ended; whatever follows it was still downloaded and counts for the hash.
    let mut raw = lock(raw);
    while raw.next().is_some() {}
    if let Some(error) = raw.error.clone() {
        return Err(PipelineError::Download(error));
    }
    if let Some(announced) = options.announced_len
        && announced != raw.bytes_in
    {
        return Err(PipelineError::Short {
            got: raw.bytes_in,
            announced,
        });
    }
    let mut source_digest = None;
    if let (Some(expected), Some(digest)) = (&options.hash, raw.digest.take()) {
        let actual = digest.finish()?.pop().unwrap_or_default();
        if actual != expected.value {
            return Err(PipelineError::Hash {
                algorithm: expected.algorithm.as_str(),
                expected: expected.value.clone(),
                actual,
                said_by: options
                    .hash_said_by
                    .clone()
                    .unwrap_or_else(|| "spec.source.hash".to_string()),
            });
        }
        source_digest = Some(actual);
    }
    let bytes_in = raw.bytes_in;
    drop(raw);
    sink.release_last()?;
    let bytes_out = sink.bytes_out;
    let sha512 = match sink.sent_digest.take() {
        Some(digest) => digest.finish()?.pop().unwrap_or_default(),
        None => source_digest.unwrap_or_default(),
    };
    Ok(Sent {
        bytes_in,
        bytes_out,
        format,
        sha512,
    })
}

/// Where unpacked data goes: hashed in the background, sent one chunk behind.
struct Sink<'a> {
    out: &'a mpsc::Sender<std::io::Result<Bytes>>,
    /// sha512 of the bytes sent (Glance's `os_hash_value`), unless the source digest is it.
    sent_digest: Option<BackgroundDigest>,
    /// The newest chunk, sent only when another follows or every check has passed.
    held: Option<Bytes>,
    bytes_out: u64,
}

impl Sink<'_> {
    fn emit(&mut self, chunk: Bytes) -> Result<(), PipelineError> {
        if let Some(digest) = &self.sent_digest {
            digest.update(&chunk);
        }
        self.bytes_out += chunk.len() as u64;
        match self.held.replace(chunk) {
            Some(previous) => self
                .out
                .blocking_send(Ok(previous))
                .map_err(|_| PipelineError::Abandoned),
            None => Ok(()),
        }
    }

    fn release_last(&mut self) -> Result<(), PipelineError> {
        match self.held.take() {
            Some(last) => self
                .out
                .blocking_send(Ok(last))
                .map_err(|_| PipelineError::Abandoned),
            None => Ok(()),
        }
    }
}

/// Passes plain data on in the chunks it arrived in, joining small ones while more are
/// already waiting, and splitting any larger than [`CHUNK`]. A chunk is copied only into a
/// join that takes a second one: hyper's chunks (up to about 408 KiB) rarely fit two to a
/// [`CHUNK`], and copying each into a fresh buffer on its own cost a tenth of glint's CPU in a
/// raw upload, mostly in page faults.
fn pass_plain(raw: &Mutex<Raw>, first: Bytes, sink: &mut Sink<'_>) -> Result<(), PipelineError> {
    let mut next = Some(first).filter(|chunk| !chunk.is_empty());
    loop {
        let Some(mut chunk) = next.take().or_else(|| lock(raw).next()) else {
            return match lock(raw).error.clone() {
                Some(error) => Err(PipelineError::Download(error)),
                None => Ok(()),
            };
        };
        let mut joined: Option<bytes::BytesMut> = None;
        loop {
            let held = joined.as_ref().map_or(chunk.len(), bytes::BytesMut::len);
            if held >= CHUNK || lock(raw).chunks.is_empty() {
                break;
            }
            let Some(more) = lock(raw).next() else {
                break;
            };
            if held + more.len() > CHUNK {
                next = Some(more);
                break;
            }
            join(&mut joined, &chunk, &more);
        }
        if let Some(buffer) = joined {
            chunk = buffer.freeze();
        }
        while chunk.len() > CHUNK {
            sink.emit(chunk.split_to(CHUNK))?;
        }
        sink.emit(chunk)?;
    }
}

fn corrupt(format: Format, err: &std::io::Error) -> PipelineError {
    PipelineError::Corrupt {
        format: format.name(),
        detail: err.to_string(),
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
