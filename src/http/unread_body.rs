//! Keep-alive after an answer given before its request's body was read: the outermost layer.
//!
//! Many answers come before the body is read: a bad token (401), an unknown route (404), a
//! declared length over the limit (413), a request shed at the door (503). On HTTP/1.x the
//! connection can then be reused only once the rest of the body has been read off it, and
//! hyper reads only what has already arrived before giving up and closing. Its answer did
//! not say `Connection: close`, so a client that has sent its whole body puts the
//! connection back in its pool and sends its next request into a closing socket ("error
//! sending request"; the request fuzzer met it once in CI).
//!
//! So an HTTP/1.x request with a body is tracked; when its answer is ready and the body was
//! not read to its end:
//! - a declared `Content-Length` of at most [`DRAIN_MAX_BYTES`] (the JSON bodies of the API,
//!   photo-less) is read to its end and discarded in the background while the answer goes
//!   out, for at most [`DRAIN_DEADLINE`], and the connection is kept;
//! - anything else (a larger declared length, a chunked body, `Expect: 100-continue`) gets
//!   `Connection: close` on its answer, so the client opens a fresh connection for the next
//!   request.
//!
//! HTTP/2 needs none of this (a stream is reset alone) and requests without a body are not
//! touched.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use poem::http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use poem::http::{HeaderValue, Version};
use poem::{Body, Endpoint, Middleware, Request, Response, Result};

/// Largest declared body read to its end after an early answer, to keep the connection.
pub const DRAIN_MAX_BYTES: u64 = 64 * 1024;
/// How long the rest of such a body may take to arrive before the connection is dropped.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

type BodyStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// The middleware.
pub struct UnreadBody;

impl<E: Endpoint> Middleware<E> for UnreadBody {
    type Output = UnreadBodyEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        UnreadBodyEndpoint { inner: ep }
    }
}

/// The wrapped endpoint.
pub struct UnreadBodyEndpoint<E> {
    inner: E,
}

/// What the handler left of a tracked body.
#[derive(Default)]
struct Leftover {
    /// The body was read to its end.
    ended: AtomicBool,
    /// The body, handed back when dropped before its end.
    rest: Mutex<Option<BodyStream>>,
}

/// A body that says whether it was read to its end and hands back what was not.
struct Tracked {
    inner: Option<BodyStream>,
    leftover: Arc<Leftover>,
}

impl Stream for Tracked {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let next = inner.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next {
            self.leftover.ended.store(true, Ordering::Relaxed);
        }
        next
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.leftover.ended.load(Ordering::Relaxed) {
            if let Ok(mut rest) = self.leftover.rest.lock() {
                *rest = self.inner.take();
            }
        }
    }
}

/// How a request's body is declared on HTTP/1.x; `None` when there is none to track.
enum Declared {
    /// A `Content-Length` this small, without `Expect: 100-continue`.
    Drainable,
    /// Larger, chunked, or waiting for `100 Continue`: not worth reading after the answer.
    TooMuch,
}

fn declared(req: &Request) -> Option<Declared> {
    if !matches!(req.version(), Version::HTTP_10 | Version::HTTP_11) {
        return None;
    }
    let headers = req.headers();
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = headers.contains_key(TRANSFER_ENCODING);
    match (length, chunked) {
        (None | Some(0), false) => None,
        (Some(len), false) if len <= DRAIN_MAX_BYTES && !headers.contains_key(EXPECT) => {
            Some(Declared::Drainable)
        }
        _ => Some(Declared::TooMuch),
    }
}

/// Reads `rest` to its end and drops it, within [`DRAIN_DEADLINE`].
fn drain_in_background(mut rest: BodyStream) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(DRAIN_DEADLINE, async {
            while let Some(Ok(_)) = rest.next().await {}
        })
        .await;
    });
}

impl<E: Endpoint> Endpoint for UnreadBodyEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let Some(declared) = declared(&req) else {
            return Ok(self.inner.get_response(req).await);
        };
        let leftover = Arc::new(Leftover::default());
        let tracked = Tracked {
            inner: Some(Box::pin(req.take_body().into_bytes_stream())),
            leftover: leftover.clone(),
        };
        req.set_body(Body::from_bytes_stream(tracked));
        let mut resp = self.inner.get_response(req).await;
        if leftover.ended.load(Ordering::Relaxed) {
            return Ok(resp);
        }
        let rest = leftover.rest.lock().ok().and_then(|mut rest| rest.take());
        match (declared, rest) {
            (Declared::Drainable, Some(rest)) => drain_in_background(rest),
            _ => {
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
        }
        Ok(resp)
    }
}
