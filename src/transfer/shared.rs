//! One download for several transfers: an object that publishes one source into several
//! clouds reads the source once.
//!
//! The first transfer that asks for a source starts its download, which writes the bytes, as
//! they arrive, to a file in the scratch folder (a *spill*). Every transfer of that source,
//! the first included, reads the spill at its own pace and follows its growing end, as
//! `tail -f` does; each runs its own pipeline (hash, unpack, sha512, upload), so each target
//! checks the source's hash itself and Glance gets a last byte only once the whole download
//! checked out.
//!
//! Why a file and not a buffer in memory: with a bounded buffer, a target that stops taking
//! data (a paused Glance) either holds every other target back once the buffer is full, or
//! falls behind it and needs a download of its own. On disk no target waits for another,
//! the bytes cost no resident memory (they sit in the page cache, which the kernel gives back),
//! and a target whose attempt failed reads the spill again at its retry instead of
//! downloading again. A spill is kept [`LINGER`] after its last reader went, long enough for
//! the retries of a target that is down (their backoff doubles to 5 minutes).
//!
//! Bounded: all spills together stay within the scratch limit (the setting conversions use);
//! lingering spills make room for new ones, and a source that still does not fit is not
//! shared: each transfer then downloads it itself, as with one target.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::watch;

use super::convert::ScratchSpace;
use super::job::SourceStream;

/// How long a finished spill is kept after its last reader went.
pub const LINGER: Duration = Duration::from_secs(10 * 60);
/// The most a reader takes from the spill at once: the pipeline's own chunk size.
const READ_CHUNK: usize = 512 * 1024;

/// Tells spills of different processes apart in a shared scratch folder, and spills of
/// different instances (tests run several) within one.
static INSTANCES: AtomicU64 = AtomicU64::new(0);

/// How far a spill's download has come.
#[derive(Debug, Clone, Default)]
struct Written {
    bytes: u64,
    /// Set once the download ended: cleanly, or with the words of its failure.
    end: Option<Result<(), String>>,
}

/// One source's bytes on disk, and its download's progress.
struct Spill {
    key: String,
    path: PathBuf,
    announced: Option<u64>,
    /// What readers may count on holding at most: the announced length, or the limit the
    /// download was given.
    reserved: u64,
    progress: watch::Sender<Written>,
    readers: AtomicUsize,
    /// Counts readers gone, so that a linger timer knows whether another came and went.
    releases: AtomicU64,
    /// Its file is deleted: no new reader may open it.
    gone: std::sync::atomic::AtomicBool,
    /// Until the download task takes it.
    file: Mutex<Option<tokio::fs::File>>,
    download: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Spill {
    /// Starts the download task, which writes `download` into the spill.
    fn run(self: &Arc<Self>, shared: Arc<SharedDownloads>, download: SourceStream) {
        let Some(file) = lock(&self.file).take() else {
            return;
        };
        shared.started.fetch_add(1, Ordering::Relaxed);
        tracing::info!(bytes = ?self.announced, "downloading the source once for every target");
        let task = tokio::spawn(write_spill(
            shared,
            self.clone(),
            file,
            download,
            self.reserved,
        ));
        *lock(&self.download) = Some(task.abort_handle());
    }

    fn written(&self) -> Written {
        self.progress.borrow().clone()
    }

    /// The scratch bytes it counts against the limit: what it was given while it downloads
    /// (a source of unknown length was given all the room left), what it wrote once done.
    fn holds(&self) -> u64 {
        let written = self.written();
        match written.end {
            Some(_) => written.bytes,
            None => self.reserved.max(written.bytes),
        }
    }

    fn lingers(&self) -> bool {
        self.readers.load(Ordering::SeqCst) == 0 && matches!(self.written().end, Some(Ok(())))
    }

    fn usable(&self) -> bool {
        !self.gone.load(Ordering::SeqCst) && !matches!(self.written().end, Some(Err(_)))
    }

    fn stop(&self) {
        self.gone.store(true, Ordering::SeqCst);
        if let Some(task) = lock(&self.download).take() {
            task.abort();
        }
        // A reader waiting for more hears that none will come.
        self.progress.send_modify(|progress| {
            if progress.end.is_none() {
                progress.end = Some(Err("the shared download was stopped".to_string()));
            }
        });
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A key's current spill, if any; locked across the opening of its download.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Spill>>>>;

/// The downloads the transfers of one process share, by key (an object and its source).
pub struct SharedDownloads {
    dir: PathBuf,
    limit: u64,
    linger: Duration,
    /// Per key: held while a spill is looked up or its download opened, so that transfers
    /// starting together open one download between them.
    slots: Mutex<HashMap<String, Slot>>,
    /// Every spill whose file is on disk, whatever its slot holds now.
    spills: Mutex<Vec<Arc<Spill>>>,
    /// Keys whose source outgrew the room it was given: their transfers download alone.
    too_big: Mutex<HashSet<String>>,
    next_file: AtomicU64,
    started: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each critical section leaves the value whole; a poisoned one is still consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SharedDownloads {
    /// Spills go to `scratch.dir` (the system's temporary folder by default), all of them
    /// together within `scratch.limit_bytes`.
    pub fn new(scratch: &ScratchSpace, linger: Duration) -> Self {
        let base = scratch.dir.clone().unwrap_or_else(std::env::temp_dir);
        let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("glint-shared-{}-{instance}", std::process::id()));
        // What a killed process of the same pid (a restarted container) left holds nothing
        // worth keeping. The folder itself is made with the first spill: a process that never
        // shares a download leaves nothing in scratch.
        let _ = std::fs::remove_dir_all(&dir);
        Self {
            dir,
            limit: scratch.limit_bytes,
            linger,
            slots: Mutex::default(),
            spills: Mutex::default(),
            too_big: Mutex::default(),
            next_file: AtomicU64::new(0),
            started: AtomicU64::new(0),
        }
    }

    /// Downloads started so far: what tells one download from several.
    pub fn downloads_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Bytes the spills on disk hold.
    pub fn bytes_on_disk(&self) -> u64 {
        lock(&self.spills)
            .iter()
            .map(|spill| spill.written().bytes)
            .sum()
    }

    /// A reader of `key`'s source from its first byte, and the length the source announced.
    /// Starts the download with `open` when no spill of `key` is there or its download
    /// failed. A source that does not fit in the room left is not shared: the caller gets
    /// the download `open` made, for itself alone.
    pub(super) async fn open<F, Fut, E>(
        self: &Arc<Self>,
        key: &str,
        open: F,
    ) -> Result<(SourceStream, Option<u64>), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(SourceStream, Option<u64>), E>>,
    {
        if lock(&self.too_big).contains(key) {
            return open().await;
        }
        let slot = lock(&self.slots)
            .entry(key.to_string())
            .or_default()
            .clone();
        let mut current = slot.lock().await;
        if let Some(spill) = current.as_ref().filter(|spill| spill.usable())
            && let Some(reader) = Reader::open(self.clone(), spill.clone()).await
        {
            return Ok((reader.into_stream(), spill.announced));
        }
        if let Some(stale) = current.take() {
            self.forget(&stale);
        }
        let (download, announced) = open().await?;
        let Some(room) = self.make_room(announced) else {
            tracing::info!(bytes = ?announced, "no scratch room to share the source; this target downloads it alone");
            return Ok((download, announced));
        };
        let spill = match self.start(key, announced, room).await {
            Ok(spill) => spill,
            Err(error) => {
                tracing::warn!(%error, "cannot share the source through scratch; this target downloads it alone");
                return Ok((download, announced));
            }
        };
        let reader = Reader::open(self.clone(), spill.clone()).await;
        spill.run(self.clone(), download);
        *current = Some(spill.clone());
        match reader {
            Some(reader) => Ok((reader.into_stream(), announced)),
            // Its file vanished at once (scratch cleared under glint): the caller's attempt
            // fails as a broken download and is retried.
            None => Ok((
                Box::pin(futures::stream::once(async {
                    Err("the shared download's file is gone from scratch".to_string())
                })),
                announced,
            )),
        }
    }

    /// How many bytes a new spill may take, after lingering spills made room; `None` when the
    /// announced length does not fit.
    fn make_room(&self, announced: Option<u64>) -> Option<u64> {
        let held =
            |spills: &[Arc<Spill>]| -> u64 { spills.iter().map(|spill| spill.holds()).sum() };
        let needed = announced.unwrap_or(0);
        loop {
            let spills = lock(&self.spills).clone();
            if self.limit.saturating_sub(held(&spills)) >= needed {
                break;
            }
            // Any lingering spill will do: it is a finished one nobody reads.
            let evicted = spills.into_iter().find(|spill| spill.lingers())?;
            self.forget(&evicted);
        }
        let room = self.limit.saturating_sub(held(&lock(&self.spills)));
        (room >= needed).then_some(announced.unwrap_or(room))
    }

    async fn start(
        self: &Arc<Self>,
        key: &str,
        announced: Option<u64>,
        room: u64,
    ) -> std::io::Result<Arc<Spill>> {
        let number = self.next_file.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("source-{number}"));
        tokio::fs::create_dir_all(&self.dir).await?;
        let file = tokio::fs::File::create(&path).await?;
        let (progress, _) = watch::channel(Written::default());
        let spill = Arc::new(Spill {
            key: key.to_string(),
            path,
            announced,
            reserved: room,
            progress,
            readers: AtomicUsize::new(0),
            releases: AtomicU64::new(0),
            gone: Default::default(),
            file: Mutex::new(Some(file)),
            download: Mutex::new(None),
        });
        lock(&self.spills).push(spill.clone());
        Ok(spill)
    }

    /// Deletes `spill`'s file and stops its download; readers that hold the file open read
    /// on, and its slot, which may be busy now, sees it gone at its next lookup.
    fn forget(&self, spill: &Arc<Spill>) {
        lock(&self.spills).retain(|held| !Arc::ptr_eq(held, spill));
        spill.stop();
        // The slot goes too unless it is busy or holds a newer spill: one per key would
        // otherwise stay for the life of the process.
        let mut slots = lock(&self.slots);
        let idle = slots.get(&spill.key).is_some_and(|slot| {
            slot.try_lock()
                .is_ok_and(|current| current.as_ref().is_none_or(|held| Arc::ptr_eq(held, spill)))
        });
        if idle {
            slots.remove(&spill.key);
        }
    }

    /// A reader went: an unfinished download nobody reads any more stops; a finished spill is
    /// kept for [`LINGER`] in case a target's retry wants it.
    fn release(self: &Arc<Self>, spill: &Arc<Spill>) {
        let release = spill.releases.fetch_add(1, Ordering::SeqCst) + 1;
        if spill.readers.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        match spill.written().end {
            Some(Ok(())) => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    self.forget(spill);
                    return;
                };
                let (shared, spill, linger) = (self.clone(), spill.clone(), self.linger);
                runtime.spawn(async move {
                    tokio::time::sleep(linger).await;
                    // Forgotten only when no reader came (and went) since.
                    if spill.releases.load(Ordering::SeqCst) == release {
                        shared.forget(&spill);
                    }
                });
            }
            _ => self.forget(spill),
        }
    }
}

impl Drop for SharedDownloads {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The download task: the source's bytes into the spill, within `room`.
async fn write_spill(
    shared: Arc<SharedDownloads>,
    spill: Arc<Spill>,
    mut file: tokio::fs::File,
    mut download: SourceStream,
    room: u64,
) {
    let mut written: u64 = 0;
    let end = loop {
        let chunk = match download.next().await {
            None => break Ok(()),
            Some(Err(error)) => break Err(error),
            Some(Ok(chunk)) => chunk,
        };
        written = written.saturating_add(chunk.len() as u64);
        if written > room {
            lock(&shared.too_big).insert(spill.key.clone());
            break Err(format!(
                "the source grew past the {room} bytes of scratch space glint had for sharing it \
                 between targets; each target now downloads it itself"
            ));
        }
        // tokio's file hands a write to a thread and returns: only the flush says it reached
        // the file, where readers may read it.
        if let Err(error) = write_through(&mut file, &chunk).await {
            break Err(format!(
                "cannot write the shared download to scratch: {error}"
            ));
        }
        spill
            .progress
            .send_modify(|progress| progress.bytes = written);
    };
    if let Err(error) = &end {
        tracing::warn!(%error, "the shared download failed");
    }
    spill
        .progress
        .send_modify(|progress| progress.end = Some(end));
}

async fn write_through(file: &mut tokio::fs::File, chunk: &[u8]) -> std::io::Result<()> {
    file.write_all(chunk).await?;
    file.flush().await
}

/// One transfer's view of a spill.
struct Reader {
    shared: Arc<SharedDownloads>,
    spill: Arc<Spill>,
    file: tokio::fs::File,
    position: u64,
    progress: watch::Receiver<Written>,
    done: bool,
}

impl Reader {
    /// `None` when the spill is gone already (evicted between lookup and open).
    async fn open(shared: Arc<SharedDownloads>, spill: Arc<Spill>) -> Option<Self> {
        spill.readers.fetch_add(1, Ordering::SeqCst);
        let file = open_from_start(&spill.path).await;
        let progress = spill.progress.subscribe();
        let reader = file.map(|file| Self {
            shared: shared.clone(),
            spill: spill.clone(),
            file,
            position: 0,
            progress,
            done: false,
        });
        if reader.is_none() {
            shared.release(&spill);
        }
        reader
    }

    fn into_stream(self) -> SourceStream {
        Box::pin(futures::stream::unfold(self, |mut reader| async move {
            let item = reader.next().await?;
            Some((item, reader))
        }))
    }

    /// The next bytes the download has written, waiting for them when the reader is ahead.
    async fn next(&mut self) -> Option<Result<Bytes, String>> {
        if self.done {
            return None;
        }
        loop {
            let written = self.progress.borrow_and_update().clone();
            if self.position < written.bytes {
                let len = usize::try_from(written.bytes - self.position)
                    .unwrap_or(READ_CHUNK)
                    .min(READ_CHUNK);
                return Some(self.read(len).await);
            }
            match written.end {
                Some(Ok(())) => {
                    self.done = true;
                    return None;
                }
                Some(Err(error)) => {
                    self.done = true;
                    return Some(Err(error));
                }
                None => {
                    if self.progress.changed().await.is_err() {
                        self.done = true;
                        return Some(Err("the shared download stopped".to_string()));
                    }
                }
            }
        }
    }

    async fn read(&mut self, len: usize) -> Result<Bytes, String> {
        let mut buffer = BytesMut::zeroed(len);
        let mut filled = 0;
        while filled < len {
            match self.file.read(&mut buffer[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(error) => {
                    self.done = true;
                    return Err(format!("cannot read the shared download: {error}"));
                }
            }
        }
        if filled == 0 {
            self.done = true;
            return Err("the shared download's file ended before its data".to_string());
        }
        buffer.truncate(filled);
        self.position = self.position.saturating_add(filled as u64);
        Ok(buffer.freeze())
    }
}

async fn open_from_start(path: &Path) -> Option<tokio::fs::File> {
    let mut file = tokio::fs::File::open(path).await.ok()?;
    file.seek(std::io::SeekFrom::Start(0)).await.ok()?;
    Some(file)
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.shared.release(&self.spill);
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn shared(limit_bytes: u64) -> Arc<SharedDownloads> {
        let scratch = ScratchSpace {
            dir: None,
            limit_bytes,
        };
        Arc::new(SharedDownloads::new(&scratch, LINGER))
    }

    fn source(bytes: usize, announce: bool) -> (SourceStream, Option<u64>) {
        let chunks = vec![Ok(Bytes::from(vec![7u8; bytes]))];
        (
            Box::pin(futures::stream::iter(chunks)),
            announce.then_some(bytes as u64),
        )
    }

    async fn read_all(mut stream: SourceStream) -> usize {
        let mut total = 0;
        while let Some(chunk) = stream.next().await {
            total += chunk.expect("the spill reads").len();
        }
        total
    }

    #[tokio::test]
    async fn readers_of_one_key_share_its_download_and_get_every_byte() {
        let shared = shared(1 << 20);
        let open = || async { Ok::<_, String>(source(300_000, true)) };
        let (first, _) = shared.open("k", open).await.expect("opened");
        let (second, announced) = shared.open("k", open).await.expect("opened");
        assert_eq!(announced, Some(300_000));
        assert_eq!(read_all(first).await, 300_000);
        assert_eq!(read_all(second).await, 300_000);
        assert_eq!(shared.downloads_started(), 1);
    }

    #[tokio::test]
    async fn a_finished_download_of_unknown_length_counts_what_it_wrote_not_all_the_room() {
        let shared = shared(1 << 20);
        let (unknown, _) = shared
            .open("unknown", || async {
                Ok::<_, String>(source(100_000, false))
            })
            .await
            .expect("opened");
        // Its reader goes on holding it (so it cannot be evicted) after its download finished:
        // then it holds the 100 kB it wrote, not the whole MiB it was given.
        let mut unknown = unknown;
        unknown.next().await.expect("a chunk").expect("reads");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while lock(&shared.spills)
            .iter()
            .any(|spill| spill.written().end.is_none())
        {
            assert!(std::time::Instant::now() < deadline, "the download ends");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (known, _) = shared
            .open("known", || async { Ok::<_, String>(source(800_000, true)) })
            .await
            .expect("opened");
        assert_eq!(read_all(known).await, 800_000);
        assert_eq!(
            shared.downloads_started(),
            2,
            "the second source was shared too"
        );
        drop(unknown);
    }

    #[tokio::test]
    async fn a_source_announced_larger_than_the_room_is_handed_back_unshared() {
        let shared = shared(1 << 20);
        let (alone, announced) = shared
            .open("big", || async { Ok::<_, String>(source(2 << 20, true)) })
            .await
            .expect("opened");
        assert_eq!(announced, Some(2 << 20));
        assert_eq!(read_all(alone).await, 2 << 20);
        assert_eq!(shared.downloads_started(), 0);
        assert_eq!(shared.bytes_on_disk(), 0);
    }
}
