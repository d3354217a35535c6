//! The outermost middleware: one server span and one metric sample per request, a request
//! id, and the conversion of any escaped error into the JSON error shape.
//!
//! Spans follow the OpenTelemetry HTTP semantic conventions: named `{method} {route}`, with
//! `http.request.method`, `http.route`, `url.path`, `http.response.status_code`; a W3C
//! `traceparent` header makes the span a child of the caller's trace. The route is the
//! template poem matched (`/api/persons/{id}`), never the raw path, so metric labels stay
//! low-cardinality. The duration sample carries the span's trace id as its exemplar.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;
use poem::PathPattern;
use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::error::json_error_catcher;
use crate::metrics::{HttpLabels, Metrics};

/// The request-id header, echoed (or generated) on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// The middleware.
pub struct Observe {
    /// Where request durations go.
    pub metrics: Arc<Metrics>,
    /// The route templates of the API description.
    pub templates: RouteTemplates,
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint {
            inner: ep,
            metrics: self.metrics.clone(),
            templates: self.templates.clone(),
        }
    }
}

/// The wrapped endpoint.
pub struct ObserveEndpoint<E> {
    inner: E,
    metrics: Arc<Metrics>,
    templates: RouteTemplates,
}

/// Route templates named as the API description names them. poem-openapi registers
/// `/api/persons/:id` with poem as `/api/persons/:param0`, so the pattern poem reports says
/// `param0`; the API's metadata gives back `/api/persons/{id}`.
#[derive(Debug, Clone, Default)]
pub struct RouteTemplates(Arc<HashMap<String, String>>);

impl RouteTemplates {
    /// The templates of every path of `apis`.
    pub fn of<T: poem_openapi::OpenApi>(_apis: &T) -> Self {
        let mut map = HashMap::new();
        for api in T::meta() {
            for path in api.paths {
                let mut n = 0;
                let registered = path
                    .path
                    .split('/')
                    .map(|seg| {
                        if seg.starts_with('{') && seg.ends_with('}') {
                            n += 1;
                            format!(":param{}", n - 1)
                        } else {
                            seg.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                map.insert(registered, path.path);
            }
        }
        Self(Arc::new(map))
    }

    /// The template for the pattern poem matched: `/api/persons/{id}`; `unmatched` when no
    /// route matched (an empty pattern is a nest's root that matched nothing inside).
    pub fn template(&self, pattern: Option<&str>) -> String {
        match pattern {
            None | Some("") => "unmatched".to_string(),
            Some(p) => self.0.get(p).cloned().unwrap_or_else(|| route_template(p)),
        }
    }
}

struct HeaderExtractor<'a>(&'a poem::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Counts a request in flight until dropped.
struct InFlight<'a>(&'a Gauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The request's id: the caller's `X-Request-Id` when it has one (at most 128 characters),
/// else a new UUID.
pub fn request_id(headers: &poem::http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// `/api/persons/:id` (poem's syntax) as `/api/persons/{id}` (OpenTelemetry's).
pub fn route_template(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| match seg.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let started = Instant::now();
        let method = req.method().as_str().to_string();
        let request_id = request_id(req.headers());
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(req.headers()))
        });
        let span = tracing::info_span!(
            "http.request",
            otel.name = %method,
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = %method,
            // The preview-session token is a secret: never in a span or a log line.
            url.path = %crate::redact::mask_path(req.uri().path()),
            http.route = Empty,
            http.response.status_code = Empty,
            user_agent.original = Empty,
            request.id = %request_id,
        );
        if let Some(ua) = req
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
        {
            span.record("user_agent.original", ua);
        }
        let _ = span.set_parent(parent);

        // A guard, so a request whose client went away (its future dropped) is not counted
        // in flight forever.
        let in_flight = InFlight::enter(&self.metrics.http_requests_in_flight);
        let outcome = self.inner.call(req).instrument(span.clone()).await;
        drop(in_flight);
        let (mut response, pattern) = match outcome {
            Ok(r) => {
                let resp = r.into_response();
                let pattern = resp.data::<PathPattern>().map(|p| p.0.clone());
                (resp, pattern)
            }
            Err(err) => {
                let pattern = err.data::<PathPattern>().map(|p| p.0.clone());
                (
                    json_error_catcher(err).instrument(span.clone()).await,
                    pattern,
                )
            }
        };
        let status = response.status().as_u16();
        let route = self.templates.template(pattern.as_deref());
        // The route is known only now, after the span started: tracing-opentelemetry applies
        // a late `otel.name` only to spans not started yet, so rename the OpenTelemetry span
        // itself too (the field keeps the name for log lines).
        let name = format!("{method} {route}");
        span.context().span().update_name(name.clone());
        span.record("otel.name", name);
        span.record("http.route", route.as_str());
        // As an integer attribute: tracing's u64 values reach OpenTelemetry as strings.
        span.record("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, v);
        }
        self.metrics.http_request(
            &HttpLabels {
                method,
                route,
                status,
            },
            started.elapsed(),
            &span,
        );
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_use_braces() {
        assert_eq!(route_template("/api/persons/:id"), "/api/persons/{id}");
        assert_eq!(
            route_template("/api/preview/:token/person"),
            "/api/preview/{token}/person"
        );
        assert_eq!(route_template("/health"), "/health");
    }

    struct Api;

    #[poem_openapi::OpenApi]
    impl Api {
        #[oai(path = "/things/:thing_id/parts/:part", method = "get")]
        async fn part(
            &self,
            thing_id: poem_openapi::param::Path<String>,
            part: poem_openapi::param::Path<String>,
        ) -> poem_openapi::payload::PlainText<String> {
            poem_openapi::payload::PlainText(format!("{}{}", thing_id.0, part.0))
        }
    }

    #[test]
    fn templates_come_from_the_api_description_not_poem_openapi_param_names() {
        let t = RouteTemplates::of(&Api);
        assert_eq!(
            t.template(Some("/things/:param0/parts/:param1")),
            "/things/{thing_id}/parts/{part}"
        );
        assert_eq!(t.template(Some("/docs")), "/docs");
        assert_eq!(t.template(Some("")), "unmatched");
        assert_eq!(t.template(None), "unmatched");
    }
}
