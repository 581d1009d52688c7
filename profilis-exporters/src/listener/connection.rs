//! One accepted connection: an allowed client served by hyper while its place in the
//! [`Pool`](super::pool::Pool) follows what it is doing, or a short answer (`403`, `503`) written
//! at once, after which the connection is closed.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use super::pool::Slot;
use super::server::Server;

/// Longest a short answer's connection stays open: time to write the answer and read what the
/// client still sends, so closing does not reset the connection under the answer.
pub(super) const ANSWER_LINGER: Duration = Duration::from_secs(1);

/// Most bytes read from a client after its short answer; past this the connection is closed.
const ANSWER_DRAIN_BYTES: usize = 64 * 1024;

/// Body of the `503` answer.
const BUSY_BODY: &str = "every connection is answering a request: retry later\n";

/// Serves an allowed client until it leaves, the connection timeout ends it, or its place is
/// taken by a newcomer (the task is aborted, which drops the socket).
pub(super) async fn serve(server: Arc<Server>, stream: TcpStream, slot: Arc<Slot>) {
    // Best effort: responses are written in one go, so delaying small segments only adds latency.
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Tracked {
        stream,
        slot: Arc::clone(&slot),
    });
    let handler = Arc::clone(&server);
    let deadline = Arc::new(Deadline::new(server.connection_timeout));
    let expired = deadline.expired();
    let service = service_fn(move |request: Request<Incoming>| {
        slot.request_started();
        let handler = Arc::clone(&handler);
        let slot = Arc::clone(&slot);
        let deadline = Arc::clone(&deadline);
        async move {
            let response = handler
                .respond(request, &deadline)
                .await
                .map(|body| SentBody { body, slot });
            Ok::<_, Infallible>(response)
        }
    });
    // Timing out, a protocol error or the client going away all end in the same place: the
    // connection is dropped and its place freed.
    let connection = server.http.serve_connection(io, service);
    let (mut connection, mut expired) = (pin!(connection), pin!(expired));
    poll_fn(|cx| {
        if connection.as_mut().poll(cx).is_ready() || expired.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// When a connection is ended: [`connection_timeout`](super::ListenerConfig::connection_timeout)
/// after it was accepted, pushed back by the time its requests spend waiting for the
/// before-scrape hook (while one waits, the deadline does not pass).
pub(super) struct Deadline {
    state: watch::Sender<DeadlineState>,
}

#[derive(Clone, Copy)]
struct DeadlineState {
    at: Instant,
    /// Requests waiting for the hook now.
    waiting: u32,
    /// Since when one has been waiting.
    since: Instant,
}

impl Deadline {
    fn new(timeout: Duration) -> Deadline {
        let now = Instant::now();
        let (state, _) = watch::channel(DeadlineState {
            at: now + timeout,
            waiting: 0,
            since: now,
        });
        Deadline { state }
    }

    /// Stops the clock until the returned guard is dropped; the deadline is then later by the
    /// time it was stopped.
    pub(super) fn pause(&self) -> Paused<'_> {
        self.state.send_modify(|state| {
            if state.waiting == 0 {
                state.since = Instant::now();
            }
            state.waiting += 1;
        });
        Paused { deadline: self }
    }

    /// Finishes when the deadline has passed (never while the clock is stopped).
    fn expired(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut changes = self.state.subscribe();
        async move {
            loop {
                let state = *changes.borrow_and_update();
                if state.waiting > 0 {
                    if changes.changed().await.is_err() {
                        // The connection's service is gone, and the connection with it.
                        return std::future::pending().await;
                    }
                    continue;
                }
                match tokio::time::timeout_at(state.at, changes.changed()).await {
                    Err(_) => return,
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return tokio::time::sleep_until(state.at).await,
                }
            }
        }
    }
}

/// The clock of a [`Deadline`] stopped while this lives.
pub(super) struct Paused<'a> {
    deadline: &'a Deadline,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.deadline.state.send_modify(|state| {
            state.waiting -= 1;
            if state.waiting == 0 {
                state.at += state.since.elapsed();
            }
        });
    }
}

/// A short answer sent without reading the request, then the connection closed.
#[derive(Clone, Copy, Debug)]
pub(super) enum Answer {
    /// `403` with an empty body: the client is not on the allow-list.
    Forbidden,
    /// `503` with `Retry-After: 1`: every connection is answering a request.
    Busy,
}

impl Answer {
    fn bytes(self) -> Vec<u8> {
        // `fmt_http_date` panics before 1970: a clock set that far back dates the answer 1970.
        let date = httpdate::fmt_http_date(SystemTime::now().max(SystemTime::UNIX_EPOCH));
        let head = match self {
            Self::Forbidden => "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n".to_owned(),
            Self::Busy => format!(
                "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\
                 content-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n",
                BUSY_BODY.len()
            ),
        };
        let body = match self {
            Self::Forbidden => "",
            Self::Busy => BUSY_BODY,
        };
        format!("{head}connection: close\r\ndate: {date}\r\n\r\n{body}").into_bytes()
    }
}

/// Writes `answer` and closes the connection, within `budget` connections answered at once and
/// [`ANSWER_LINGER`] each; when the budget is spent the connection is closed at once instead.
pub(super) fn answer_and_close(budget: &Arc<Semaphore>, stream: TcpStream, answer: Answer) {
    let Ok(permit) = Arc::clone(budget).try_acquire_owned() else {
        drop(stream);
        return;
    };
    tokio::spawn(async move {
        let _ =
            tokio::time::timeout(ANSWER_LINGER, write_then_drain(stream, &answer.bytes())).await;
        drop(permit);
    });
}

/// Writes the answer, ends the sending side, then reads and discards what the client sends until
/// it closes: closing a socket with unread input resets the connection, and a reset can destroy
/// the answer before the client reads it.
async fn write_then_drain(mut stream: TcpStream, answer: &[u8]) -> io::Result<()> {
    let mut rest = answer;
    while !rest.is_empty() {
        stream.writable().await?;
        match stream.try_write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => rest = &rest[written..],
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    poll_fn(|cx| Pin::new(&mut stream).poll_shutdown(cx)).await?;
    let mut discarded = 0;
    let mut buffer = [0_u8; 4096];
    while discarded < ANSWER_DRAIN_BYTES {
        stream.readable().await?;
        match stream.try_read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => discarded += read,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// The client's socket, telling the slot when the connection's write buffer reached it.
struct Tracked {
    stream: TcpStream,
    slot: Arc<Slot>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    /// hyper flushes the socket only once its own buffer is written out, so a successful flush
    /// after a response was handed over means the client has been sent all of it.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.stream).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            this.slot.flushed();
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A response body that tells the slot when hyper is done with it: hyper drops the body once the
/// last of it is in the connection's write buffer.
struct SentBody {
    body: Full<Bytes>,
    slot: Arc<Slot>,
}

impl Body for SentBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for SentBody {
    fn drop(&mut self) {
        self.slot.response_handed();
    }
}
