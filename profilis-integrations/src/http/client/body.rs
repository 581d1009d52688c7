//! The response body of an outgoing request, shared by the client adapters: it records the
//! request when it has been read to its end, failed, or was dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use profilis_core::adapter::RecordOnce;

use super::{ClientEnd, Outgoing};
use crate::http::body_end;

pin_project_lite::pin_project! {
    /// A response body that records its request when it has been read to its end, failed or
    /// was dropped (see [`ClientEnd`]).
    pub struct ProfiledBody<B> {
        #[pin]
        inner: B,
        // Empty when the request is not profiled, or already recorded.
        call: RecordOnce<Outgoing>,
    }
}

impl<B> ProfiledBody<B> {
    /// `inner`, recording `call` at its end.
    pub(super) fn new(inner: B, call: Option<Outgoing>) -> ProfiledBody<B> {
        ProfiledBody {
            inner,
            call: RecordOnce::maybe(call),
        }
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for ProfiledBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfiledBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for ProfiledBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if this.call.get().is_none() {
            return this.inner.poll_frame(cx);
        }
        let inner = this.inner.as_mut();
        let polled = this.call.run(|| inner.poll_frame(cx));
        // The body's own code, run as part of the call: a panic in it is recorded.
        let inner = this.inner.as_ref();
        let Some(failed) = body_end(&polled, || this.call.run(|| inner.is_end_stream())) else {
            return polled;
        };
        if let Some(call) = this.call.take() {
            let end = if failed {
                ClientEnd::BodyFailed
            } else {
                ClientEnd::Complete
            };
            call.finish(end, None);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
