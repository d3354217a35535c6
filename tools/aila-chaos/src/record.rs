//! What a run records: every request, every probe answer, every fault, every write. This is
//! the JSON file `--record` writes (with the analysis added), and what the analysis and the
//! timeline read. Times are milliseconds from the start of the load (`t_ms`).

use serde::{Deserialize, Serialize};

use crate::schedule::{FaultKind, FaultSpec};

/// One API request of the load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRecord {
    /// When it was sent.
    pub t_ms: f64,
    /// `METHOD /route/template`, e.g. `POST /api/persons`.
    pub route: String,
    /// HTTP status; 0 when no answer came (connection refused, timeout).
    pub status: u16,
    /// Sent to answered (or to the failure).
    pub latency_ms: f64,
    /// Which virtual user sent it.
    pub user: u32,
    /// Why no answer came, when `status` is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RequestRecord {
    /// When the answer came.
    pub fn end_ms(&self) -> f64 {
        self.t_ms + self.latency_ms
    }

    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Which probe endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// `GET /health` (liveness).
    Health,
    /// `GET /readiness`.
    Readiness,
}

impl ProbeKind {
    /// The path.
    pub fn path(self) -> &'static str {
        match self {
            ProbeKind::Health => "/health",
            ProbeKind::Readiness => "/readiness",
        }
    }
}

/// One probe answer (both probes are polled about every 100 ms).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// When it was sent.
    pub t_ms: f64,
    /// Which probe.
    pub probe: ProbeKind,
    /// HTTP status; 0 when no answer came.
    pub status: u16,
    /// Sent to answered.
    pub latency_ms: f64,
    /// `circuit_breaker.state` from the body: `closed`, `open`, `half_open`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<String>,
    /// `database` from the body: `connected`, `connecting`, `disconnected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// `uptime_s` from the body (a drop means the service restarted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
    /// Why no answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One fault as it happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRecord {
    /// As planned.
    pub spec: FaultSpec,
    /// When the tool began to inject it (sent the signal, ran the command).
    pub action_started_at_ms: f64,
    /// When the fault was surely in place: the signal sent, the command returned, or for a
    /// restart the database process gone (FerretDB and mongod keep serving for a few
    /// seconds after SIGTERM while they shut down). The outage starts here.
    pub injected_at_ms: f64,
    /// When the database was back (accepting connections again, or thawed); `None` when
    /// bringing it back failed.
    pub restored_at_ms: Option<f64>,
    /// What was done, e.g. `docker compose kill -s SIGKILL mongo`.
    pub actions: Vec<String>,
    /// What went wrong while injecting or restoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One load burst as it happened: its extra connections' answers, summed up (one record per
/// request would dwarf the rest of the file).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BurstRecord {
    /// As planned (`amount`: connections).
    pub spec: Option<FaultSpec>,
    /// When its connections started sending.
    pub started_at_ms: f64,
    /// When the last of them stopped.
    pub ended_at_ms: f64,
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests answered 503 (shed or refused).
    pub unavailable: u64,
    /// Other answers (4xx, other 5xx).
    pub other: u64,
    /// Requests with no answer (connection refused or reset, timeout).
    pub failed: u64,
    /// Latency of the 2xx answers: median and 99th percentile.
    pub ok_p50_ms: Option<f64>,
    /// See `ok_p50_ms`.
    pub ok_p99_ms: Option<f64>,
    /// Latency of the 503 answers, 99th percentile.
    pub unavailable_p99_ms: Option<f64>,
    /// Why it could not run, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BurstRecord {
    /// 2xx answers per second while it ran.
    pub fn ok_per_s(&self) -> f64 {
        let secs = (self.ended_at_ms - self.started_at_ms) / 1000.0;
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }
}

impl FaultRecord {
    /// The fault's kind.
    pub fn kind(&self) -> FaultKind {
        self.spec.kind
    }
}

/// What a write created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    /// An account (`POST /api/auth/register`); the marker is the email.
    User,
    /// A person (`POST /api/persons`); the marker is in `notes`.
    Person,
    /// A family link (`POST /api/links`); the marker is `person_id_1|person_id_2|link_type`.
    Link,
}

/// How a logical write ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOutcome {
    /// Some attempt got a 2xx: the service promised it is stored.
    Acknowledged,
    /// An attempt failed (503 or no answer) but a later read found it stored: the failed
    /// attempt was committed anyway, and the client did not send it again.
    FoundAfterError,
    /// Every attempt failed and the client gave up: it may or may not be stored, but at
    /// most once.
    Unconfirmed,
    /// Refused with a 4xx other than 503: must not be stored.
    Rejected,
}

/// One attempt of a write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    /// When it was sent.
    pub t_ms: f64,
    /// Its status (0: no answer).
    pub status: u16,
    /// Answered with `Idempotent-Replayed: true` (an earlier attempt's stored answer).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// One logical write and its attempts. Each carries a unique marker, so the verification
/// can count how many times it is stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteRecord {
    /// What it creates.
    pub kind: WriteKind,
    /// Its unique marker.
    pub marker: String,
    /// The account it belongs to (email).
    pub owner: String,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// How it ended.
    pub outcome: WriteOutcome,
}

/// How many times each marker is stored, read back through the API after the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Observed {
    /// `(kind, marker, count)`.
    pub counts: Vec<(WriteKind, String, usize)>,
    /// Accounts whose data could not be read back (their writes cannot be verified).
    pub unreadable_owners: Vec<String>,
}

/// The service as the run saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The tool started the service itself (and so watched its process).
    pub started_by_tool: bool,
    /// The process exited while the run went on: when and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exited_during_run: Option<String>,
    /// How the process ended when the tool stopped it with SIGTERM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_exit: Option<String>,
    /// The process ended cleanly (exit 0) after SIGTERM.
    #[serde(default)]
    pub clean_shutdown: Option<bool>,
}

/// The whole record of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// `aila-chaos` version.
    pub tool_version: String,
    /// Wall-clock start of the load (RFC 3339).
    pub started_at: String,
    /// The service's base URL.
    pub service_url: String,
    /// `local` or `compose`.
    pub backend: String,
    /// The settings of the run, as given.
    pub settings: serde_json::Value,
    /// How long the load ran.
    pub duration_ms: f64,
    /// The faults of the database and its network, in order (bursts apart).
    pub faults: Vec<FaultRecord>,
    /// The load bursts.
    #[serde(default)]
    pub bursts: Vec<BurstRecord>,
    /// Every load request.
    pub requests: Vec<RequestRecord>,
    /// Every probe answer.
    pub probes: Vec<ProbeRecord>,
    /// Every logical write.
    pub writes: Vec<WriteRecord>,
    /// What the verification read back.
    pub observed: Observed,
    /// The service process.
    pub service: ServiceRecord,
}
