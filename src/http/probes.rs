//! Service routes that never touch the database: `/`, `/api/`, `/health` (liveness: always
//! 200 while the process lives), `/readiness` (503 while the database is not usable or
//! shutdown has begun), `/serving` (Kubernetes' readiness probe: 503 only while this process
//! should get no new clients: shutting down, or refusing everything under overload),
//! `/metrics`. All answer from memory: the published breaker and database states.

use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use tokio::time::Instant;

use super::context::AppContext;
use crate::db::DbStatus;
use crate::resilience::breaker::BreakerState;

/// API description tags.
#[derive(Tags)]
pub enum ServiceTag {
    /// Probes, metrics and service information.
    Service,
}

/// `GET /` body.
#[derive(Debug, Object)]
pub struct ServiceInfo {
    /// `AÏLA - Arbre Généalogique API`.
    pub message: String,
    /// Service version.
    pub version: String,
}

/// The circuit breaker as the health JSON shows it.
#[derive(Debug, Object)]
pub struct BreakerReport {
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// Since when (ISO-8601, UTC).
    pub since: String,
    /// Consecutive database failures.
    pub consecutive_failures: u32,
    /// Milliseconds until callers may probe again, while open.
    pub next_probe_in_ms: Option<u64>,
    /// The last failure, redacted.
    pub last_failure: Option<String>,
}

/// The reconnect loop as the health JSON shows it.
#[derive(Debug, Object)]
pub struct ReconnectReport {
    /// Attempts since the database was last usable.
    pub attempt: u32,
    /// Milliseconds until the next attempt, while reconnecting.
    pub next_attempt_in_ms: Option<u64>,
    /// Last error, redacted.
    pub last_error: Option<String>,
}

/// One member of the deployment, as the driver's monitor sees it.
#[derive(Debug, Object)]
pub struct MemberReport {
    /// `host:port`.
    pub address: String,
    /// `primary`, `secondary`, `standalone`, `mongos`, `load_balancer`, `arbiter`, `other`
    /// or `unknown`.
    #[oai(rename = "type")]
    pub kind: String,
    /// `up`, `down` (its last check failed) or `unknown` (not checked yet).
    pub state: String,
    /// Heartbeats failed in a row.
    pub failed_heartbeats: u32,
    /// Why it is down, redacted.
    pub last_error: Option<String>,
}

/// An index that could not be created.
#[derive(Debug, Object)]
pub struct IndexFailureReport {
    /// `collection.index_name`.
    pub index: String,
    /// Why.
    pub error: String,
    /// Whether readiness waits for it.
    pub required: bool,
}

/// Index status.
#[derive(Debug, Object)]
pub struct IndexesReport {
    /// Indexes known to exist.
    pub ensured: Vec<String>,
    /// Indexes that could not be created.
    pub failed: Vec<IndexFailureReport>,
}

/// `/health` and `/readiness` body.
#[derive(Debug, Object)]
pub struct HealthReport {
    /// Always `healthy` while the process lives (old clients check it).
    pub status: String,
    /// Now, ISO-8601 UTC.
    pub timestamp: String,
    /// `running`, or `shutting_down`.
    pub service: String,
    /// `connected`, `connecting`, `disconnected` or `not_configured`.
    pub database: String,
    /// One sentence about the database.
    pub database_message: String,
    /// The breaker.
    pub circuit_breaker: BreakerReport,
    /// The reconnect loop.
    pub reconnect: ReconnectReport,
    /// Latency of the last successful ping, milliseconds.
    pub last_ping_ms: Option<f64>,
    /// The deployment's members (one for a standalone server). A member down is not an
    /// outage while another serves: readiness follows the topology, not one member.
    pub members: Vec<MemberReport>,
    /// Indexes.
    pub indexes: IndexesReport,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Service version.
    pub version: String,
    /// `configured`, or `ephemeral` when generated at start-up.
    pub jwt_secret: String,
    /// Outgoing mail: `configured` (SMTP_URL set) or `not_configured` (verification,
    /// invitation mails and password reset off). Never the server's address or credentials.
    pub mail: String,
    /// Whether `/readiness` answers 200.
    pub ready: bool,
    /// Why not ready (empty when ready).
    pub not_ready_reasons: Vec<String>,
    /// Configuration and database warnings.
    pub warnings: Vec<String>,
}

/// `/readiness` answers.
#[derive(ApiResponse)]
pub enum ReadinessResponse {
    /// Ready: the database answered its last ping recently, the breaker is closed and the
    /// required indexes exist.
    #[oai(status = 200)]
    Ready(Json<HealthReport>, #[oai(header = "Cache-Control")] String),
    /// Not ready; the body says why.
    #[oai(status = 503)]
    NotReady(Json<HealthReport>, #[oai(header = "Cache-Control")] String),
}

/// `/serving` body.
#[derive(Debug, Object)]
pub struct ServingReport {
    /// `serving`, or `not_serving`.
    pub status: String,
    /// Why not serving (empty when serving).
    pub reasons: Vec<String>,
    /// Whether `/readiness` would answer 200 (the database is usable). Information only:
    /// `/serving` does not depend on it.
    pub database_ready: bool,
}

/// `/serving` answers.
#[derive(ApiResponse)]
pub enum ServingResponse {
    /// This process answers clients (with the service's own 503 + `Retry-After` while the
    /// database is away).
    #[oai(status = 200)]
    Serving(Json<ServingReport>, #[oai(header = "Cache-Control")] String),
    /// Shutting down, or refusing every request: send new clients elsewhere.
    #[oai(status = 503)]
    NotServing(Json<ServingReport>, #[oai(header = "Cache-Control")] String),
}

/// `/metrics` answer.
#[derive(ApiResponse)]
pub enum MetricsResponse {
    /// The exposition.
    #[oai(
        status = 200,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"
    )]
    Ok(PlainText<String>),
}

/// `/health` answer.
#[derive(ApiResponse)]
pub enum HealthResponse {
    /// Always 200 while the process lives.
    #[oai(status = 200)]
    Ok(Json<HealthReport>, #[oai(header = "Cache-Control")] String),
}

const NO_STORE: &str = "no-store";

/// Builds the health report from the published states. No I/O.
pub fn health_report(ctx: &AppContext) -> HealthReport {
    let db = ctx.db_state.borrow().clone();
    let breaker = ctx.gateway.breaker().snapshot();
    let mut reasons = Vec::new();
    if ctx.is_shutting_down() {
        reasons.push("shutting down".to_string());
    }
    if db.status != DbStatus::Connected {
        reasons.push(format!("database {}", db.status.as_str()));
    }
    if breaker.state != BreakerState::Closed {
        reasons.push(format!("circuit breaker {}", breaker.state));
    }
    match db.last_ping_ok_at {
        Some(at) if at.elapsed() <= ctx.ping_max_age => {}
        Some(at) => reasons.push(format!(
            "last successful ping {} ms ago",
            at.elapsed().as_millis()
        )),
        None => reasons.push("no successful ping yet".to_string()),
    }
    if !db.required_indexes_ok() {
        reasons.push("required indexes not created yet".to_string());
    }
    let mut warnings = ctx.config_warnings.clone();
    warnings.extend(db.warnings.iter().cloned());
    let mut report = HealthReport {
        status: "healthy".into(),
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        service: if ctx.is_shutting_down() {
            "shutting_down".into()
        } else {
            "running".into()
        },
        database: db.status.as_str().into(),
        database_message: db.message.clone(),
        circuit_breaker: BreakerReport {
            state: breaker.state.as_str().into(),
            since: breaker
                .since
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            consecutive_failures: breaker.consecutive_failures,
            next_probe_in_ms: breaker.next_probe_in_ms(),
            last_failure: breaker.last_failure.clone(),
        },
        reconnect: ReconnectReport {
            attempt: db.reconnect_attempt,
            next_attempt_in_ms: db.next_attempt_in_ms(),
            last_error: db.last_error.clone(),
        },
        last_ping_ms: db
            .last_ping
            .map(|d| (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0),
        members: db
            .members
            .iter()
            .map(|m| MemberReport {
                address: m.address.clone(),
                kind: m.kind.into(),
                state: m.state.into(),
                failed_heartbeats: m.failed_heartbeats,
                last_error: m.last_error.clone(),
            })
            .collect(),
        indexes: IndexesReport {
            ensured: db.indexes_ensured.clone(),
            failed: db
                .indexes_failed
                .iter()
                .map(|f| IndexFailureReport {
                    index: f.index.clone(),
                    error: f.error.clone(),
                    required: f.required,
                })
                .collect(),
        },
        uptime_s: Instant::now().duration_since(ctx.started).as_secs(),
        version: env!("CARGO_PKG_VERSION").into(),
        jwt_secret: if ctx.jwt_ephemeral {
            "ephemeral".into()
        } else {
            "configured".into()
        },
        mail: if ctx.mailer.enabled() {
            "configured".into()
        } else {
            "not_configured".into()
        },
        ready: reasons.is_empty(),
        not_ready_reasons: reasons,
        warnings,
    };
    if !ctx.health_show_errors {
        hide_error_text(&mut report);
    }
    report
}

/// What replaces the database's error text when it is hidden.
pub const ERROR_TEXT_HIDDEN: &str = "error text hidden (HEALTH_SHOW_ERRORS=false)";

/// Removes the database's error text (driver messages, server answers) from `report`,
/// keeping every state field: anyone may read `/health`, and that text is for operators
/// (the logs have it).
pub fn hide_error_text(report: &mut HealthReport) {
    if !matches!(
        report.database_message.as_str(),
        "Connected" | "Connection pending"
    ) {
        report.database_message = format!("Database {}: {ERROR_TEXT_HIDDEN}", report.database);
    }
    report.circuit_breaker.last_failure = None;
    report.reconnect.last_error = None;
    for member in &mut report.members {
        member.last_error = None;
    }
    for failure in &mut report.indexes.failed {
        failure.error = ERROR_TEXT_HIDDEN.to_string();
    }
}

/// Why this process should get no new clients (empty: it should). Not the database: a
/// database outage is shared by every replica, and taking them all out of a Service leaves
/// clients with connection refused instead of the fast 503 + `Retry-After` this process
/// gives them.
pub fn serving_refusals(ctx: &AppContext) -> Vec<String> {
    let mut reasons = Vec::new();
    if ctx.is_shutting_down() {
        reasons.push("shutting down".to_string());
    }
    if let Some(why) = overload_refusal(ctx) {
        reasons.push(why);
    }
    reasons
}

/// The overload part of [`serving_refusals`]: `Some(why)` while this process refuses
/// (almost) every request because of its own load, so that new clients go to other
/// replicas. Read from admission control's published state
/// ([`crate::resilience::admission::Admission::overloaded`]: at least 90 % of at least 20
/// calls shed in a recent second; two atomic reads, no I/O). A replica that sheds only part
/// of its traffic keeps serving: it still answers each client with a fast 503 +
/// `Retry-After`, and taking it out of the endpoints would only move its load onto the
/// others.
pub fn overload_refusal(ctx: &AppContext) -> Option<String> {
    ctx.gateway
        .admission()
        .overloaded()
        .then(|| "overloaded: shedding almost every database call".to_string())
}

/// The service routes.
pub struct ServiceApi {
    /// Shared state.
    pub ctx: AppContext,
}

/// `GET /api/` exactly as the old service spelled it (outside the API description, which
/// lists it as `/api`).
#[poem::handler]
pub fn api_root_with_slash() -> Json<ServiceInfo> {
    info()
}

fn info() -> Json<ServiceInfo> {
    Json(ServiceInfo {
        message: "AÏLA - Arbre Généalogique API".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[OpenApi(tag = "ServiceTag::Service")]
impl ServiceApi {
    /// Service name and version.
    #[oai(path = "/", method = "get")]
    async fn root(&self) -> Json<ServiceInfo> {
        info()
    }

    /// Service name and version (old path; also answered with the trailing slash, `/api/`,
    /// which poem-openapi would otherwise normalise away).
    #[oai(path = "/api", method = "get")]
    async fn api_root(&self) -> Json<ServiceInfo> {
        info()
    }

    /// Liveness: always 200 while the process lives, answered from memory. The body reports
    /// the database, the circuit breaker and the reconnect loop.
    #[oai(path = "/health", method = "get")]
    async fn health(&self) -> HealthResponse {
        HealthResponse::Ok(Json(health_report(&self.ctx)), NO_STORE.into())
    }

    /// Same as `/health`, kept for old clients.
    #[oai(path = "/api/health", method = "get")]
    async fn api_health(&self) -> HealthResponse {
        HealthResponse::Ok(Json(health_report(&self.ctx)), NO_STORE.into())
    }

    /// Readiness: 200 when the database is usable, else 503 with the reasons.
    #[oai(path = "/readiness", method = "get")]
    async fn readiness(&self) -> ReadinessResponse {
        let report = health_report(&self.ctx);
        self.ctx.metrics.ready.set(i64::from(report.ready));
        if report.ready {
            ReadinessResponse::Ready(Json(report), NO_STORE.into())
        } else {
            ReadinessResponse::NotReady(Json(report), NO_STORE.into())
        }
    }

    /// Serving (Kubernetes' readiness probe): 200 while this process answers clients,
    /// whatever the database does; 503 from the moment shutdown begins (or while it
    /// refuses every request because of overload). `/readiness` keeps saying whether the
    /// database is usable.
    #[oai(path = "/serving", method = "get")]
    async fn serving(&self) -> ServingResponse {
        let reasons = serving_refusals(&self.ctx);
        let report = ServingReport {
            status: if reasons.is_empty() {
                "serving".into()
            } else {
                "not_serving".into()
            },
            database_ready: health_report(&self.ctx).ready,
            reasons,
        };
        if report.reasons.is_empty() {
            ServingResponse::Serving(Json(report), NO_STORE.into())
        } else {
            ServingResponse::NotServing(Json(report), NO_STORE.into())
        }
    }

    /// Prometheus metrics, in the OpenMetrics text format (what prometheus-client writes,
    /// `# EOF` included), declared as such so every Prometheus version parses it right.
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(&self) -> MetricsResponse {
        let ready = health_report(&self.ctx).ready;
        self.ctx.metrics.ready.set(i64::from(ready));
        let admission = self.ctx.gateway.admission().snapshot();
        self.ctx
            .metrics
            .admission_limit
            .set(i64::from(admission.limit));
        self.ctx
            .metrics
            .admission_in_flight
            .set(i64::from(admission.in_flight));
        MetricsResponse::Ok(PlainText(self.ctx.metrics.encode()))
    }
}
