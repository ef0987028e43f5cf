//! Bodies that break on their way through the fault proxy, in either direction: an upload cut
//! or stalled after N bytes on its way to Glance, a download cut or stalled after N bytes on its
//! way to glint. Every byte before the break is the real service's (or the real client's).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What happens once `after` bytes have passed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Break {
    /// The connection breaks: the receiver sees a body that ends early.
    Cut,
    /// Nothing more passes for this long (a load balancer or server gone silent), then the
    /// connection breaks, as the silent party's own timeout would break it.
    Stall(Duration),
}

/// `inner`, broken after `after` bytes; `tripped` is set when the break happens.
pub struct Breaking<B> {
    inner: B,
    left: u64,
    mode: Break,
    silence: Option<Pin<Box<tokio::time::Sleep>>>,
    tripped: Arc<AtomicBool>,
}

impl<B> Breaking<B> {
    pub fn new(inner: B, after: u64, mode: Break, tripped: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            left: after,
            mode,
            silence: None,
            tripped,
        }
    }
}

fn broken() -> BoxError {
    "broken on purpose by the fault proxy".into()
}

impl<B> Body for Breaking<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.left == 0 {
            this.tripped.store(true, Ordering::Relaxed);
            if let Break::Stall(hold) = this.mode {
                let silence = this
                    .silence
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(hold)));
                ready!(silence.as_mut().poll(cx));
            }
            return Poll::Ready(Some(Err(broken())));
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
            Some(Ok(frame)) => frame,
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            // Trailers pass untouched.
            Err(frame) => return Poll::Ready(Some(Ok(frame))),
        };
        let len = data.len() as u64;
        if len > this.left {
            data.truncate(usize::try_from(this.left).unwrap_or(usize::MAX));
        }
        this.left -= data.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.left > 0 && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // The announced length stays: the receiver must see a body shorter than announced.
        self.inner.size_hint()
    }
}
