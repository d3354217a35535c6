//! Request body size limit, on the stream, whatever the protocol: HTTP/1.1 with or without
//! `Content-Length`, chunked, HTTP/2 (h2c included, where no `Content-Length` is needed).
//!
//! A declared `Content-Length` above the limit is refused at once. Every body is then
//! wrapped in a stream that counts the bytes as the handler reads them and fails the read
//! once the limit is passed: nothing is buffered here, and whoever reads the body never
//! holds more than the limit. When that happened, the answer is 413 whatever the handler
//! made of the failed read. (poem's own `SizeLimit` answers 411 to every request without a
//! `Content-Length`, every GET included.)

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures::Stream;
use poem::http::StatusCode;
use poem::http::header::CONTENT_LENGTH;
use poem::{Body, Endpoint, Middleware, Request, Result};

/// The middleware.
pub struct BodyLimit {
    /// Largest accepted body, bytes.
    pub max_bytes: usize,
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            max_bytes: self.max_bytes,
        }
    }
}

/// The wrapped endpoint.
pub struct BodyLimitEndpoint<E> {
    inner: E,
    max_bytes: usize,
}

fn too_large(max: usize) -> poem::Error {
    poem::Error::from_string(
        format!("Request body too large (limit {max} bytes)"),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
}

/// A body stream that ends with an error once more than `remaining` bytes came through,
/// and says so in `exceeded`.
struct Limited<S> {
    inner: S,
    remaining: usize,
    exceeded: Arc<AtomicBool>,
}

impl<S, B> Stream for Limited<S>
where
    S: Stream<Item = std::io::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    type Item = std::io::Result<B>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.exceeded.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) if chunk.as_ref().len() > self.remaining => {
                self.exceeded.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(std::io::Error::other("request body too large"))))
            }
            Poll::Ready(Some(Ok(chunk))) => {
                self.remaining -= chunk.as_ref().len();
                Poll::Ready(Some(Ok(chunk)))
            }
            other => other,
        }
    }
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_bytes as u64) {
            return Err(too_large(self.max_bytes));
        }
        let exceeded = Arc::new(AtomicBool::new(false));
        let limited = Limited {
            inner: Box::pin(req.take_body().into_bytes_stream()),
            remaining: self.max_bytes,
            exceeded: exceeded.clone(),
        };
        req.set_body(Body::from_bytes_stream(limited));
        let outcome = self.inner.call(req).await;
        if exceeded.load(Ordering::Relaxed) {
            return Err(too_large(self.max_bytes));
        }
        outcome
    }
}
