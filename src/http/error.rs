//! One error type for every route: JSON `{"detail": "..."}` with the right status.
//!
//! [`ApiError`] is a poem-openapi response (so every route documents 401/403/404/413/422/503),
//! [`DbError`] converts into it (database unavailable: 503 with `Retry-After`, in seconds as
//! HTTP requires, plus `Retry-After-Ms` and `retry_after_ms` in the body), and
//! [`json_error_catcher`] turns every error raised outside the handlers (unknown route,
//! unparseable body, missing token, body too large) into the same JSON shape.

use std::time::Duration;

use poem::Response;
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::db::DbError;

/// The body of every error.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ErrorBody {
    /// What went wrong, for people (the front end shows it).
    pub detail: String,
    /// During an outage: when to try again, in milliseconds.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Every error a route can answer.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is understood but refused (contract-specific reasons).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed, expired or tampered token, or a user that no longer exists.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Authenticated, but not allowed.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource (or not yours), or a malformed id in the path.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// A conflicting write.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The resource existed but has expired.
    #[oai(status = 410)]
    Gone(Json<ErrorBody>),
    /// The request body is larger than `HTTP_BODY_LIMIT_BYTES` (counted on the stream as it
    /// is read, whatever the protocol): refused before the route runs.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// Invalid body or query: `detail` names the field.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// An unexpected failure (logged with its cause; the client sees a generic message).
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The database is unavailable: retry after the given delay.
    #[oai(status = 503)]
    Unavailable(
        Json<ErrorBody>,
        /// Seconds to wait (HTTP's unit; at least 1).
        #[oai(header = "Retry-After")]
        String,
        /// Milliseconds to wait.
        #[oai(header = "Retry-After-Ms")]
        String,
    ),
}

/// `detail` of a request shed by admission control.
pub const OVERLOADED: &str = "Server busy: too many requests at once, retry shortly";

/// `Retry-After` (whole seconds, HTTP's unit, at least 1) and `Retry-After-Ms` (at least 1)
/// for a delay.
pub fn retry_after_values(retry_after: Duration) -> (u64, u64) {
    let ms = retry_after.as_millis().max(1) as u64;
    (ms.div_ceil(1000).max(1), ms)
}

fn body(detail: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        detail: detail.into(),
        retry_after_ms: None,
    })
}

impl ApiError {
    /// 400 with `detail`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::BadRequest(body(detail))
    }
    /// 401 with `detail`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        ApiError::Unauthorized(body(detail))
    }
    /// 403 with `detail`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::Forbidden(body(detail))
    }
    /// 404 with `detail`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::NotFound(body(detail))
    }
    /// 409 with `detail`.
    pub fn conflict(detail: impl Into<String>) -> Self {
        ApiError::Conflict(body(detail))
    }
    /// 410 with `detail`.
    pub fn gone(detail: impl Into<String>) -> Self {
        ApiError::Gone(body(detail))
    }
    /// 422 with `detail`.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        ApiError::Unprocessable(body(detail))
    }
    /// 500; the cause is logged, never shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {cause}");
        ApiError::Internal(body("Internal server error"))
    }
    /// 503 with `Retry-After`: the database is unavailable.
    pub fn unavailable(retry_after: Duration) -> Self {
        Self::retry_later("Database temporarily unavailable", retry_after)
    }

    /// 503 with `Retry-After`: shed by admission control (too many requests at once; the
    /// database is fine).
    pub fn overloaded(retry_after: Duration) -> Self {
        Self::retry_later(OVERLOADED, retry_after)
    }

    /// 503 with `Retry-After` and `detail`: a bounded resource is busy, retry later.
    pub fn retry_later(detail: &str, retry_after: Duration) -> Self {
        let (secs, ms) = retry_after_values(retry_after);
        ApiError::Unavailable(
            Json(ErrorBody {
                detail: detail.into(),
                retry_after_ms: Some(ms),
            }),
            secs.to_string(),
            ms.to_string(),
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `detail` text.
    pub fn detail(&self) -> &str {
        match self {
            ApiError::BadRequest(b)
            | ApiError::Unauthorized(b)
            | ApiError::Forbidden(b)
            | ApiError::NotFound(b)
            | ApiError::Conflict(b)
            | ApiError::Gone(b)
            | ApiError::PayloadTooLarge(b)
            | ApiError::Unprocessable(b)
            | ApiError::Internal(b)
            | ApiError::Unavailable(b, ..) => &b.detail,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable { retry_after } | DbError::Failed { retry_after, .. } => {
                ApiError::unavailable(retry_after)
            }
            DbError::Shed { retry_after } => ApiError::overloaded(retry_after),
            DbError::DuplicateKey(_) => ApiError::conflict("Conflict: this already exists"),
            DbError::Rejected { kind, message } => ApiError::internal(format!(
                "database rejected the operation ({kind}): {message}"
            )),
        }
    }
}

/// The JSON error response for any status and detail.
pub fn json_error(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = serde_json::to_vec(&ErrorBody {
        detail: detail.into(),
        retry_after_ms: None,
    })
    .unwrap_or_default();
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(body)
}

/// Converts every error that escaped a handler into the JSON shape, with the contract's
/// statuses: an unparseable body or query is 422 naming the field, a malformed path
/// parameter is 404, a missing token is 401 `Not authenticated`.
pub async fn json_error_catcher(err: poem::Error) -> Response {
    use poem_openapi::error::{
        AuthorizationError, ContentTypeError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    };
    if err.is_from_response() {
        return err.into_response();
    }
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        return json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Invalid request body: {}", e.reason),
        );
    }
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        return json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Invalid parameter `{}`: {}", e.name, e.reason),
        );
    }
    if err.is::<ParsePathError>() {
        return json_error(StatusCode::NOT_FOUND, "Not found");
    }
    if err.is::<AuthorizationError>() {
        return json_error(StatusCode::UNAUTHORIZED, "Not authenticated");
    }
    if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        return json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{e}: send Content-Type: application/json"),
        );
    }
    let status = err.status();
    let detail = match status {
        StatusCode::NOT_FOUND => "Not Found".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "Method Not Allowed".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => "Request body too large".to_string(),
        s if s.is_server_error() => {
            tracing::error!("unhandled error: {err}");
            "Internal server error".to_string()
        }
        _ => err.to_string(),
    };
    json_error(status, detail)
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
