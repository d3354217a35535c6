//! The HTTP layer (poem + poem-openapi).
//!
//! - [`probes`]: `/`, `/health`, `/readiness`, `/serving`, `/metrics` (no database I/O).
//! - [`api`]: the AÏLA API routes under `/api`, one module per resource.
//! - [`security`]: bearer-token authentication.
//! - [`error`]: the one error type and the JSON error shape.
//! - [`observe`]: server spans, request metrics, request ids.
//! - [`body_limit`]: request body size limit on the stream, every protocol (413).
//! - [`context`]: what handlers share.
//! - [`client_addr`]: the client's address (trusted proxies, `X-Forwarded-For`).
//! - [`rate_limit`]: per-address and per-account rate limits (429).
//! - [`idempotency`]: `Idempotency-Key` on the creating POSTs (a retry applies at most once).
//! - [`shed`]: outside everything but [`unread_body`]; refuses database-backed requests at
//!   once while admission control is saturated, before any other work is spent on them.
//! - [`unread_body`]: around everything; an answer given before its request's body was read
//!   keeps its HTTP/1.1 connection usable, or says `Connection: close`.
//!
//! The API description is served at `/openapi.json`, and an interactive page at `/docs`.

pub mod api;
pub mod body_limit;
pub mod client_addr;
pub mod context;
pub mod error;
pub mod idempotency;
pub mod observe;
pub mod probes;
pub mod rate_limit;
pub mod security;
pub mod shed;
pub mod unread_body;

use poem::middleware::Cors;
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;

use crate::resilience::admission;
use body_limit::BodyLimit;
use context::AppContext;
use idempotency::Idempotency;
use observe::{Observe, RouteTemplates};
use probes::ServiceApi;
use shed::{DatabaseRoutes, ShedAtDoor, ShedReply};
use unread_body::UnreadBody;

/// Builds the whole application endpoint.
pub fn build_endpoint(
    ctx: AppContext,
    body_limit_bytes: usize,
    cors_allowed_origins: &str,
) -> impl Endpoint + 'static {
    let apis = (ServiceApi { ctx: ctx.clone() }, api::all(&ctx));
    let templates = RouteTemplates::of(&apis);
    let database_routes = DatabaseRoutes::of(&apis);
    let service = OpenApiService::new(apis, "AÏLA API", env!("CARGO_PKG_VERSION"))
        .description(api::DESCRIPTION);
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    let metrics = ctx.metrics.clone();
    // A request shed at the door gets the CORS headers any answer gets.
    let shed_at_door = ShedAtDoor {
        admission: ctx.gateway.admission().clone(),
        metrics: metrics.clone(),
        routes: database_routes,
        reply: std::sync::Arc::new(ShedReply.with(cors(cors_allowed_origins))),
    };
    Route::new()
        .at("/openapi.json", spec)
        .at("/api/", poem::get(probes::api_root_with_slash))
        .nest("/docs", docs)
        .nest("/", service)
        .with(Idempotency {
            lease: idempotency::lease(ctx.gateway.operation_timeout()),
            ttl: ctx.idempotency_ttl,
            ctx: ctx.clone(),
        })
        .with(BodyLimit {
            max_bytes: body_limit_bytes,
        })
        .with(cors(cors_allowed_origins))
        // Admission control admits a request once, at its first database call.
        .around(|ep, req| admission::request_scope(async move { ep.call(req).await }))
        .data(ctx)
        .with(Observe { metrics, templates })
        .with(shed_at_door)
        .with(UnreadBody)
}

/// The CORS layer: credentials allowed, for the configured origins (any when none is).
fn cors(cors_allowed_origins: &str) -> Cors {
    // A front end on another origin reads only the CORS-safelisted headers unless others
    // are exposed: the retry hints of a 503 and the replay marker of an idempotent answer.
    let cors = Cors::new().allow_credentials(true).expose_headers([
        "Retry-After",
        "Retry-After-Ms",
        "Idempotent-Replayed",
    ]);
    let origins: Vec<&str> = cors_allowed_origins
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty() && *o != "*")
        .collect();
    if origins.is_empty() {
        cors
    } else {
        cors.allow_origins(origins)
    }
}
