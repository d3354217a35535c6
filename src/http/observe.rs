//! The outermost middleware: one server span and one metric sample per request, a request
//! id, and the conversion of any escaped error into the JSON error shape.
//!
//! Spans follow the OpenTelemetry HTTP semantic conventions: named `{method} {route}`, with
//! `http.request.method`, `http.route`, `url.path`, `http.response.status_code`; a W3C
//! `traceparent` header makes the span a child of the caller's trace. The route is the
//! template poem matched (`/api/persons/{id}`), never the raw path, so metric labels stay
//! low-cardinality.

use std::sync::Arc;

use opentelemetry::propagation::Extractor;
use poem::PathPattern;
use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
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
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint {
            inner: ep,
            metrics: self.metrics.clone(),
        }
    }
}

/// The wrapped endpoint.
pub struct ObserveEndpoint<E> {
    inner: E,
    metrics: Arc<Metrics>,
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
        let request_id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(req.headers()))
        });
        let span = tracing::info_span!(
            "http.request",
            otel.name = %method,
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = %method,
            url.path = %req.uri().path(),
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

        let outcome = self.inner.call(req).instrument(span.clone()).await;
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
        let route = pattern
            .as_deref()
            .map(route_template)
            .unwrap_or_else(|| "unmatched".to_string());
        span.record("otel.name", format!("{method} {route}"));
        span.record("http.route", route.as_str());
        span.record("http.response.status_code", status);
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, v);
        }
        self.metrics
            .http_request_duration
            .get_or_create(&HttpLabels {
                method,
                route,
                status,
            })
            .observe(started.elapsed().as_secs_f64());
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
}
