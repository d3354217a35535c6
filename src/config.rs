//! Configuration: built-in defaults < `config/default.toml` < `config/{APP_ENV}.toml`
//! < optional `.env` < process environment.
//!
//! Every setting has one environment variable (the old Python service's names are kept:
//! `MONGO_URL`, `DB_NAME`, `JWT_SECRET`, `PORT`). The table [`SETTINGS`] is the single
//! list of them; the README's configuration table is checked against it by a test.
//! Secrets (`MONGO_URL`'s password, `JWT_SECRET`) are wrapped so they never print.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::redact::MongoUrl;

/// One configurable setting: its environment variable, its key in the TOML files,
/// its default (as written in the README) and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Environment variable name, e.g. `PORT`.
    pub env: &'static str,
    /// Dotted key in `config/*.toml`, e.g. `http.port`.
    pub key: &'static str,
    /// Default value as documented.
    pub default: &'static str,
    /// One-line description.
    pub doc: &'static str,
}

/// Every setting the service reads. Keep in sync with `RawSettings` (a test checks it).
pub const SETTINGS: &[Setting] = &[
    Setting {
        env: "APP_ENV",
        key: "app_env",
        default: "local",
        doc: "Which config/{APP_ENV}.toml to layer over config/default.toml",
    },
    Setting {
        env: "PORT",
        key: "http.port",
        default: "8001",
        doc: "HTTP port (0 picks a free one)",
    },
    Setting {
        env: "HOST",
        key: "http.host",
        default: "0.0.0.0",
        doc: "Address to listen on",
    },
    Setting {
        env: "HTTP_BODY_LIMIT_BYTES",
        key: "http.body_limit_bytes",
        default: "8388608",
        doc: "Largest accepted request body (photos are base64); larger gets 413",
    },
    Setting {
        env: "HTTP_SHUTDOWN_TIMEOUT_MS",
        key: "http.shutdown_timeout_ms",
        default: "10000",
        doc: "How long in-flight requests may take to finish after SIGTERM",
    },
    Setting {
        env: "CORS_ALLOWED_ORIGINS",
        key: "http.cors_allowed_origins",
        default: "*",
        doc: "Comma-separated allowed origins; * allows every origin (with credentials), as the old service did; Retry-After, Retry-After-Ms and Idempotent-Replayed are exposed to them",
    },
    Setting {
        env: "TRUSTED_PROXIES",
        key: "http.trusted_proxies",
        default: "(none)",
        doc: "Comma-separated addresses or CIDRs of the proxies in front (e.g. the ingress); only a request from one of them has its client address taken from X-Forwarded-For",
    },
    Setting {
        env: "RATE_LIMIT_LOGIN_PER_ADDRESS",
        key: "rate_limit.login_per_address",
        default: "20/1m",
        doc: "Logins per client address (N/period, period in s, m, h or d; off disables); beyond: 429 + Retry-After",
    },
    Setting {
        env: "RATE_LIMIT_LOGIN_PER_ACCOUNT",
        key: "rate_limit.login_per_account",
        default: "10/15m",
        doc: "Login attempts per email, from any address: 10 at once, then one per 90 s",
    },
    Setting {
        env: "RATE_LIMIT_REGISTER_PER_ADDRESS",
        key: "rate_limit.register_per_address",
        default: "10/1h",
        doc: "Registrations per client address",
    },
    Setting {
        env: "RATE_LIMIT_PREVIEW_SESSION_PER_ADDRESS",
        key: "rate_limit.preview_session_per_address",
        default: "10/1h",
        doc: "New preview sessions per client address",
    },
    Setting {
        env: "RATE_LIMIT_PREVIEW_WRITE_PER_ADDRESS",
        key: "rate_limit.preview_write_per_address",
        default: "120/1m",
        doc: "Preview writes (person, link, convert) per client address",
    },
    Setting {
        env: "RATE_LIMIT_PREVIEW_WRITE_PER_SESSION",
        key: "rate_limit.preview_write_per_session",
        default: "60/1m",
        doc: "Preview writes per preview session (the session token is its account)",
    },
    Setting {
        env: "RATE_LIMIT_INVITE_PER_ADDRESS",
        key: "rate_limit.invite_per_address",
        default: "30/1h",
        doc: "Collaborator invitations per client address",
    },
    Setting {
        env: "RATE_LIMIT_INVITE_PER_ACCOUNT",
        key: "rate_limit.invite_per_account",
        default: "20/1h",
        doc: "Collaborator invitations per account",
    },
    Setting {
        env: "RATE_LIMIT_CONTRIBUTION_PER_ADDRESS",
        key: "rate_limit.contribution_per_address",
        default: "120/1h",
        doc: "Contributions submitted per client address",
    },
    Setting {
        env: "RATE_LIMIT_CONTRIBUTION_PER_ACCOUNT",
        key: "rate_limit.contribution_per_account",
        default: "60/1h",
        doc: "Contributions submitted per account",
    },
    Setting {
        env: "RATE_LIMIT_VERIFY_RESEND_PER_ADDRESS",
        key: "rate_limit.verify_resend_per_address",
        default: "10/1h",
        doc: "Verification mails asked again (POST /api/auth/verify-email/resend) per client address",
    },
    Setting {
        env: "RATE_LIMIT_VERIFY_RESEND_PER_ACCOUNT",
        key: "rate_limit.verify_resend_per_account",
        default: "3/1h",
        doc: "Verification mails asked again per account",
    },
    Setting {
        env: "RATE_LIMIT_PASSWORD_RESET_PER_ADDRESS",
        key: "rate_limit.password_reset_per_address",
        default: "10/1h",
        doc: "Password-reset requests per client address",
    },
    Setting {
        env: "RATE_LIMIT_PASSWORD_RESET_PER_ACCOUNT",
        key: "rate_limit.password_reset_per_account",
        default: "3/1h",
        doc: "Password-reset requests per email, from any address (an unknown email is limited the same way)",
    },
    Setting {
        env: "RATE_LIMIT_MAX_KEYS",
        key: "rate_limit.max_keys",
        default: "100000",
        doc: "Addresses or accounts one limiter tracks at most (memory bound); when full after pruning, new requests of that kind get 429",
    },
    Setting {
        env: "RATE_LIMIT_PRUNE_INTERVAL_MS",
        key: "rate_limit.prune_interval_ms",
        default: "60000",
        doc: "How often limiters forget the addresses and accounts back to a full allowance",
    },
    Setting {
        env: "HASH_QUEUE_TIMEOUT_MS",
        key: "limits.hash_queue_timeout_ms",
        default: "2000",
        doc: "Longest wait of a login or registration for a bcrypt slot; beyond: 503 + Retry-After",
    },
    Setting {
        env: "PHOTO_MAX_BYTES",
        key: "limits.photo_max_bytes",
        default: "4194304",
        doc: "Longest photo (base64 text, about 3 MiB of image); longer gets 422",
    },
    Setting {
        env: "PREVIEW_SESSION_MAX_BYTES",
        key: "limits.preview_session_max_bytes",
        default: "12582912",
        doc: "Largest preview session (below MongoDB's 16 MiB document limit); a write that would pass it gets 400",
    },
    Setting {
        env: "MAX_PERSONS_PER_OWNER",
        key: "limits.persons_per_owner",
        default: "1000",
        doc: "Persons one account may hold in its tree; beyond: 400",
    },
    Setting {
        env: "MAX_PENDING_CONTRIBUTIONS",
        key: "limits.pending_contributions_per_contributor",
        default: "50",
        doc: "Pending (not yet reviewed) contributions one contributor may have; beyond: 400",
    },
    Setting {
        env: "TREE_CACHE_MAX_BYTES",
        key: "limits.tree_cache_max_bytes",
        default: "16777216",
        doc: "Memory for this replica's kept GET /api/tree answers (checked against the owner's tree version on every request); 0: off",
    },
    Setting {
        env: "TREE_CACHE_TTL_MS",
        key: "limits.tree_cache_ttl_ms",
        default: "30000",
        doc: "Longest a kept GET /api/tree answer is served: bounds how long a write that bypassed this service (the old service, a script) goes unseen",
    },
    Setting {
        env: "MONGO_URL",
        key: "mongo.url",
        default: "mongodb://localhost:27017",
        doc: "MongoDB connection string (secret: its password is never logged)",
    },
    Setting {
        env: "DB_NAME",
        key: "mongo.db_name",
        default: "aila_db",
        doc: "Database name",
    },
    Setting {
        env: "MONGO_SERVER_SELECTION_TIMEOUT_MS",
        key: "mongo.server_selection_timeout_ms",
        default: "10000",
        doc: "Driver server-selection timeout",
    },
    Setting {
        env: "MONGO_CONNECT_TIMEOUT_MS",
        key: "mongo.connect_timeout_ms",
        default: "3000",
        doc: "Driver connect timeout (also the heartbeat socket timeout): how long a connection attempt into a silent network blocks the driver's monitor before it tries again",
    },
    Setting {
        env: "MONGO_MAX_POOL_SIZE",
        key: "mongo.max_pool_size",
        default: "50",
        doc: "Connection pool maximum",
    },
    Setting {
        env: "MONGO_MIN_POOL_SIZE",
        key: "mongo.min_pool_size",
        default: "10",
        doc: "Connection pool minimum",
    },
    Setting {
        env: "MONGO_RETRY_READS",
        key: "mongo.retry_reads",
        default: "true",
        doc: "Driver retryable reads",
    },
    Setting {
        env: "MONGO_RETRY_WRITES",
        key: "mongo.retry_writes",
        default: "true",
        doc: "Driver retryable writes",
    },
    Setting {
        env: "MONGO_HEARTBEAT_FREQ_MS",
        key: "mongo.heartbeat_freq_ms",
        default: "1000",
        doc: "Driver heartbeat period (minimum 500): how fast a killed database is noticed",
    },
    Setting {
        env: "MONGO_OPERATION_TIMEOUT_MS",
        key: "mongo.operation_timeout_ms",
        default: "5000",
        doc: "Deadline of every database operation (the driver has no socket timeout)",
    },
    Setting {
        env: "MONGO_PING_INTERVAL_MS",
        key: "mongo.ping_interval_ms",
        default: "1000",
        doc: "Ping period while connected (with the ping deadline, bounds how fast a silent database is noticed)",
    },
    Setting {
        env: "MONGO_PING_TIMEOUT_MS",
        key: "mongo.ping_timeout_ms",
        default: "1500",
        doc: "Deadline of each ping (a timed-out ping while no operation succeeds means the database is lost)",
    },
    Setting {
        env: "MONGO_INDEX_TIMEOUT_MS",
        key: "mongo.index_timeout_ms",
        default: "30000",
        doc: "Deadline of each index creation (longer than an operation's; failed indexes are retried while connected)",
    },
    Setting {
        env: "BREAKER_FAILURE_THRESHOLD",
        key: "breaker.failure_threshold",
        default: "5",
        doc: "Consecutive database failures that open the circuit breaker",
    },
    Setting {
        env: "BREAKER_WINDOW_SIZE",
        key: "breaker.window_size",
        default: "50",
        doc: "Database calls in the breaker's sliding window (failure and slow-call rates are judged over it)",
    },
    Setting {
        env: "BREAKER_MINIMUM_CALLS",
        key: "breaker.minimum_calls",
        default: "20",
        doc: "Calls the window must hold before its rates may open the breaker",
    },
    Setting {
        env: "BREAKER_FAILURE_RATE_PERCENT",
        key: "breaker.failure_rate_percent",
        default: "50",
        doc: "Failure rate over the window that opens the breaker",
    },
    Setting {
        env: "BREAKER_SLOW_CALL_RATE_PERCENT",
        key: "breaker.slow_call_rate_percent",
        default: "80",
        doc: "Slow-call rate over the window that opens the breaker",
    },
    Setting {
        env: "BREAKER_SLOW_CALL_MS",
        key: "breaker.slow_call_ms",
        default: "2000",
        doc: "A database call taking this long or longer is slow",
    },
    Setting {
        env: "BREAKER_HALF_OPEN_CALLS",
        key: "breaker.half_open_calls",
        default: "3",
        doc: "Trial operations let through while half-open; that many successes close the breaker",
    },
    Setting {
        env: "BREAKER_OPEN_INITIAL_MS",
        key: "breaker.open_initial_ms",
        default: "250",
        doc: "First open period of the breaker",
    },
    Setting {
        env: "BREAKER_OPEN_MAX_MS",
        key: "breaker.open_max_ms",
        default: "10000",
        doc: "Longest open period (the period doubles, jittered, up to this)",
    },
    Setting {
        env: "RECONNECT_INITIAL_MS",
        key: "reconnect.initial_ms",
        default: "100",
        doc: "First delay between reconnect pings",
    },
    Setting {
        env: "RECONNECT_MAX_MS",
        key: "reconnect.max_ms",
        default: "1000",
        doc: "Longest delay between reconnect pings (bounds how long readiness lags a database that answers again)",
    },
    Setting {
        env: "ADMISSION_MAX_IN_FLIGHT",
        key: "admission.max_in_flight",
        default: "40",
        doc: "Highest adaptive limit of concurrent database calls (capped at MONGO_MAX_POOL_SIZE - 2, so no call waits for a pooled connection)",
    },
    Setting {
        env: "ADMISSION_MIN_IN_FLIGHT",
        key: "admission.min_in_flight",
        default: "4",
        doc: "Lowest adaptive limit of concurrent database calls",
    },
    Setting {
        env: "ADMISSION_QUEUE_LENGTH",
        key: "admission.queue_length",
        default: "64",
        doc: "Database calls that may wait for a slot; beyond it they are shed at once (503 + Retry-After)",
    },
    Setting {
        env: "ADMISSION_QUEUE_TIMEOUT_MS",
        key: "admission.queue_timeout_ms",
        default: "50",
        doc: "Longest wait for a slot before a queued call is shed",
    },
    Setting {
        env: "PREVIEW_SWEEP_INTERVAL_MS",
        key: "preview.sweep_interval_ms",
        default: "60000",
        doc: "How often expired preview sessions are deleted (the TTL index does it where the server supports it)",
    },
    Setting {
        env: "IDEMPOTENCY_KEY_TTL_SECS",
        key: "idempotency.key_ttl_secs",
        default: "86400",
        doc: "How long an Idempotency-Key and its stored answer count (a repeat after that runs again)",
    },
    Setting {
        env: "IDEMPOTENCY_SWEEP_INTERVAL_MS",
        key: "idempotency.sweep_interval_ms",
        default: "60000",
        doc: "How often expired idempotency keys are deleted (the TTL index does it where the server supports it)",
    },
    Setting {
        env: "HEALTH_SHOW_ERRORS",
        key: "http.health_show_errors",
        default: "(true; false when APP_ENV=production)",
        doc: "true shows the database's error text (driver messages) in /health and /readiness; their state fields are always shown",
    },
    Setting {
        env: "JWT_SECRET",
        key: "auth.jwt_secret",
        default: "(generated, ephemeral)",
        doc: "HS256 secret for tokens (secret); unset: a random one, tokens die with the process",
    },
    Setting {
        env: "SMTP_URL",
        key: "mail.smtp_url",
        default: "(unset: mail off)",
        doc: "Outgoing mail server, smtp://user:password@host:587?tls=required (or smtps://, or smtp://host:port without TLS for a local catcher); secret: never logged. Unset: email verification, invitation mails and password reset are off (their routes answer 503)",
    },
    Setting {
        env: "MAIL_FROM",
        key: "mail.from",
        default: "AÏLA <no-reply@localhost>",
        doc: "Sender of the service's mails (name and address)",
    },
    Setting {
        env: "PUBLIC_BASE_URL",
        key: "mail.public_base_url",
        default: "http://localhost:8001",
        doc: "Address of the service as a browser reaches it: the base of the links in mails (verification, password reset) and of the app link in invitations",
    },
    Setting {
        env: "MAIL_QUEUE_LENGTH",
        key: "mail.queue_length",
        default: "1000",
        doc: "Mails waiting to be sent at most; beyond, a new mail is dropped (logged, counted) and the request that asked for it still succeeds",
    },
    Setting {
        env: "MAIL_ATTEMPT_TIMEOUT_MS",
        key: "mail.attempt_timeout_ms",
        default: "10000",
        doc: "Deadline of one delivery attempt (connect, TLS, SMTP dialogue)",
    },
    Setting {
        env: "MAIL_RETRY_INITIAL_MS",
        key: "mail.retry_initial_ms",
        default: "1000",
        doc: "First delay before retrying a failed delivery (then doubling, jittered, up to 60 s)",
    },
    Setting {
        env: "MAIL_DEADLINE_MS",
        key: "mail.deadline_ms",
        default: "900000",
        doc: "How long one mail is retried at most before it is given up (counted as failed)",
    },
    Setting {
        env: "EMAIL_VERIFICATION_TTL_MS",
        key: "mail.verification_ttl_ms",
        default: "172800000",
        doc: "How long an email verification link stays valid (48 h)",
    },
    Setting {
        env: "PASSWORD_RESET_TTL_MS",
        key: "mail.password_reset_ttl_ms",
        default: "1800000",
        doc: "How long a password-reset link stays valid (30 min)",
    },
    Setting {
        env: "LOG_FORMAT",
        key: "log.format",
        default: "text",
        doc: "text or json (json carries trace_id and span_id)",
    },
    Setting {
        env: "RUST_LOG",
        key: "log.filter",
        default: "info",
        doc: "Log filter (tracing EnvFilter syntax)",
    },
    Setting {
        env: "OTEL_EXPORTER_OTLP_ENDPOINT",
        key: "otel.endpoint",
        default: "http://localhost:4317",
        doc: "OTLP gRPC endpoint for traces",
    },
    Setting {
        env: "OTEL_SDK_DISABLED",
        key: "otel.disabled",
        default: "false",
        doc: "true turns trace export off",
    },
    Setting {
        env: "OTEL_SERVICE_NAME",
        key: "otel.service_name",
        default: "aila-api",
        doc: "service.name resource attribute",
    },
    Setting {
        env: "JAEGER_UI_URL",
        key: "otel.ui_url",
        default: "(unset: no link)",
        doc: "Jaeger UI address as a browser reaches it, e.g. http://localhost:16686; the start-up log line then links its trace ({JAEGER_UI_URL}/trace/{id})",
    },
];

/// The settings as deserialised from all layers, before validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    app_env: String,
    http: HttpSettings,
    mongo: RawMongo,
    breaker: BreakerSettings,
    reconnect: ReconnectSettings,
    admission: AdmissionSettings,
    preview: PreviewSettings,
    idempotency: IdempotencySettings,
    rate_limit: RawRateLimits,
    limits: LimitSettings,
    auth: RawAuth,
    mail: RawMail,
    log: LogSettings,
    otel: OtelSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMongo {
    url: Option<String>,
    db_name: String,
    server_selection_timeout_ms: u64,
    connect_timeout_ms: u64,
    max_pool_size: u32,
    min_pool_size: u32,
    retry_reads: bool,
    retry_writes: bool,
    heartbeat_freq_ms: u64,
    operation_timeout_ms: u64,
    ping_interval_ms: u64,
    ping_timeout_ms: u64,
    index_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimits {
    login_per_address: String,
    login_per_account: String,
    register_per_address: String,
    preview_session_per_address: String,
    preview_write_per_address: String,
    preview_write_per_session: String,
    invite_per_address: String,
    invite_per_account: String,
    contribution_per_address: String,
    contribution_per_account: String,
    verify_resend_per_address: String,
    verify_resend_per_account: String,
    password_reset_per_address: String,
    password_reset_per_account: String,
    max_keys: usize,
    prune_interval_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    smtp_url: Option<String>,
    from: String,
    public_base_url: String,
    queue_length: usize,
    attempt_timeout_ms: u64,
    retry_initial_ms: u64,
    deadline_ms: u64,
    verification_ttl_ms: u64,
    password_reset_ttl_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    jwt_secret: Option<String>,
}

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Listen address.
    pub host: String,
    /// Listen port; 0 picks a free port.
    pub port: u16,
    /// Largest request body accepted.
    pub body_limit_bytes: usize,
    /// Drain time for in-flight requests at shutdown.
    pub shutdown_timeout_ms: u64,
    /// Allowed CORS origins, comma separated; `*` for all.
    pub cors_allowed_origins: String,
    /// Show the database's error text in `/health` and `/readiness`; unset: true except
    /// when `APP_ENV=production` (resolved in [`Settings::health_show_errors`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_show_errors: Option<bool>,
    /// Proxies whose `X-Forwarded-For` is believed, comma separated (addresses or CIDRs).
    #[serde(default)]
    pub trusted_proxies: String,
}

/// A rate: `count` requests at once, then one more every `period / count` (the period
/// refills the whole allowance). Written `N/period`, e.g. `20/1m`, `10/15m`, `100/1d`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed at once (the burst).
    pub count: u32,
    /// Time to refill the whole allowance.
    pub period: Duration,
}

impl std::fmt::Debug for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}s", self.count, self.period.as_secs())
    }
}

impl Rate {
    /// Parses `N/period` (period: a number followed by `s`, `m`, `h` or `d`; a bare unit
    /// means 1); `off` gives `None` (no limit).
    pub fn parse(raw: &str) -> Result<Option<Rate>, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let bad = || {
            format!("{raw:?} is not a rate: write N/period, e.g. 20/1m, 10/15m or 5/1h (or off)")
        };
        let (count, period) = raw.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let period = period.trim();
        let unit = period.chars().last().ok_or_else(bad)?;
        let amount = &period[..period.len() - unit.len_utf8()];
        let amount: u64 = if amount.is_empty() {
            1
        } else {
            amount.parse().map_err(|_| bad())?
        };
        let secs = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        if count == 0 || amount == 0 {
            return Err(bad());
        }
        Ok(Some(Rate {
            count,
            period: Duration::from_secs(amount * secs),
        }))
    }
}

/// Rate limits of the abuse-prone routes (`None`: no limit).
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// `POST /api/auth/login` per client address.
    pub login_per_address: Option<Rate>,
    /// `POST /api/auth/login` per email.
    pub login_per_account: Option<Rate>,
    /// `POST /api/auth/register` per client address.
    pub register_per_address: Option<Rate>,
    /// `POST /api/preview/session` per client address.
    pub preview_session_per_address: Option<Rate>,
    /// Preview writes per client address.
    pub preview_write_per_address: Option<Rate>,
    /// Preview writes per session.
    pub preview_write_per_session: Option<Rate>,
    /// Invitations per client address.
    pub invite_per_address: Option<Rate>,
    /// Invitations per account.
    pub invite_per_account: Option<Rate>,
    /// Contributions per client address.
    pub contribution_per_address: Option<Rate>,
    /// Contributions per account.
    pub contribution_per_account: Option<Rate>,
    /// Verification mails asked again per client address.
    pub verify_resend_per_address: Option<Rate>,
    /// Verification mails asked again per account.
    pub verify_resend_per_account: Option<Rate>,
    /// Password-reset requests per client address.
    pub password_reset_per_address: Option<Rate>,
    /// Password-reset requests per email.
    pub password_reset_per_account: Option<Rate>,
    /// Keys one limiter tracks at most.
    pub max_keys: usize,
    /// Pruning period.
    pub prune_interval: Duration,
}

/// Circuit-breaker thresholds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// Calls in the sliding window.
    pub window_size: u32,
    /// Calls needed before the window's rates count.
    pub minimum_calls: u32,
    /// Failure rate that opens the breaker, percent.
    pub failure_rate_percent: u32,
    /// Slow-call rate that opens the breaker, percent.
    pub slow_call_rate_percent: u32,
    /// A call this long or longer is slow, milliseconds.
    pub slow_call_ms: u64,
    /// Trial operations while half-open.
    pub half_open_calls: u32,
    /// First open period, milliseconds.
    pub open_initial_ms: u64,
    /// Longest open period, milliseconds.
    pub open_max_ms: u64,
}

/// Reconnect-loop backoff.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectSettings {
    /// First delay, milliseconds.
    pub initial_ms: u64,
    /// Delay cap, milliseconds.
    pub max_ms: u64,
}

/// Admission control in front of the database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionSettings {
    /// Highest concurrency limit.
    pub max_in_flight: u32,
    /// Lowest concurrency limit.
    pub min_in_flight: u32,
    /// Calls that may wait for a slot.
    pub queue_length: u32,
    /// Longest wait for a slot, milliseconds.
    pub queue_timeout_ms: u64,
}

/// Caps on the work and storage one request or one account may cause.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Longest wait for a bcrypt slot, milliseconds.
    pub hash_queue_timeout_ms: u64,
    /// Longest photo (base64 characters).
    pub photo_max_bytes: usize,
    /// Largest preview session document, bytes.
    pub preview_session_max_bytes: usize,
    /// Persons per account.
    pub persons_per_owner: u64,
    /// Pending contributions per contributor.
    pub pending_contributions_per_contributor: u64,
    /// Bytes of kept tree answers (0: no cache).
    pub tree_cache_max_bytes: u64,
    /// Longest a kept tree answer is served, milliseconds.
    pub tree_cache_ttl_ms: u64,
}

/// Preview-session housekeeping.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewSettings {
    /// Period of the expired-session sweep, milliseconds.
    pub sweep_interval_ms: u64,
}

/// `Idempotency-Key` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencySettings {
    /// How long a key counts, seconds.
    pub key_ttl_secs: u64,
    /// Period of the expired-key sweep, milliseconds.
    pub sweep_interval_ms: u64,
}

/// Log output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// EnvFilter directives.
    pub filter: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line with trace and span ids.
    Json,
}

/// OpenTelemetry export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtelSettings {
    /// OTLP gRPC endpoint.
    pub endpoint: String,
    /// Export off.
    pub disabled: bool,
    /// `service.name`.
    pub service_name: String,
    /// Jaeger UI base address (no trailing `/`), for links to traces in log lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_url: Option<String>,
}

impl OtelSettings {
    /// The link to trace `trace_id` in the Jaeger UI, when its address is configured.
    pub fn trace_url(&self, trace_id: &str) -> Option<String> {
        self.ui_url
            .as_ref()
            .map(|base| format!("{base}/trace/{trace_id}"))
    }
}

/// MongoDB settings after validation.
#[derive(Debug, Clone)]
pub struct MongoSettings {
    /// Connection string; its password never prints.
    pub url: MongoUrl,
    /// True when `MONGO_URL` was not set anywhere and the local default is used.
    pub url_defaulted: bool,
    /// Database name.
    pub db_name: String,
    /// Driver server-selection timeout.
    pub server_selection_timeout: Duration,
    /// Driver connect timeout.
    pub connect_timeout: Duration,
    /// Pool maximum.
    pub max_pool_size: u32,
    /// Pool minimum.
    pub min_pool_size: u32,
    /// Retryable reads.
    pub retry_reads: bool,
    /// Retryable writes.
    pub retry_writes: bool,
    /// Heartbeat period.
    pub heartbeat_freq: Duration,
    /// Deadline of every operation.
    pub operation_timeout: Duration,
    /// Ping period while connected.
    pub ping_interval: Duration,
    /// Deadline of one ping.
    pub ping_timeout: Duration,
    /// Deadline of one index creation.
    pub index_timeout: Duration,
}

/// `SMTP_URL`: the outgoing mail server, credentials included. Never printed: its `Debug`
/// and [`SmtpUrl::redacted`] show the scheme, host and port only.
#[derive(Clone)]
pub struct SmtpUrl(SecretString);

impl SmtpUrl {
    /// Checks `raw` (smtp or smtps, a host); the error never repeats the value.
    pub fn parse(raw: &str) -> Result<SmtpUrl, String> {
        let url = url::Url::parse(raw.trim()).map_err(|e| {
            format!("SMTP_URL is not a URL ({e}); expected smtp://user:password@host:587?tls=required, smtps://... or smtp://host:port")
        })?;
        if !matches!(url.scheme(), "smtp" | "smtps") {
            return Err(format!(
                "SMTP_URL has scheme {:?}; expected smtp:// or smtps://",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("SMTP_URL names no host".into());
        }
        for (k, v) in url.query_pairs() {
            if k != "tls" || !matches!(v.as_ref(), "required" | "opportunistic") {
                return Err(format!(
                    "SMTP_URL has query parameter {k:?}; only tls=required or tls=opportunistic is understood"
                ));
            }
        }
        Ok(SmtpUrl(SecretString::from(raw.trim().to_string())))
    }

    /// The URL with its credentials, for the mail transport only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// `scheme://host:port` (no user, no password), for logs and `/health`.
    pub fn redacted(&self) -> String {
        match url::Url::parse(self.expose()) {
            Ok(u) => format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            ),
            Err(_) => "****".into(),
        }
    }
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmtpUrl({})", self.redacted())
    }
}

/// Outgoing mail and the links it carries.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// The mail server; `None`: mail is off.
    pub smtp_url: Option<SmtpUrl>,
    /// Sender, `Name <address>`.
    pub from: String,
    /// Base of the links in mails, without trailing `/`.
    pub public_base_url: String,
    /// Mails waiting at most.
    pub queue_length: usize,
    /// Deadline of one delivery attempt.
    pub attempt_timeout: Duration,
    /// First retry delay.
    pub retry_initial: Duration,
    /// How long one mail is retried at most.
    pub deadline: Duration,
    /// Validity of an email verification link.
    pub verification_ttl: Duration,
    /// Validity of a password-reset link.
    pub password_reset_ttl: Duration,
}

/// The warning logged at start-up and shown in `/health` when `SMTP_URL` is unset.
pub const MAIL_OFF_WARNING: &str = "SMTP_URL is not set: mail is off; email verification, invitation mails and password reset are unavailable (their routes answer 503) and invitations stay pending";

/// Shortest `JWT_SECRET` accepted in production (warned about elsewhere): 256 bits, the
/// size of HS256's key.
pub const JWT_SECRET_MIN_BYTES: usize = 32;

/// Where the JWT secret came from.
#[derive(Debug, Clone)]
pub struct JwtSecret {
    /// The secret itself.
    pub secret: SecretString,
    /// Generated at start-up because none was configured.
    pub ephemeral: bool,
}

/// Validated settings of the whole service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Environment name (`local`, `production`, ...).
    pub app_env: String,
    /// HTTP server.
    pub http: HttpSettings,
    /// Database.
    pub mongo: MongoSettings,
    /// Breaker thresholds.
    pub breaker: BreakerSettings,
    /// Reconnect backoff.
    pub reconnect: ReconnectSettings,
    /// Admission control (`max_in_flight` already capped below the pool size).
    pub admission: AdmissionSettings,
    /// Preview housekeeping.
    pub preview: PreviewSettings,
    /// Idempotency keys.
    pub idempotency: IdempotencySettings,
    /// Rate limits.
    pub rate_limit: RateLimitSettings,
    /// Caps on work and storage.
    pub limits: LimitSettings,
    /// JWT secret.
    pub jwt: JwtSecret,
    /// Outgoing mail.
    pub mail: MailSettings,
    /// Whether `/health` and `/readiness` show the database's error text.
    pub health_show_errors: bool,
    /// Logging.
    pub log: LogSettings,
    /// Tracing export.
    pub otel: OtelSettings,
    /// What happened while loading (e.g. whether `.env` was read), to log once logging is up.
    pub load_report: Vec<String>,
    /// Warnings worth showing in `/health` too (ephemeral JWT secret, default MONGO_URL).
    pub warnings: Vec<String>,
}

/// Where to read configuration from. `main` passes the real process environment;
/// tests pass their own maps and folders so they never touch global state.
#[derive(Debug, Clone)]
pub struct ConfigSources {
    /// Folder holding `default.toml` and `{APP_ENV}.toml`.
    pub config_dir: PathBuf,
    /// Path of the optional `.env` file.
    pub dotenv_path: PathBuf,
    /// The process environment.
    pub env: HashMap<String, String>,
}

impl ConfigSources {
    /// The real sources: `./config`, `./.env`, `std::env::vars()`.
    pub fn from_process() -> Self {
        Self {
            config_dir: PathBuf::from("config"),
            dotenv_path: PathBuf::from(".env"),
            env: std::env::vars().collect(),
        }
    }
}

/// A setting the operator typed that cannot be used. Its Display is the one line
/// start-up prints before exiting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

fn built_in_defaults() -> RawSettings {
    RawSettings {
        app_env: "local".into(),
        http: HttpSettings {
            host: "0.0.0.0".into(),
            port: 8001,
            body_limit_bytes: 8 * 1024 * 1024,
            shutdown_timeout_ms: 10_000,
            cors_allowed_origins: "*".into(),
            health_show_errors: None,
            trusted_proxies: String::new(),
        },
        mongo: RawMongo {
            url: None,
            db_name: "aila_db".into(),
            server_selection_timeout_ms: 10_000,
            connect_timeout_ms: 3_000,
            max_pool_size: 50,
            min_pool_size: 10,
            retry_reads: true,
            retry_writes: true,
            heartbeat_freq_ms: 1_000,
            operation_timeout_ms: 5_000,
            ping_interval_ms: 1_000,
            ping_timeout_ms: 1_500,
            index_timeout_ms: 30_000,
        },
        breaker: BreakerSettings {
            failure_threshold: 5,
            window_size: 50,
            minimum_calls: 20,
            failure_rate_percent: 50,
            slow_call_rate_percent: 80,
            slow_call_ms: 2_000,
            half_open_calls: 3,
            open_initial_ms: 250,
            open_max_ms: 10_000,
        },
        reconnect: ReconnectSettings {
            initial_ms: 100,
            max_ms: 1_000,
        },
        admission: AdmissionSettings {
            max_in_flight: 40,
            min_in_flight: 4,
            queue_length: 64,
            queue_timeout_ms: 50,
        },
        preview: PreviewSettings {
            sweep_interval_ms: 60_000,
        },
        idempotency: IdempotencySettings {
            key_ttl_secs: 24 * 60 * 60,
            sweep_interval_ms: 60_000,
        },
        rate_limit: RawRateLimits {
            login_per_address: "20/1m".into(),
            login_per_account: "10/15m".into(),
            register_per_address: "10/1h".into(),
            preview_session_per_address: "10/1h".into(),
            preview_write_per_address: "120/1m".into(),
            preview_write_per_session: "60/1m".into(),
            invite_per_address: "30/1h".into(),
            invite_per_account: "20/1h".into(),
            contribution_per_address: "120/1h".into(),
            contribution_per_account: "60/1h".into(),
            verify_resend_per_address: "10/1h".into(),
            verify_resend_per_account: "3/1h".into(),
            password_reset_per_address: "10/1h".into(),
            password_reset_per_account: "3/1h".into(),
            max_keys: 100_000,
            prune_interval_ms: 60_000,
        },
        limits: LimitSettings {
            hash_queue_timeout_ms: 2_000,
            photo_max_bytes: 4 * 1024 * 1024,
            preview_session_max_bytes: 12 * 1024 * 1024,
            persons_per_owner: 1_000,
            pending_contributions_per_contributor: 50,
            tree_cache_max_bytes: 16 * 1024 * 1024,
            tree_cache_ttl_ms: 30_000,
        },
        auth: RawAuth { jwt_secret: None },
        mail: RawMail {
            smtp_url: None,
            from: "AÏLA <no-reply@localhost>".into(),
            public_base_url: "http://localhost:8001".into(),
            queue_length: 1_000,
            attempt_timeout_ms: 10_000,
            retry_initial_ms: 1_000,
            deadline_ms: 900_000,
            verification_ttl_ms: 48 * 3_600_000,
            password_reset_ttl_ms: 1_800_000,
        },
        log: LogSettings {
            format: LogFormat::Text,
            filter: "info".into(),
        },
        otel: OtelSettings {
            endpoint: "http://localhost:4317".into(),
            disabled: false,
            service_name: "aila-api".into(),
            ui_url: None,
        },
    }
}

/// Reads the `.env` file if it exists, without touching the process environment.
fn read_dotenv(
    path: &Path,
    report: &mut Vec<String>,
) -> Result<HashMap<String, String>, ConfigError> {
    if !path.exists() {
        report.push(format!(
            "No .env file found at {}, using environment variables from system",
            path.display()
        ));
        return Ok(HashMap::new());
    }
    let iter = dotenvy::from_path_iter(path)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
    let mut vars = HashMap::new();
    for item in iter {
        let (k, v) = item.map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        vars.insert(k, v);
    }
    report.push(format!(
        "Loaded environment variables from {}",
        path.display()
    ));
    Ok(vars)
}

/// Layers the known variables of one environment map over `figment`.
fn layer_env(mut figment: Figment, vars: &HashMap<String, String>, name: &str) -> Figment {
    for setting in SETTINGS {
        if let Some(raw) = vars.get(setting.env) {
            let value = if is_string_setting(setting.key) {
                figment::value::Value::from(raw.clone())
            } else {
                raw.parse::<figment::value::Value>()
                    .expect("figment value parsing is infallible")
            };
            figment = figment
                .merge(Serialized::default(setting.key, value).profile(figment::Profile::Default));
            let _ = name;
        }
    }
    figment
}

/// Settings whose values are text even when they look like numbers or booleans.
fn is_string_setting(key: &str) -> bool {
    matches!(
        key,
        "app_env"
            | "http.host"
            | "http.cors_allowed_origins"
            | "http.trusted_proxies"
            | "mongo.url"
            | "mongo.db_name"
            | "auth.jwt_secret"
            | "mail.smtp_url"
            | "mail.from"
            | "mail.public_base_url"
            | "log.filter"
            | "otel.endpoint"
            | "otel.service_name"
            | "otel.ui_url"
            | "log.format"
    ) || key.starts_with("rate_limit.")
        && !matches!(key, "rate_limit.max_keys" | "rate_limit.prune_interval_ms")
}

fn explain(err: figment::Error, layers: &[(&str, &HashMap<String, String>)]) -> ConfigError {
    let key = err.path.join(".");
    let setting = SETTINGS.iter().find(|s| s.key == key);
    let mut origin = String::from("a config file");
    let mut shown = String::new();
    if let Some(s) = setting {
        for (name, vars) in layers.iter().rev() {
            if let Some(v) = vars.get(s.env) {
                origin = format!("{} ({name})", s.env);
                shown = if matches!(s.key, "mongo.url" | "auth.jwt_secret" | "mail.smtp_url") {
                    "\"****\"".into()
                } else {
                    format!("{v:?}")
                };
                break;
            }
        }
    }
    let what = match &err.kind {
        figment::error::Kind::InvalidType(actual, expected) => {
            format!("expected {expected}, found {actual}")
        }
        figment::error::Kind::InvalidValue(actual, expected) => {
            format!("expected {expected}, found {actual}")
        }
        other => other.to_string(),
    };
    if shown.is_empty() {
        ConfigError(format!("{key} in {origin}: {what}"))
    } else {
        ConfigError(format!("{origin} = {shown} is not valid for {key}: {what}"))
    }
}

impl Settings {
    /// Loads and validates the settings from `sources`.
    pub fn load(sources: &ConfigSources) -> Result<Settings, ConfigError> {
        let mut report = Vec::new();
        let dotenv = read_dotenv(&sources.dotenv_path, &mut report)?;
        let app_env = sources
            .env
            .get("APP_ENV")
            .or_else(|| dotenv.get("APP_ENV"))
            .cloned()
            .unwrap_or_else(|| "local".into());
        if app_env.is_empty()
            || !app_env
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError(format!(
                "APP_ENV = {app_env:?} must be a plain name such as local or production"
            )));
        }
        let mut figment = Figment::from(Serialized::defaults(built_in_defaults()));
        for file in ["default".to_string(), app_env.clone()] {
            let path = sources.config_dir.join(format!("{file}.toml"));
            if path.exists() {
                report.push(format!("Read configuration file {}", path.display()));
                figment = figment.merge(Toml::file(&path));
            }
        }
        figment = layer_env(figment, &dotenv, ".env");
        figment = layer_env(figment, &sources.env, "environment");
        let layers: [(&str, &HashMap<String, String>); 2] =
            [(".env", &dotenv), ("environment", &sources.env)];
        let raw: RawSettings = figment.extract().map_err(|e| explain(e, &layers))?;
        Self::validate(raw, report)
    }

    fn validate(raw: RawSettings, load_report: Vec<String>) -> Result<Settings, ConfigError> {
        let mut warnings = Vec::new();
        let positive = |key: &str, v: u64| {
            if v == 0 {
                Err(ConfigError(format!(
                    "{key} = 0 must be a positive number of milliseconds"
                )))
            } else {
                Ok(())
            }
        };
        positive(
            "mongo.server_selection_timeout_ms",
            raw.mongo.server_selection_timeout_ms,
        )?;
        positive("mongo.connect_timeout_ms", raw.mongo.connect_timeout_ms)?;
        positive("mongo.operation_timeout_ms", raw.mongo.operation_timeout_ms)?;
        positive("mongo.ping_interval_ms", raw.mongo.ping_interval_ms)?;
        positive("mongo.ping_timeout_ms", raw.mongo.ping_timeout_ms)?;
        positive("mongo.index_timeout_ms", raw.mongo.index_timeout_ms)?;
        positive("breaker.slow_call_ms", raw.breaker.slow_call_ms)?;
        positive("admission.queue_timeout_ms", raw.admission.queue_timeout_ms)?;
        for (name, v) in [
            ("BREAKER_WINDOW_SIZE", raw.breaker.window_size),
            ("BREAKER_MINIMUM_CALLS", raw.breaker.minimum_calls),
            ("BREAKER_HALF_OPEN_CALLS", raw.breaker.half_open_calls),
            ("ADMISSION_MAX_IN_FLIGHT", raw.admission.max_in_flight),
            ("ADMISSION_MIN_IN_FLIGHT", raw.admission.min_in_flight),
        ] {
            if v == 0 {
                return Err(ConfigError(format!("{name} = 0 must be at least 1")));
            }
        }
        for (name, v) in [
            (
                "BREAKER_FAILURE_RATE_PERCENT",
                raw.breaker.failure_rate_percent,
            ),
            (
                "BREAKER_SLOW_CALL_RATE_PERCENT",
                raw.breaker.slow_call_rate_percent,
            ),
        ] {
            if !(1..=100).contains(&v) {
                return Err(ConfigError(format!(
                    "{name} = {v} must be a percentage between 1 and 100"
                )));
            }
        }
        if raw.breaker.minimum_calls > raw.breaker.window_size {
            return Err(ConfigError(format!(
                "BREAKER_MINIMUM_CALLS = {} is above BREAKER_WINDOW_SIZE = {}: the rates could never be judged",
                raw.breaker.minimum_calls, raw.breaker.window_size
            )));
        }
        if raw.admission.min_in_flight > raw.admission.max_in_flight {
            return Err(ConfigError(format!(
                "ADMISSION_MIN_IN_FLIGHT = {} is above ADMISSION_MAX_IN_FLIGHT = {}",
                raw.admission.min_in_flight, raw.admission.max_in_flight
            )));
        }
        positive("breaker.open_initial_ms", raw.breaker.open_initial_ms)?;
        positive("reconnect.initial_ms", raw.reconnect.initial_ms)?;
        positive("preview.sweep_interval_ms", raw.preview.sweep_interval_ms)?;
        positive("idempotency.key_ttl_secs", raw.idempotency.key_ttl_secs)?;
        positive(
            "idempotency.sweep_interval_ms",
            raw.idempotency.sweep_interval_ms,
        )?;
        positive(
            "rate_limit.prune_interval_ms",
            raw.rate_limit.prune_interval_ms,
        )?;
        crate::http::client_addr::TrustedProxies::parse(&raw.http.trusted_proxies)
            .map_err(|e| ConfigError(format!("TRUSTED_PROXIES: {e}")))?;
        let rate_limit = rate_limits(&raw.rate_limit)?;
        if raw.mongo.heartbeat_freq_ms < 500 {
            return Err(ConfigError(format!(
                "MONGO_HEARTBEAT_FREQ_MS = {} is below the driver's minimum of 500",
                raw.mongo.heartbeat_freq_ms
            )));
        }
        if raw.mongo.max_pool_size == 0 || raw.mongo.min_pool_size > raw.mongo.max_pool_size {
            return Err(ConfigError(format!(
                "MONGO_MIN_POOL_SIZE = {} and MONGO_MAX_POOL_SIZE = {} must satisfy 0 <= min <= max, max > 0",
                raw.mongo.min_pool_size, raw.mongo.max_pool_size
            )));
        }
        if raw.breaker.failure_threshold == 0 {
            return Err(ConfigError(
                "BREAKER_FAILURE_THRESHOLD = 0 must be at least 1".into(),
            ));
        }
        if raw.breaker.open_max_ms < raw.breaker.open_initial_ms {
            return Err(ConfigError(format!(
                "BREAKER_OPEN_MAX_MS = {} is below BREAKER_OPEN_INITIAL_MS = {}",
                raw.breaker.open_max_ms, raw.breaker.open_initial_ms
            )));
        }
        if raw.reconnect.max_ms < raw.reconnect.initial_ms {
            return Err(ConfigError(format!(
                "RECONNECT_MAX_MS = {} is below RECONNECT_INITIAL_MS = {}",
                raw.reconnect.max_ms, raw.reconnect.initial_ms
            )));
        }
        if raw.mongo.db_name.is_empty()
            || raw.mongo.db_name.contains(['/', '\\', '.', ' ', '"', '$'])
        {
            return Err(ConfigError(format!(
                "DB_NAME = {:?} is not a valid MongoDB database name",
                raw.mongo.db_name
            )));
        }
        let url_defaulted = raw.mongo.url.as_deref().is_none_or(str::is_empty);
        let url = match raw.mongo.url.filter(|u| !u.is_empty()) {
            Some(u) => u,
            None => {
                warnings.push("MONGO_URL is not set: using mongodb://localhost:27017".to_string());
                "mongodb://localhost:27017".to_string()
            }
        };
        let jwt = match raw.auth.jwt_secret.filter(|s| !s.is_empty()) {
            Some(s) => JwtSecret {
                secret: SecretString::from(s),
                ephemeral: false,
            },
            None => {
                warnings.push(
                    "JWT_SECRET is not set: generated an ephemeral secret; tokens will not survive a restart or work across replicas"
                        .to_string(),
                );
                JwtSecret {
                    secret: SecretString::from(generate_secret()),
                    ephemeral: true,
                }
            }
        };
        if !jwt.ephemeral {
            let len = jwt.secret.expose_secret().len();
            if len < JWT_SECRET_MIN_BYTES {
                let what = format!(
                    "JWT_SECRET is {len} bytes, shorter than {JWT_SECRET_MIN_BYTES}: anyone who guesses it can sign tokens for any user; set a random one of at least {JWT_SECRET_MIN_BYTES} bytes (e.g. `openssl rand -hex 32`), the same on every replica"
                );
                if raw.app_env == "production" {
                    return Err(ConfigError(format!(
                        "{what} (APP_ENV=production refuses to start with a short secret)"
                    )));
                }
                warnings.push(format!(
                    "{what}; APP_ENV=production would refuse to start with it"
                ));
            }
        }
        let health_show_errors = raw
            .http
            .health_show_errors
            .unwrap_or(raw.app_env != "production");
        let mut otel = raw.otel;
        otel.ui_url = match otel.ui_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => Some(ui_url(u)?),
        };
        let mail = mail_settings(raw.mail, &mut warnings)?;
        let ms = Duration::from_millis;
        Ok(Settings {
            app_env: raw.app_env,
            http: raw.http,
            mongo: MongoSettings {
                url: MongoUrl::new(url),
                url_defaulted,
                db_name: raw.mongo.db_name,
                server_selection_timeout: ms(raw.mongo.server_selection_timeout_ms),
                connect_timeout: ms(raw.mongo.connect_timeout_ms),
                max_pool_size: raw.mongo.max_pool_size,
                min_pool_size: raw.mongo.min_pool_size,
                retry_reads: raw.mongo.retry_reads,
                retry_writes: raw.mongo.retry_writes,
                heartbeat_freq: ms(raw.mongo.heartbeat_freq_ms),
                operation_timeout: ms(raw.mongo.operation_timeout_ms),
                ping_interval: ms(raw.mongo.ping_interval_ms),
                ping_timeout: ms(raw.mongo.ping_timeout_ms),
                index_timeout: ms(raw.mongo.index_timeout_ms),
            },
            breaker: raw.breaker,
            reconnect: raw.reconnect,
            admission: AdmissionSettings {
                // Two pooled connections stay free for the supervisor's ping and index work.
                max_in_flight: raw
                    .admission
                    .max_in_flight
                    .min(raw.mongo.max_pool_size.saturating_sub(2).max(1)),
                min_in_flight: raw.admission.min_in_flight.min(
                    raw.admission
                        .max_in_flight
                        .min(raw.mongo.max_pool_size.saturating_sub(2).max(1)),
                ),
                ..raw.admission
            },
            preview: raw.preview,
            idempotency: raw.idempotency,
            rate_limit,
            limits: raw.limits,
            jwt,
            mail,
            health_show_errors,
            log: raw.log,
            otel,
            load_report,
            warnings,
        })
    }

    /// The JWT secret's bytes, for the token codec.
    pub fn jwt_secret_bytes(&self) -> &[u8] {
        self.jwt.secret.expose_secret().as_bytes()
    }
}

/// The rate-limit settings parsed; a bad one names its variable.
fn rate_limits(raw: &RawRateLimits) -> Result<RateLimitSettings, ConfigError> {
    let rate = |key: &str, value: &str| {
        Rate::parse(value).map_err(|e| {
            let env = SETTINGS
                .iter()
                .find(|s| s.key == key)
                .map_or(key, |s| s.env);
            ConfigError(format!("{env}: {e}"))
        })
    };
    if raw.max_keys == 0 {
        return Err(ConfigError(
            "RATE_LIMIT_MAX_KEYS = 0 must be at least 1".into(),
        ));
    }
    Ok(RateLimitSettings {
        login_per_address: rate("rate_limit.login_per_address", &raw.login_per_address)?,
        login_per_account: rate("rate_limit.login_per_account", &raw.login_per_account)?,
        register_per_address: rate("rate_limit.register_per_address", &raw.register_per_address)?,
        preview_session_per_address: rate(
            "rate_limit.preview_session_per_address",
            &raw.preview_session_per_address,
        )?,
        preview_write_per_address: rate(
            "rate_limit.preview_write_per_address",
            &raw.preview_write_per_address,
        )?,
        preview_write_per_session: rate(
            "rate_limit.preview_write_per_session",
            &raw.preview_write_per_session,
        )?,
        invite_per_address: rate("rate_limit.invite_per_address", &raw.invite_per_address)?,
        invite_per_account: rate("rate_limit.invite_per_account", &raw.invite_per_account)?,
        contribution_per_address: rate(
            "rate_limit.contribution_per_address",
            &raw.contribution_per_address,
        )?,
        contribution_per_account: rate(
            "rate_limit.contribution_per_account",
            &raw.contribution_per_account,
        )?,
        verify_resend_per_address: rate(
            "rate_limit.verify_resend_per_address",
            &raw.verify_resend_per_address,
        )?,
        verify_resend_per_account: rate(
            "rate_limit.verify_resend_per_account",
            &raw.verify_resend_per_account,
        )?,
        password_reset_per_address: rate(
            "rate_limit.password_reset_per_address",
            &raw.password_reset_per_address,
        )?,
        password_reset_per_account: rate(
            "rate_limit.password_reset_per_account",
            &raw.password_reset_per_account,
        )?,
        max_keys: raw.max_keys,
        prune_interval: Duration::from_millis(raw.prune_interval_ms),
    })
}

/// The mail settings checked; a bad one names its variable (never the SMTP_URL's value).
fn mail_settings(raw: RawMail, warnings: &mut Vec<String>) -> Result<MailSettings, ConfigError> {
    let smtp_url = match raw.smtp_url.as_deref().map(str::trim) {
        None | Some("") => {
            warnings.push(MAIL_OFF_WARNING.to_string());
            None
        }
        Some(u) => Some(SmtpUrl::parse(u).map_err(ConfigError)?),
    };
    let from = raw.from.trim().to_string();
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(ConfigError(format!(
            "MAIL_FROM = {from:?} is not a mailbox; expected e.g. AÏLA <no-reply@example.org>"
        )));
    }
    let base = raw.public_base_url.trim();
    let parsed = url::Url::parse(base).map_err(|e| {
        ConfigError(format!(
            "PUBLIC_BASE_URL = {base:?} is not a URL ({e}); expected e.g. https://aila.example.org"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err(ConfigError(format!(
            "PUBLIC_BASE_URL = {base:?} must be an http(s) address without query or fragment, e.g. https://aila.example.org"
        )));
    }
    for (name, v) in [
        ("MAIL_QUEUE_LENGTH", raw.queue_length as u64),
        ("MAIL_ATTEMPT_TIMEOUT_MS", raw.attempt_timeout_ms),
        ("MAIL_RETRY_INITIAL_MS", raw.retry_initial_ms),
        ("MAIL_DEADLINE_MS", raw.deadline_ms),
        ("EMAIL_VERIFICATION_TTL_MS", raw.verification_ttl_ms),
        ("PASSWORD_RESET_TTL_MS", raw.password_reset_ttl_ms),
    ] {
        if v == 0 {
            return Err(ConfigError(format!("{name} = 0 must be at least 1")));
        }
    }
    let ms = Duration::from_millis;
    Ok(MailSettings {
        smtp_url,
        from,
        public_base_url: base.trim_end_matches('/').to_string(),
        queue_length: raw.queue_length,
        attempt_timeout: ms(raw.attempt_timeout_ms),
        retry_initial: ms(raw.retry_initial_ms),
        deadline: ms(raw.deadline_ms),
        verification_ttl: ms(raw.verification_ttl_ms),
        password_reset_ttl: ms(raw.password_reset_ttl_ms),
    })
}

/// `JAEGER_UI_URL` checked: an absolute http(s) address, returned without trailing `/`.
fn ui_url(raw: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| {
        ConfigError(format!(
            "JAEGER_UI_URL = {raw:?} {why}: give the Jaeger UI's address as a browser reaches it, e.g. http://localhost:16686 (or leave it unset)"
        ))
    };
    let parsed = url::Url::parse(raw).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(bad("is not an http(s) address"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("has a query or fragment"));
    }
    Ok(raw.trim_end_matches('/').to_string())
}

fn generate_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(env: &[(&str, &str)]) -> (tempfile::TempDir, ConfigSources) {
        let dir = tempfile::tempdir().unwrap();
        let s = ConfigSources {
            config_dir: dir.path().join("config"),
            dotenv_path: dir.path().join(".env"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        std::fs::create_dir_all(&s.config_dir).unwrap();
        (dir, s)
    }

    #[test]
    fn a_short_jwt_secret_stops_production_and_is_warned_about_elsewhere() {
        let (_d, s) = sources(&[("APP_ENV", "production"), ("JWT_SECRET", "short-secret")]);
        let err = Settings::load(&s).unwrap_err().to_string();
        assert!(err.contains("JWT_SECRET") && err.contains("32"), "{err}");
        assert!(
            !err.contains("short-secret"),
            "the secret is never printed: {err}"
        );
        let (_d, s) = sources(&[("JWT_SECRET", "short-secret")]);
        let cfg = Settings::load(&s).unwrap();
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains("JWT_SECRET") && w.contains("32")),
            "{:?}",
            cfg.warnings
        );
        let long = "x".repeat(32);
        let (_d, s) = sources(&[("APP_ENV", "production"), ("JWT_SECRET", &long)]);
        let cfg = Settings::load(&s).unwrap();
        assert!(!cfg.warnings.iter().any(|w| w.contains("JWT_SECRET")));
    }

    #[test]
    fn health_shows_database_errors_by_default_except_in_production() {
        let (_d, s) = sources(&[]);
        assert!(Settings::load(&s).unwrap().health_show_errors);
        let long = "x".repeat(32);
        let production = [("APP_ENV", "production"), ("JWT_SECRET", long.as_str())];
        let (_d, s) = sources(&production);
        assert!(!Settings::load(&s).unwrap().health_show_errors);
        let (_d, s) = sources(&[production[0], production[1], ("HEALTH_SHOW_ERRORS", "true")]);
        assert!(Settings::load(&s).unwrap().health_show_errors);
        let (_d, s) = sources(&[("HEALTH_SHOW_ERRORS", "false")]);
        assert!(!Settings::load(&s).unwrap().health_show_errors);
    }

    #[test]
    fn defaults_match_the_old_service() {
        let (_d, s) = sources(&[]);
        let cfg = Settings::load(&s).unwrap();
        assert_eq!(cfg.http.port, 8001);
        assert_eq!(cfg.mongo.db_name, "aila_db");
        assert_eq!(cfg.mongo.url.redacted(), "mongodb://localhost:27017");
        assert!(cfg.mongo.url_defaulted);
        assert!(cfg.jwt.ephemeral);
        assert_eq!(cfg.mongo.server_selection_timeout, Duration::from_secs(10));
        assert_eq!(cfg.mongo.connect_timeout, Duration::from_secs(3));
        assert_eq!((cfg.mongo.min_pool_size, cfg.mongo.max_pool_size), (10, 50));
        assert_eq!(cfg.mongo.operation_timeout, Duration::from_secs(5));
        // MONGO_URL and JWT_SECRET defaulted, mail off (SMTP_URL unset).
        assert_eq!(cfg.warnings.len(), 3, "{:?}", cfg.warnings);
        assert!(cfg.mail.smtp_url.is_none());
        assert_eq!(cfg.mail.password_reset_ttl, Duration::from_secs(30 * 60));
        assert!(
            cfg.load_report
                .iter()
                .any(|l| l.starts_with("No .env file found"))
        );
    }

    #[test]
    fn precedence_defaults_files_dotenv_environment() {
        let (_d, s) = sources(&[("DB_NAME", "from_env")]);
        std::fs::write(
            s.config_dir.join("default.toml"),
            "[http]\nport = 9000\n[mongo]\ndb_name = \"from_default\"\nmax_pool_size = 20\n",
        )
        .unwrap();
        std::fs::write(
            s.config_dir.join("local.toml"),
            "[http]\nport = 9001\n[mongo]\nmin_pool_size = 3\n",
        )
        .unwrap();
        std::fs::write(
            &s.dotenv_path,
            "PORT=9002\nDB_NAME=from_dotenv\nMONGO_MAX_POOL_SIZE=30\n",
        )
        .unwrap();
        let cfg = Settings::load(&s).unwrap();
        assert_eq!(cfg.http.port, 9002, ".env beats config/local.toml");
        assert_eq!(
            cfg.mongo.db_name, "from_env",
            "process environment beats .env"
        );
        assert_eq!(
            cfg.mongo.max_pool_size, 30,
            ".env beats config/default.toml"
        );
        assert_eq!(
            cfg.mongo.min_pool_size, 3,
            "config/local.toml beats the built-in default"
        );
        assert!(
            cfg.load_report
                .iter()
                .any(|l| l.starts_with("Loaded environment variables from"))
        );
    }

    #[test]
    fn app_env_selects_the_environment_file() {
        let (_d, s) = sources(&[("APP_ENV", "production")]);
        std::fs::write(s.config_dir.join("local.toml"), "[http]\nport = 1111\n").unwrap();
        std::fs::write(
            s.config_dir.join("production.toml"),
            "[http]\nport = 2222\n",
        )
        .unwrap();
        assert_eq!(Settings::load(&s).unwrap().http.port, 2222);
    }

    #[test]
    fn a_bad_port_names_the_key_and_value() {
        let (_d, s) = sources(&[("PORT", "eighty")]);
        let err = Settings::load(&s).unwrap_err().to_string();
        assert!(err.contains("PORT") && err.contains("eighty"), "{err}");
        assert_eq!(err.lines().count(), 1);
    }

    #[test]
    fn a_negative_timeout_names_the_key_and_value() {
        let (_d, s) = sources(&[("MONGO_OPERATION_TIMEOUT_MS", "-5")]);
        let err = Settings::load(&s).unwrap_err().to_string();
        assert!(
            err.contains("MONGO_OPERATION_TIMEOUT_MS") && err.contains("-5"),
            "{err}"
        );
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        let (_d, s) = sources(&[("MONGO_PING_TIMEOUT_MS", "0")]);
        assert!(
            Settings::load(&s)
                .unwrap_err()
                .to_string()
                .contains("ping_timeout_ms")
        );
    }

    #[test]
    fn secrets_never_print() {
        let (_d, s) = sources(&[
            ("MONGO_URL", "mongodb://aila:S3cretPw@db.example:27017/x"),
            ("JWT_SECRET", "jwt-top-secret"),
            (
                "SMTP_URL",
                "smtp://mailer:Sm7pSecret@mail.example:587?tls=required",
            ),
        ]);
        let cfg = Settings::load(&s).unwrap();
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("S3cretPw"), "{shown}");
        assert!(!shown.contains("jwt-top-secret"), "{shown}");
        assert!(!shown.contains("Sm7pSecret"), "{shown}");
        assert!(shown.contains("smtp://mail.example:587"), "{shown}");
        // A bad SMTP_URL stops start-up without repeating the value.
        let (_d, s) = sources(&[("SMTP_URL", "http://mailer:Sm7pSecret@mail.example")]);
        let err = Settings::load(&s).unwrap_err().to_string();
        assert!(
            err.contains("SMTP_URL") && !err.contains("Sm7pSecret"),
            "{err}"
        );
        assert!(!cfg.jwt.ephemeral);
        assert_eq!(cfg.jwt_secret_bytes(), b"jwt-top-secret");
    }

    #[test]
    fn every_setting_is_known_to_the_loader() {
        // Each documented variable must land in the settings (else it would be silently ignored).
        for setting in SETTINGS {
            if matches!(setting.env, "APP_ENV" | "RUST_LOG") {
                continue;
            }
            let value = match setting.key {
                "http.port" => "1234",
                "mongo.min_pool_size" => "7",
                "breaker.minimum_calls" => "17",
                "breaker.failure_rate_percent" => "77",
                "breaker.slow_call_rate_percent" => "78",
                "admission.max_in_flight" => "37",
                "admission.min_in_flight" => "3",
                "log.format" => "json",
                "otel.ui_url" => "http://x-value:16686",
                "mail.smtp_url" => "smtp://x-value:2525",
                "mail.from" => "x-value <x@example.org>",
                "mail.public_base_url" => "http://x-value:8001",
                k if k.starts_with("mongo.retry")
                    || k == "otel.disabled"
                    || k == "http.health_show_errors" =>
                {
                    "false"
                }
                "http.trusted_proxies" => "10.77.0.0/16",
                k if is_string_setting(k) && k.starts_with("rate_limit.") => "777/777s",
                k if is_string_setting(k) => "x-value",
                _ => "777",
            };
            let (_d, s) = sources(&[(setting.env, value)]);
            let cfg = Settings::load(&s).unwrap_or_else(|e| panic!("{}: {e}", setting.env));
            if setting.env == "ADMISSION_MIN_IN_FLIGHT" {
                assert_eq!(cfg.admission.min_in_flight, 3);
            }
            let shown = format!(
                "{:?} {} {} {}",
                cfg,
                cfg.mail.smtp_url.as_ref().map_or("", |u| u.expose()),
                cfg.mongo.url.expose(),
                String::from_utf8_lossy(cfg.jwt_secret_bytes())
            );
            assert!(
                shown.contains(value) || shown.contains("777ms") || shown.contains("Json"),
                "{} not applied",
                setting.env
            );
        }
    }

    #[test]
    fn rates_are_parsed_and_bad_ones_name_their_variable() {
        assert_eq!(
            Rate::parse("20/1m").unwrap(),
            Some(Rate {
                count: 20,
                period: Duration::from_secs(60)
            })
        );
        assert_eq!(
            Rate::parse(" 10/15m ").unwrap().unwrap().period,
            Duration::from_secs(900)
        );
        assert_eq!(
            Rate::parse("5/h").unwrap().unwrap().period,
            Duration::from_secs(3600)
        );
        assert_eq!(Rate::parse("off").unwrap(), None);
        for bad in ["", "20", "0/1m", "20/0m", "20/1w", "x/1m", "20/m1"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        let (_d, s) = sources(&[("RATE_LIMIT_LOGIN_PER_ACCOUNT", "lots")]);
        let err = Settings::load(&s).unwrap_err().to_string();
        assert!(
            err.contains("RATE_LIMIT_LOGIN_PER_ACCOUNT") && err.contains("lots"),
            "{err}"
        );
        let (_d, s) = sources(&[("TRUSTED_PROXIES", "10.0.0.0/99")]);
        let err = Settings::load(&s).unwrap_err().to_string();
        assert!(err.contains("TRUSTED_PROXIES"), "{err}");
    }

    #[test]
    fn the_jaeger_ui_url_makes_trace_links_and_refuses_what_is_not_an_address() {
        let (_d, s) = sources(&[]);
        let cfg = Settings::load(&s).unwrap();
        assert_eq!(cfg.otel.ui_url, None);
        assert_eq!(cfg.otel.trace_url("abc"), None);
        for (given, base) in [
            ("http://localhost:16686", "http://localhost:16686"),
            (
                "https://jaeger.example.org/jaeger/",
                "https://jaeger.example.org/jaeger",
            ),
            ("  ", ""),
        ] {
            let (_d, s) = sources(&[("JAEGER_UI_URL", given)]);
            let cfg = Settings::load(&s).unwrap();
            if base.is_empty() {
                assert_eq!(cfg.otel.ui_url, None);
            } else {
                assert_eq!(
                    cfg.otel
                        .trace_url("4bf92f3577b34da6a3ce929d0e0e4736")
                        .as_deref(),
                    Some(format!("{base}/trace/4bf92f3577b34da6a3ce929d0e0e4736").as_str())
                );
            }
        }
        for bad in ["localhost:16686", "ftp://x/", "http://x/?a=1", "not a url"] {
            let (_d, s) = sources(&[("JAEGER_UI_URL", bad)]);
            let err = Settings::load(&s).unwrap_err().to_string();
            assert!(err.contains("JAEGER_UI_URL"), "{bad}: {err}");
            assert!(err.contains("e.g. http://localhost:16686"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_readme_documents_every_setting_with_its_default() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        for s in SETTINGS {
            let row = format!("| `{}` | `{}` | `{}` |", s.env, s.key, s.default);
            assert!(
                readme.contains(&row),
                "README.md lacks the row for {}: {row}",
                s.env
            );
        }
    }

    #[test]
    fn the_shipped_default_toml_matches_the_built_in_defaults() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let s = ConfigSources {
            config_dir: dir.clone(),
            dotenv_path: dir.join("no-such.env"),
            env: [("APP_ENV".to_string(), "none".to_string())].into(),
        };
        let shipped = Settings::load(&s).unwrap();
        let (_d, bare) = sources(&[("APP_ENV", "none")]);
        let built_in = Settings::load(&bare).unwrap();
        let strip = |cfg: &Settings| {
            let mut cfg = cfg.clone();
            cfg.load_report.clear();
            format!("{cfg:?}")
        };
        assert_eq!(strip(&shipped), strip(&built_in));
        assert!(
            shipped
                .load_report
                .iter()
                .any(|l| l.contains("default.toml"))
        );
    }
}
