//! Shedding at the door: the outermost middleware refuses a request that needs the database
//! when admission control could not take it anyway, before anything else is spent on it.
//!
//! Under a burst, a shed answer used to cost what every request costs before its first
//! database call: its server span and the user lookup's client span, a request id, the
//! routing, body-limit and idempotency layers, the token's verification, metrics with
//! exemplars, and the error body's serialisation (about 67 µs of CPU each, ~14,000 a second
//! under the `aila-bench overload` burst, a core taken from the database on a shared
//! machine). Here, when every admission slot is taken and the queue has no room
//! ([`Admission::shed_at_door`]), a request for a database-backed route gets the same
//! answer at once: 503, `Retry-After`, `Retry-After-Ms` and the same JSON body (`detail`,
//! `retry_after_ms`), with the request id and the CORS headers every answer carries. It is
//! counted as shed (`aila_db_admission_shed_calls_total{when="at_door"}`) and as an HTTP
//! request (`aila_http_server_request_duration_seconds`, with its route template), never as a
//! database failure; it has no span (a trace per refused request is what the door saves).
//!
//! Database-backed routes are the API description's routes under `/api/` but the health
//! probe; a preflight (`OPTIONS`) is never shed. A request that finds a free slot or room in
//! the queue goes on as before and is admitted (or shed) at its first database call. So
//! while the limiter is saturated, a request that would have failed before reaching the
//! database (a bad token: 401, a bad body: 422) is answered 503 instead, with
//! `Retry-After`, as it would be a moment later once the burst lets it through.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use poem::http::{HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use tokio::time::Instant;

use super::error::{OVERLOADED, json_error_catcher, retry_after_values};
use super::observe::{REQUEST_ID, request_id};
use crate::metrics::{HttpLabels, Metrics, ShedLabels};
use crate::resilience::admission::{Admission, Shed};

/// The `shed_calls` label of a request shed at the door.
pub const AT_DOOR: &str = "at_door";

/// The middleware. `reply` answers a shed request (the CORS layer around [`ShedReply`]).
pub struct ShedAtDoor<R> {
    /// The limiter whose saturation is checked.
    pub admission: Admission,
    /// Where sheds and requests are counted.
    pub metrics: Arc<Metrics>,
    /// The routes that need the database.
    pub routes: DatabaseRoutes,
    /// Answers a shed request.
    pub reply: Arc<R>,
}

impl<E: Endpoint, R: Endpoint> Middleware<E> for ShedAtDoor<R> {
    type Output = ShedAtDoorEndpoint<E, R>;
    fn transform(&self, ep: E) -> Self::Output {
        ShedAtDoorEndpoint {
            inner: ep,
            admission: self.admission.clone(),
            metrics: self.metrics.clone(),
            routes: self.routes.clone(),
            reply: self.reply.clone(),
        }
    }
}

/// The wrapped endpoint.
pub struct ShedAtDoorEndpoint<E, R> {
    inner: E,
    admission: Admission,
    metrics: Arc<Metrics>,
    routes: DatabaseRoutes,
    reply: Arc<R>,
}

impl<E: Endpoint, R: Endpoint> Endpoint for ShedAtDoorEndpoint<E, R> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let started = Instant::now();
        if req.method() != Method::OPTIONS {
            if let Some(route) = self.routes.find(req.method(), req.uri().path()) {
                if let Some(shed) = self.admission.shed_at_door() {
                    return Ok(self.shed(req, route, shed, started).await);
                }
            }
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

impl<E, R: Endpoint> ShedAtDoorEndpoint<E, R> {
    async fn shed(&self, mut req: Request, route: &str, shed: Shed, started: Instant) -> Response {
        let request_id = request_id(req.headers());
        let method = req.method().as_str().to_string();
        req.set_data(shed);
        let mut response = match self.reply.call(req).await {
            Ok(r) => r.into_response(),
            // The CORS layer refusing the origin, as it would have further in.
            Err(e) => json_error_catcher(e).await,
        };
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, v);
        }
        self.metrics
            .admission_shed
            .get_or_create(&ShedLabels { when: AT_DOOR })
            .inc();
        self.metrics.http_request_untraced(
            &HttpLabels {
                method,
                route: route.to_string(),
                status: response.status().as_u16(),
            },
            started.elapsed(),
        );
        response
    }
}

/// The answer to a request shed at the door (wrapped in the CORS layer): the same as
/// [`super::error::ApiError::overloaded`]'s, written directly.
pub struct ShedReply;

impl Endpoint for ShedReply {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let retry_after = req
            .data::<Shed>()
            .map_or(Duration::from_secs(1), |s| s.retry_after);
        Ok(shed_response(retry_after))
    }
}

/// 503 with `Retry-After`, `Retry-After-Ms` and `{"detail": ..., "retry_after_ms": ...}`.
pub fn shed_response(retry_after: Duration) -> Response {
    let (secs, ms) = retry_after_values(retry_after);
    // `OVERLOADED` needs no JSON escaping (checked by a test against serde's output).
    let mut body = String::with_capacity(OVERLOADED.len() + 48);
    let _ = write!(
        body,
        "{{\"detail\":\"{OVERLOADED}\",\"retry_after_ms\":{ms}}}"
    );
    Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .content_type("application/json; charset=utf-8")
        .header("retry-after", secs)
        .header("retry-after-ms", ms)
        .body(body)
}

/// The database-backed routes of the API description, by method and path template.
#[derive(Debug, Clone, Default)]
pub struct DatabaseRoutes(Arc<Vec<DatabaseRoute>>);

#[derive(Debug)]
struct DatabaseRoute {
    method: Method,
    /// The template's segments; `None` stands for a `{param}` (any one segment).
    segments: Vec<Option<String>>,
    template: String,
}

/// Routes under `/api/` need the database, but the health probe.
fn needs_database(template: &str) -> bool {
    template.starts_with("/api/") && template != "/api/health"
}

impl DatabaseRoutes {
    /// The database-backed routes of `apis`.
    pub fn of<T: poem_openapi::OpenApi>(_apis: &T) -> Self {
        let mut routes = Vec::new();
        for api in T::meta() {
            for path in api.paths {
                if !needs_database(&path.path) {
                    continue;
                }
                let segments: Vec<Option<String>> = path
                    .path
                    .split('/')
                    .map(|seg| {
                        (!(seg.starts_with('{') && seg.ends_with('}'))).then(|| seg.to_string())
                    })
                    .collect();
                for op in &path.operations {
                    routes.push(DatabaseRoute {
                        method: op.method.clone(),
                        segments: segments.clone(),
                        template: path.path.clone(),
                    });
                }
            }
        }
        Self(Arc::new(routes))
    }

    /// The template of the database-backed route `method path` matches, if any.
    pub fn find(&self, method: &Method, path: &str) -> Option<&str> {
        if !path.starts_with("/api/") {
            return None;
        }
        let n = path.split('/').count();
        self.0
            .iter()
            .find(|r| {
                r.method == method
                    && r.segments.len() == n
                    && r.segments
                        .iter()
                        .zip(path.split('/'))
                        .all(|(want, seg)| match want {
                            Some(lit) => lit == seg,
                            None => !seg.is_empty(),
                        })
            })
            .map(|r| r.template.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::{ApiError, ErrorBody};

    struct Api;

    #[poem_openapi::OpenApi(prefix_path = "/api")]
    impl Api {
        #[oai(path = "/things/:id", method = "get")]
        async fn thing(
            &self,
            id: poem_openapi::param::Path<String>,
        ) -> poem_openapi::payload::PlainText<String> {
            poem_openapi::payload::PlainText(id.0)
        }
        #[oai(path = "/things", method = "post")]
        async fn add(&self) -> poem_openapi::payload::PlainText<String> {
            poem_openapi::payload::PlainText(String::new())
        }
        #[oai(path = "/health", method = "get")]
        async fn health(&self) -> poem_openapi::payload::PlainText<String> {
            poem_openapi::payload::PlainText(String::new())
        }
    }

    #[test]
    fn database_routes_are_the_api_routes_but_health_matched_by_method_and_template() {
        let r = DatabaseRoutes::of(&Api);
        assert_eq!(
            r.find(&Method::GET, "/api/things/42"),
            Some("/api/things/{id}")
        );
        assert_eq!(r.find(&Method::POST, "/api/things"), Some("/api/things"));
        assert_eq!(r.find(&Method::GET, "/api/things"), None, "no GET there");
        assert_eq!(
            r.find(&Method::GET, "/api/things/"),
            None,
            "an empty segment"
        );
        assert_eq!(r.find(&Method::GET, "/api/things/42/more"), None);
        assert_eq!(r.find(&Method::GET, "/api/health"), None, "a probe");
        assert_eq!(r.find(&Method::GET, "/metrics"), None);
    }

    #[tokio::test]
    async fn the_door_answer_is_the_shed_answer_of_a_database_call() {
        for retry_after in [
            Duration::from_millis(100),
            Duration::from_millis(1000),
            Duration::from_micros(1500),
            Duration::from_millis(2500),
        ] {
            let door = shed_response(retry_after);
            let call = ApiError::overloaded(retry_after).into_response();
            assert_eq!(door.status(), call.status());
            for h in ["content-type", "retry-after", "retry-after-ms"] {
                assert_eq!(door.headers().get(h), call.headers().get(h), "{h}");
            }
            let door = door.into_body().into_vec().await.unwrap();
            let call = call.into_body().into_vec().await.unwrap();
            assert_eq!(
                String::from_utf8(door).unwrap(),
                String::from_utf8(call).unwrap()
            );
        }
        let serde = serde_json::to_string(&ErrorBody {
            detail: OVERLOADED.into(),
            retry_after_ms: Some(7),
        })
        .unwrap();
        let door = shed_response(Duration::from_millis(7))
            .into_body()
            .into_string()
            .await
            .unwrap();
        assert_eq!(door, serde);
    }
}
