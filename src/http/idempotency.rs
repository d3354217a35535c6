//! `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header) on every POST that
//! creates or changes something: a retried request applies at most once.
//!
//! A POST to one of [`route_of`]'s routes with the header:
//! - the first request with a key claims a record (caller, key, fingerprint of method, path
//!   and body: [`crate::repo::idempotency`]), runs, and its answer (status, content type,
//!   body) is stored with the key;
//! - a repeat with the same key and fingerprint gets the stored answer again, with
//!   `Idempotent-Replayed: true`, and runs nothing (one lookup by `_id`);
//! - a repeat while the first still runs: 409 with `Retry-After`; the same key with another
//!   method, path or body: 422; a malformed key: 400 (all JSON with `detail`).
//!
//! The caller is the user of the bearer token (verified, not loaded: a bad token passes
//! through to the handler's 401), the preview token's hash on the preview write routes, or
//! the client address on the anonymous routes (registration, a new preview session).
//!
//! Answers not worth keeping (5xx, 401, 408, 409, 425, 429, or an error the handler did not
//! turn into an answer) give the claim back: the next attempt runs again. So that such a
//! retry meets the write of an attempt whose answer was lost instead of writing twice, the
//! handlers take the ids of what they create from [`IdempotencyScope`], derived from
//! caller, key, route and the time the key was first seen.
//!
//! Requests without the header, and every other route, pass through untouched.

use std::time::Duration;

use bson::oid::ObjectId;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, Result};
use sha2::{Digest, Sha256};

use super::context::AppContext;
use super::error::{ApiError, json_error};
use crate::db::{DbError, Gateway};
use crate::repo::idempotency::{self as store, KeyRecord};

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The header marking a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest key, characters.
pub const MAX_KEY_LEN: usize = 255;

/// How long a first request holds its key before a retry may take it over: longer than a
/// request's few database calls under their deadline (an ended request gives its claim back
/// at once; the lease only matters when it could not).
pub fn lease(operation_timeout: Duration) -> Duration {
    (operation_timeout * 4).max(Duration::from_secs(5))
}

/// Who a route's caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallerKind {
    /// The client address (no account).
    Address,
    /// The bearer token's user.
    User,
    /// The preview session token in the path (its hash).
    Preview,
}

/// The route template and caller kind of a POST path that takes the header.
fn route_of(path: &str) -> Option<(&'static str, CallerKind)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    use CallerKind::*;
    Some(match segments.as_slice() {
        ["api", "auth", "register"] => ("/api/auth/register", Address),
        ["api", "persons"] => ("/api/persons", User),
        ["api", "links"] => ("/api/links", User),
        ["api", "collaborators", "invite"] => ("/api/collaborators/invite", User),
        ["api", "contributions"] => ("/api/contributions", User),
        ["api", "contributions", _, "review"] => ("/api/contributions/:id/review", User),
        ["api", "preview", "session"] => ("/api/preview/session", Address),
        ["api", "preview", _, "person"] => ("/api/preview/:token/person", Preview),
        ["api", "preview", _, "link"] => ("/api/preview/:token/link", Preview),
        ["api", "preview", _, "convert"] => ("/api/preview/:token/convert", User),
        _ => return None,
    })
}

/// The key of the header's values: one value, a bare token or a structured-field string
/// (`"..."`, RFC 8941), 1 to [`MAX_KEY_LEN`] visible ASCII characters.
fn parse_key(values: &[&HeaderValue]) -> Result<String, String> {
    let [value] = values else {
        return Err("send one Idempotency-Key header, not several".into());
    };
    let raw = value
        .to_str()
        .map_err(|_| "Idempotency-Key must be visible ASCII".to_string())?
        .trim();
    let key = if let Some(inner) = raw.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or("Idempotency-Key: unterminated quoted string")?;
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e @ ('"' | '\\')) => out.push(e),
                    _ => return Err("Idempotency-Key: bad escape in quoted string".into()),
                },
                '"' => return Err("Idempotency-Key: stray quote in quoted string".into()),
                c => out.push(c),
            }
        }
        out
    } else {
        raw.to_string()
    };
    if key.is_empty() {
        return Err("Idempotency-Key must not be empty".into());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!(
            "Idempotency-Key: at most {MAX_KEY_LEN} characters (this one has {})",
            key.len()
        ));
    }
    if !key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err("Idempotency-Key must be visible ASCII".into());
    }
    Ok(key)
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// What a handler derives the ids of the documents it creates from, when the request
/// carries an `Idempotency-Key` (a request extension).
#[derive(Debug, Clone)]
pub struct IdempotencyScope {
    seed: [u8; 32],
    first_seen: bson::DateTime,
}

impl IdempotencyScope {
    /// The id of the document `purpose` this request creates: the same on every attempt
    /// with the key; its time part is when the key was first seen (ids keep their order).
    pub fn object_id(&self, purpose: &str) -> ObjectId {
        let hash = sha256(&[&self.seed, purpose.as_bytes()]);
        let secs = self.first_seen.timestamp_millis().div_euclid(1000) as u32;
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        bytes[4..].copy_from_slice(&hash[..8]);
        ObjectId::from_bytes(bytes)
    }

    /// A UUID for the document `purpose` this request creates, the same on every attempt
    /// with the key (random-looking, version 4 layout).
    pub fn uuid(&self, purpose: &str) -> uuid::Uuid {
        let hash = sha256(&[&self.seed, b"uuid", purpose.as_bytes()]);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// [`IdempotencyScope::uuid`] of `req`'s scope, or a fresh UUID v4 without one.
    pub fn uuid_for(req: &Request, purpose: &str) -> uuid::Uuid {
        req.extensions()
            .get::<IdempotencyScope>()
            .map(|s| s.uuid(purpose))
            .unwrap_or_else(uuid::Uuid::new_v4)
    }

    /// True when `req` carries an `Idempotency-Key` the middleware accepted.
    pub fn present(req: &Request) -> bool {
        req.extensions().get::<IdempotencyScope>().is_some()
    }

    /// [`IdempotencyScope::object_id`] of `req`'s scope, or a fresh id without one.
    pub fn id_for(req: &Request, purpose: &str) -> ObjectId {
        req.extensions()
            .get::<IdempotencyScope>()
            .map(|s| s.object_id(purpose))
            // `ObjectId::default()` is a fresh `ObjectId::new()`.
            .unwrap_or_default()
    }
}

/// The middleware.
pub struct Idempotency {
    /// The gateway and the token codec.
    pub ctx: AppContext,
    /// How long a key counts.
    pub ttl: Duration,
    /// How long a first request holds its key before a retry may take it over.
    pub lease: Duration,
}

impl<E: Endpoint> Middleware<E> for Idempotency {
    type Output = IdempotencyEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        IdempotencyEndpoint {
            inner: ep,
            ctx: self.ctx.clone(),
            ttl: self.ttl,
            lease: self.lease,
        }
    }
}

/// The wrapped endpoint.
pub struct IdempotencyEndpoint<E> {
    inner: E,
    ctx: AppContext,
    ttl: Duration,
    lease: Duration,
}

/// What the record says to do with a request.
enum Decision {
    /// Run it (this request holds the claim).
    Proceed { first_seen: bson::DateTime },
    /// Answer the stored answer.
    Replay(Box<KeyRecord>),
    /// The first request still runs.
    Busy(Duration),
    /// Same key, another request.
    Mismatch,
}

/// Gives the claim back if the request is dropped before it settled its record (the
/// client went away mid-request): the next attempt need not wait for the lease to end.
struct ClaimGuard {
    gateway: Gateway,
    id: String,
    claim: String,
    armed: bool,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if self.armed {
            let (gw, id, claim) = (
                self.gateway.clone(),
                std::mem::take(&mut self.id),
                std::mem::take(&mut self.claim),
            );
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = store::release(&gw, &id, &claim).await;
                });
            }
        }
    }
}

/// Answers worth replaying: not the ones that say "try again" or "not you".
fn keep(status: StatusCode) -> bool {
    !(status.is_server_error() || matches!(status.as_u16(), 401 | 408 | 409 | 425 | 429))
}

fn with_retry_after(mut resp: Response, wait: Duration) -> Response {
    let secs = wait.as_millis().div_ceil(1000).max(1);
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

impl<E: Endpoint> IdempotencyEndpoint<E> {
    /// The caller of `req` for a route of `kind`; `None` when it cannot be told (no or a
    /// bad token: the handler answers 401 as without the header).
    fn caller(&self, req: &Request, kind: CallerKind) -> Option<String> {
        match kind {
            CallerKind::Address => Some(format!("addr:{}", self.ctx.client_key(req))),
            CallerKind::Preview => {
                let token = req.uri().path().split('/').nth(3)?;
                Some(format!(
                    "preview:{}",
                    hex::encode(sha256(&[token.as_bytes()]))
                ))
            }
            CallerKind::User => {
                let auth = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
                let (scheme, token) = auth.split_once(' ')?;
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return None;
                }
                let claims = self.ctx.tokens.verify(token.trim()).ok()?;
                Some(format!("user:{}", claims.user_id))
            }
        }
    }

    async fn decide(
        &self,
        id: &str,
        fresh: &KeyRecord,
        now: bson::DateTime,
    ) -> Result<Decision, DbError> {
        let gw = &self.ctx.gateway;
        for _ in 0..3 {
            match store::find(gw, id).await? {
                Some(r) if !r.expired(now) => {
                    if r.fingerprint != fresh.fingerprint {
                        return Ok(Decision::Mismatch);
                    }
                    if r.state == store::DONE {
                        return Ok(Decision::Replay(Box::new(r)));
                    }
                    if r.in_flight(now) {
                        let left = (r.lease_until.timestamp_millis() - now.timestamp_millis())
                            .max(0) as u64;
                        return Ok(Decision::Busy(Duration::from_millis(left)));
                    }
                    if store::take_over(
                        gw,
                        id,
                        &fresh.fingerprint,
                        now,
                        &fresh.claim,
                        fresh.lease_until,
                    )
                    .await?
                    {
                        return Ok(Decision::Proceed {
                            first_seen: r.first_seen,
                        });
                    }
                }
                Some(_) => {
                    store::delete_if_expired(gw, id, now).await?;
                    if store::insert(gw, fresh).await? {
                        return Ok(Decision::Proceed {
                            first_seen: fresh.first_seen,
                        });
                    }
                }
                None => {
                    if store::insert(gw, fresh).await? {
                        return Ok(Decision::Proceed {
                            first_seen: fresh.first_seen,
                        });
                    }
                }
            }
        }
        // Lost every race: another attempt with the key holds it now.
        Ok(Decision::Busy(Duration::from_secs(1)))
    }
}

impl<E: Endpoint> Endpoint for IdempotencyEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        if req.method() != Method::POST || !req.headers().contains_key(IDEMPOTENCY_KEY) {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let Some((route, kind)) = route_of(req.uri().path()) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let values: Vec<&HeaderValue> = req.headers().get_all(IDEMPOTENCY_KEY).iter().collect();
        let key = match parse_key(&values) {
            Ok(k) => k,
            Err(why) => {
                return Ok(json_error(
                    StatusCode::BAD_REQUEST,
                    format!("Invalid Idempotency-Key header: {why}"),
                ));
            }
        };
        let Some(caller) = self.caller(&req, kind) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let body = req.take_body().into_vec().await?;
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let fingerprint = hex::encode(sha256(&[
            req.method().as_str().as_bytes(),
            target.as_bytes(),
            &body,
        ]));
        req.set_body(body);
        let id = hex::encode(sha256(&[caller.as_bytes(), key.as_bytes()]));
        let now = bson::DateTime::now();
        let fresh = KeyRecord {
            id: id.clone(),
            caller: caller.clone(),
            key: key.clone(),
            fingerprint,
            state: store::IN_FLIGHT.into(),
            claim: uuid::Uuid::new_v4().to_string(),
            lease_until: store::after(now, self.lease),
            first_seen: now,
            expires_at: store::after(now, self.ttl),
            status: None,
            content_type: None,
            body: None,
        };
        let first_seen = match self.decide(&id, &fresh, now).await {
            Err(e) => return Ok(ApiError::from(e).into_response()),
            Ok(Decision::Mismatch) => {
                return Ok(json_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Idempotency-Key already used for another request (method, path or body differ): use a new key for a new request",
                ));
            }
            Ok(Decision::Busy(wait)) => {
                return Ok(with_retry_after(
                    json_error(
                        StatusCode::CONFLICT,
                        "A request with this Idempotency-Key is still being processed: retry after it has finished",
                    ),
                    wait,
                ));
            }
            Ok(Decision::Replay(r)) => return Ok(replay(*r)),
            Ok(Decision::Proceed { first_seen }) => first_seen,
        };
        let mut guard = ClaimGuard {
            gateway: self.ctx.gateway.clone(),
            id: id.clone(),
            claim: fresh.claim.clone(),
            armed: true,
        };
        req.extensions_mut().insert(IdempotencyScope {
            seed: sha256(&[caller.as_bytes(), key.as_bytes(), route.as_bytes()]),
            first_seen,
        });
        let result = self.inner.call(req).await.map(IntoResponse::into_response);
        let gw = &self.ctx.gateway;
        match result {
            Ok(resp) if keep(resp.status()) => {
                let (parts, body) = resp.into_parts();
                let bytes = body.into_vec().await?;
                let content_type = parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                if let Err(e) = store::complete(
                    gw,
                    &id,
                    &fresh.claim,
                    parts.status.as_u16(),
                    content_type,
                    bytes.clone(),
                )
                .await
                {
                    // The answer goes out; the key stays in flight until its lease ends,
                    // then a retry runs again (and meets the documents this one created).
                    tracing::warn!(error = %e, "idempotency: the answer could not be stored");
                }
                guard.armed = false;
                Ok(Response::from_parts(parts, Body::from(bytes)))
            }
            other => {
                let _ = store::release(gw, &id, &fresh.claim).await;
                guard.armed = false;
                other
            }
        }
    }
}

/// The stored answer, marked as a replay.
fn replay(r: KeyRecord) -> Response {
    let status = r
        .status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut builder = Response::builder().status(status).header(REPLAYED, "true");
    if let Some(ct) = r.content_type {
        builder = builder.content_type(ct);
    }
    builder.body(r.body.map(|b| b.bytes).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Result<String, String> {
        parse_key(&[&HeaderValue::from_str(v).unwrap()])
    }

    #[test]
    fn keys_bare_or_quoted() {
        assert_eq!(parse("abc-123").unwrap(), "abc-123");
        assert_eq!(parse("\"8e03978e-40d5\"").unwrap(), "8e03978e-40d5");
        assert_eq!(parse(r#""a\"b""#).unwrap(), "a\"b");
        assert!(parse("\"\"").is_err());
        assert!(parse("\"open").is_err());
        assert!(parse(&"k".repeat(256)).is_err());
        assert!(parse(&"k".repeat(255)).is_ok());
    }

    #[test]
    fn routes_that_take_the_header() {
        assert_eq!(route_of("/api/persons").unwrap().1, CallerKind::User);
        assert_eq!(
            route_of("/api/preview/abc/person").unwrap().1,
            CallerKind::Preview
        );
        assert_eq!(
            route_of("/api/contributions/x/review").unwrap().0,
            "/api/contributions/:id/review"
        );
        assert!(route_of("/api/auth/login").is_none());
        assert!(route_of("/api/persons/x").is_none());
    }

    #[test]
    fn derived_ids_are_stable() {
        let s = IdempotencyScope {
            seed: [7; 32],
            first_seen: bson::DateTime::from_millis(1_700_000_000_123),
        };
        assert_eq!(s.object_id("person"), s.object_id("person"));
        assert_ne!(s.object_id("person"), s.object_id("link"));
        assert_eq!(
            s.object_id("person").timestamp().timestamp_millis(),
            1_700_000_000_000
        );
    }
}
