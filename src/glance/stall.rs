//! How glint notices that Glance stopped taking an upload.
//!
//! An upload can take hours, so it has no overall deadline, and reqwest's read timeout does
//! not fit it: in reqwest 0.12 it is one deadline from the request's start to the answer's
//! headers, so an upload that takes longer than it fails however healthy. Instead the body is
//! watched: Glance (or a load balancer in front of it) has stalled when the body had data ready
//! and nobody took it for the limit, or when the whole body was sent and no answer came within
//! the limit. Waiting on the source is not Glance's stall: the source's own idle timeout covers
//! that. Giving up drops the connection, which Glance sees as a client gone mid-body: it puts
//! the image back to `queued` for the next attempt.
//!
//! Giving up also lets go of the body's source at once. hyper's connection task owns the body
//! while it sends it, and outlives the request it was sent for: against a Glance that stopped
//! (a hung process, a paused host) it waits on a full socket for as long as the peer's kernel
//! keeps the connection open, which can be forever. Without the release the transfer's
//! pipeline waited with it, and the attempt was recorded failed only when Glance came back.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
// tokio's clock, which tests can pause and advance.
use tokio::time::Instant;

use super::ByteStream;

/// How long Glance may leave an upload's data untaken, or its answer unsent after the last
/// byte, before glint gives the attempt up and retries: `glint run --upload-stall-timeout`.
pub const DEFAULT_UPLOAD_STALL: Duration = Duration::from_secs(120);

/// What the watched body records as hyper pulls it.
struct Marks {
    start: Instant,
    /// When the body last handed out data (milliseconds since `start`).
    handed_ms: AtomicU64,
    /// The last pull found the source with nothing ready: hyper waits on glint, not Glance.
    waiting_on_source: AtomicBool,
    /// When the body ended (milliseconds since `start` plus one; 0 while it has not).
    ended_ms: AtomicU64,
}

impl Marks {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The watch on one upload body: see [`watched`].
#[derive(Clone)]
pub(super) struct Watch {
    marks: Arc<Marks>,
    data: Held,
}

/// The body's source, until the watch gives the upload up and lets it go.
type Held = Arc<std::sync::Mutex<Option<ByteStream>>>;

/// `data` as hyper will pull it, and the watch that reads how it is pulled.
pub(super) fn watched(data: ByteStream) -> (ByteStream, Watch) {
    let marks = Arc::new(Marks {
        start: Instant::now(),
        handed_ms: AtomicU64::new(0),
        waiting_on_source: AtomicBool::new(false),
        ended_ms: AtomicU64::new(0),
    });
    let data: Held = Arc::new(std::sync::Mutex::new(Some(data)));
    let watch = Watch {
        marks: marks.clone(),
        data: data.clone(),
    };
    (Box::pin(Watched { data, marks }), watch)
}

struct Watched {
    data: Held,
    marks: Arc<Marks>,
}

fn lock(data: &Held) -> std::sync::MutexGuard<'_, Option<ByteStream>> {
    // Taking the stream out is the only change made under the lock.
    data.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Stream for Watched {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = match lock(&self.data).as_mut() {
            Some(data) => data.as_mut().poll_next(cx),
            None => Poll::Ready(Some(Err(std::io::Error::other(
                "the upload was given up: Glance stopped taking it",
            )))),
        };
        let marks = &self.marks;
        match &polled {
            Poll::Pending => marks.waiting_on_source.store(true, Ordering::Relaxed),
            Poll::Ready(Some(Ok(_))) => {
                marks.waiting_on_source.store(false, Ordering::Relaxed);
                marks.handed_ms.store(marks.now_ms(), Ordering::Relaxed);
            }
            Poll::Ready(None | Some(Err(_))) => {
                marks.waiting_on_source.store(false, Ordering::Relaxed);
                marks
                    .ended_ms
                    .store(marks.now_ms().saturating_add(1), Ordering::Relaxed);
            }
        }
        polled
    }
}

/// What a look at the watch finds.
#[derive(Debug, PartialEq)]
enum Verdict {
    Flowing,
    /// How long the data has waited for Glance to take it.
    Untaken(Duration),
    /// How long Glance has had the whole body without answering.
    Unanswered(Duration),
}

impl Watch {
    fn verdict(&self, limit: Duration) -> Verdict {
        let marks = &self.marks;
        let now = marks.now_ms();
        let since = |at: u64| Duration::from_millis(now.saturating_sub(at));
        let ended = marks.ended_ms.load(Ordering::Relaxed);
        if ended > 0 {
            let quiet = since(ended - 1);
            return if quiet >= limit {
                Verdict::Unanswered(quiet)
            } else {
                Verdict::Flowing
            };
        }
        if marks.waiting_on_source.load(Ordering::Relaxed) {
            return Verdict::Flowing;
        }
        let quiet = since(marks.handed_ms.load(Ordering::Relaxed));
        if quiet >= limit {
            Verdict::Untaken(quiet)
        } else {
            Verdict::Flowing
        }
    }

    /// Resolves, with the words for the failure, once Glance has stalled for `limit`; never
    /// while data flows or glint waits on the source. The body's source is let go by then.
    pub(super) async fn stalled(&self, limit: Duration) -> String {
        let words = self.stall_words(limit).await;
        let released = lock(&self.data).take();
        drop(released);
        words
    }

    async fn stall_words(&self, limit: Duration) -> String {
        let tick = (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            match self.verdict(limit) {
                Verdict::Flowing => {}
                Verdict::Untaken(quiet) => {
                    return format!(
                        "Glance took none of the upload's data for {} s (it, or a proxy in front of it, stopped reading; the limit is --upload-stall-timeout); glint dropped the connection and will retry",
                        quiet.as_secs()
                    );
                }
                Verdict::Unanswered(quiet) => {
                    return format!(
                        "Glance has not answered in the {} s since the last byte of the upload (the limit is --upload-stall-timeout); glint dropped the connection and will retry",
                        quiet.as_secs()
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn chunk() -> std::io::Result<Bytes> {
        Ok(Bytes::from_static(b"data"))
    }

    #[tokio::test(start_paused = true)]
    async fn data_handed_out_and_not_pulled_again_is_untaken_after_the_limit() {
        let (mut body, watch) = watched(Box::pin(futures::stream::iter(vec![chunk(), chunk()])));
        assert!(body.next().await.is_some());
        let limit = Duration::from_secs(10);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(watch.verdict(limit), Verdict::Flowing);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(matches!(watch.verdict(limit), Verdict::Untaken(quiet) if quiet >= limit));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_waiting_on_its_source_is_never_glances_stall() {
        let source = futures::stream::iter(vec![chunk()]).chain(futures::stream::pending());
        let (mut body, watch) = watched(Box::pin(source));
        assert!(body.next().await.is_some());
        let pull = tokio::time::timeout(Duration::from_secs(1), body.next()).await;
        assert!(pull.is_err(), "the source has nothing more");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(watch.verdict(Duration::from_secs(10)), Verdict::Flowing);
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_body_without_an_answer_is_unanswered_after_the_limit() {
        let (mut body, watch) = watched(Box::pin(futures::stream::iter(vec![chunk()])));
        while body.next().await.is_some() {}
        let limit = Duration::from_secs(10);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(watch.verdict(limit), Verdict::Flowing);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(matches!(watch.verdict(limit), Verdict::Unanswered(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_resolves_with_words_that_name_the_flag() {
        let (mut body, watch) = watched(Box::pin(futures::stream::iter(vec![chunk(), chunk()])));
        assert!(body.next().await.is_some());
        let words = watch.stalled(Duration::from_secs(4)).await;
        assert!(
            words.contains("took none of the upload's data for 4 s"),
            "{words}"
        );
        assert!(words.contains("--upload-stall-timeout"), "{words}");
    }

    /// What hyper's connection task would hold on to while a stopped Glance keeps its socket
    /// full: the watch lets the source go, so whoever feeds it learns the upload is over.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_upload_lets_its_source_go_while_the_body_is_still_held() {
        let (feed, source) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(1);
        let source = futures::stream::unfold(source, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let (mut body, watch) = watched(Box::pin(source));
        feed.send(chunk()).await.expect("the body takes data");
        assert!(body.next().await.is_some());
        feed.send(chunk())
            .await
            .expect("one more waits in the channel");
        assert!(
            !feed.is_closed(),
            "the body holds its source while the upload goes on"
        );

        watch.stalled(Duration::from_secs(4)).await;

        assert!(
            feed.is_closed(),
            "the source was let go, though the body is not dropped"
        );
        assert!(
            matches!(body.next().await, Some(Err(_))),
            "a late pull fails"
        );
    }
}
