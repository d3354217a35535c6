//! Request body size limit. poem's own `SizeLimit` answers 411 to every request without a
//! `Content-Length` (every GET), so this one checks the header when there is one and reads
//! a chunked body with the limit when there is not. Too large: 413.

use poem::http::StatusCode;
use poem::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
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

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(len) if len > self.max_bytes as u64 => return Err(too_large(self.max_bytes)),
            Some(_) => {}
            None if req.headers().contains_key(TRANSFER_ENCODING) => {
                let body = req
                    .take_body()
                    .into_bytes_limit(self.max_bytes)
                    .await
                    .map_err(|_| too_large(self.max_bytes))?;
                req.set_body(Body::from_bytes(body));
            }
            None => {}
        }
        self.inner.call(req).await
    }
}
