//! The database's published state: what the supervisor knows about the database, sent
//! through a `tokio::sync::watch` channel. `/health`, `/readiness`, `/metrics` and the
//! gateway only read it; nothing that describes the database ever waits on it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;

/// Database status, as the health JSON spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbStatus {
    /// The last ping succeeded and the breaker let it through.
    Connected,
    /// Never reached yet, or reaching again.
    Connecting,
    /// Was connected, now lost.
    Disconnected,
    /// No usable URL: the client cannot be built (yet).
    NotConfigured,
}

impl DbStatus {
    /// The word used in logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DbStatus::Connected => "connected",
            DbStatus::Connecting => "connecting",
            DbStatus::Disconnected => "disconnected",
            DbStatus::NotConfigured => "not_configured",
        }
    }
}

/// An index that could not be created, and why.
#[derive(Debug, Clone, Serialize)]
pub struct IndexFailure {
    /// `collection.index_name`.
    pub index: String,
    /// Redacted error text.
    pub error: String,
    /// Whether readiness waits for it.
    pub required: bool,
}

/// Everything the supervisor publishes.
#[derive(Debug, Clone)]
pub struct DbState {
    /// Status word.
    pub status: DbStatus,
    /// One sentence for humans (`database_message`).
    pub message: String,
    /// Reconnect attempts since the database was last usable.
    pub reconnect_attempt: u32,
    /// When the next reconnect ping is due, while reconnecting.
    pub next_attempt_at: Option<Instant>,
    /// Last reconnect or ping error, redacted.
    pub last_error: Option<String>,
    /// Latency of the last successful ping.
    pub last_ping: Option<Duration>,
    /// When the last successful ping finished.
    pub last_ping_ok_at: Option<Instant>,
    /// Since when the database has been connected.
    pub connected_since: Option<DateTime<Utc>>,
    /// `collection.index_name` of every index known to exist.
    pub indexes_ensured: Vec<String>,
    /// Indexes that could not be created.
    pub indexes_failed: Vec<IndexFailure>,
    /// Warnings to show in `/health` (TTL index refused, URL options stripped, ...).
    pub warnings: Vec<String>,
    /// The deployment's members as the driver's monitor sees them (written by
    /// [`super::topology::Monitor`]).
    pub members: Vec<super::topology::Member>,
}

impl DbState {
    /// The state before anything is known.
    pub fn initial() -> Self {
        Self {
            status: DbStatus::Connecting,
            message: "Connection pending".into(),
            reconnect_attempt: 0,
            next_attempt_at: None,
            last_error: None,
            last_ping: None,
            last_ping_ok_at: None,
            connected_since: None,
            indexes_ensured: Vec::new(),
            indexes_failed: Vec::new(),
            warnings: Vec::new(),
            members: Vec::new(),
        }
    }

    /// True when every index readiness needs (the contract's unique indexes) is known to
    /// exist: one that failed, or was never tried, keeps readiness at 503.
    pub fn required_indexes_ok(&self) -> bool {
        super::indexes::INDEXES
            .iter()
            .filter(|s| s.required())
            .all(|s| self.indexes_ensured.contains(&s.qualified_name()))
    }

    /// Milliseconds until the next reconnect ping, while reconnecting.
    pub fn next_attempt_in_ms(&self) -> Option<u64> {
        self.next_attempt_at
            .map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64)
    }
}
