//! The database gateway: the only owner of the `mongodb::Client`. Every database operation
//! of the service goes through [`Gateway::run`], which
//! 1. asks the breaker for admission (refused: [`DbError::Unavailable`] at once);
//! 2. runs the operation under the per-operation deadline (the driver has no socket timeout);
//! 3. classifies the outcome ([`classify`]): database failure, duplicate key, rejected;
//! 4. records it in the breaker and the metrics, inside a client span `{operation} {collection}`
//!    carrying the OpenTelemetry database attributes.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bson::{Document, doc};
use mongodb::{Collection, Database};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{Instrument, field::Empty};

use super::classify::{ErrorClass, classify, describe};
use super::client::BuiltClient;
use super::state::DbState;
use crate::metrics::Metrics;
use crate::redact::Redactor;
use crate::resilience::breaker::{Breaker, BreakerState, Caller, Outcome};

/// A failed database call, as handlers see it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// Refused without trying: the breaker is open (or half-open with its probe in flight),
    /// or no client could be built yet.
    #[error("database temporarily unavailable (retry after {retry_after:?})")]
    Unavailable {
        /// When to try again.
        retry_after: Duration,
    },
    /// The database failed during the call (timeout, connection lost, not primary, ...).
    #[error("database failure ({kind}): {message}")]
    Failed {
        /// OpenTelemetry `error.type`: `timeout`, `io`, `server_selection`, ...
        kind: &'static str,
        /// Redacted error text.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// A unique index refused the write.
    #[error("duplicate key: {0}")]
    DuplicateKey(String),
    /// The server refused the operation for a reason that is not the database's health.
    #[error("database rejected the operation ({kind}): {message}")]
    Rejected {
        /// Short kind.
        kind: &'static str,
        /// Redacted error text.
        message: String,
    },
}

impl DbError {
    /// True for the errors that mean "try again later" (HTTP 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Unavailable { .. } | DbError::Failed { .. })
    }
}

/// A failure planted by a test: the `skip`+1-th matching operation fails as if the database
/// had dropped the connection, without running.
#[derive(Debug, Clone)]
pub struct InjectedFault {
    /// Operation name to match (`insert_one`, ...).
    pub operation: &'static str,
    /// Collection to match.
    pub collection: &'static str,
    /// Matching operations to let through first.
    pub skip: u32,
}

/// Connection facts for spans.
#[derive(Debug, Clone, Default)]
struct Target {
    db: Option<Database>,
    server_address: String,
    server_port: Option<u16>,
}

struct Inner {
    target: RwLock<Target>,
    db_name: String,
    breaker: Breaker,
    operation_timeout: Duration,
    metrics: Arc<Metrics>,
    redactor: Redactor,
    state: watch::Receiver<DbState>,
    faults_armed: AtomicBool,
    faults: Mutex<Vec<InjectedFault>>,
}

/// Handle to the gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("db_name", &self.inner.db_name)
            .finish()
    }
}

impl Gateway {
    /// A gateway with no client yet (the supervisor installs one).
    pub fn new(
        db_name: String,
        breaker: Breaker,
        operation_timeout: Duration,
        metrics: Arc<Metrics>,
        redactor: Redactor,
        state: watch::Receiver<DbState>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                target: RwLock::new(Target::default()),
                db_name,
                breaker,
                operation_timeout,
                metrics,
                redactor,
                state,
                faults_armed: AtomicBool::new(false),
                faults: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Installs the client built by the supervisor.
    pub fn install(&self, built: &BuiltClient) {
        let mut target = self.inner.target.write().unwrap_or_else(|p| p.into_inner());
        target.db = Some(built.client.database(&self.inner.db_name));
        target.server_address = built.server_address.clone();
        target.server_port = built.server_port;
    }

    /// True once a client is installed.
    pub fn has_client(&self) -> bool {
        self.target().db.is_some()
    }

    /// The breaker guarding the database.
    pub fn breaker(&self) -> &Breaker {
        &self.inner.breaker
    }

    /// The database name.
    pub fn db_name(&self) -> &str {
        &self.inner.db_name
    }

    /// The redactor for this database's credentials.
    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// Plants a failure (tests only use it; a disarmed gateway pays one atomic load).
    pub fn inject_fault(&self, fault: InjectedFault) {
        self.inner
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fault);
        self.inner.faults_armed.store(true, Ordering::Release);
    }

    fn target(&self) -> Target {
        self.inner
            .target
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn take_fault(&self, operation: &str, collection: &str) -> bool {
        if !self.inner.faults_armed.load(Ordering::Acquire) {
            return false;
        }
        let mut faults = self.inner.faults.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = faults
            .iter()
            .position(|f| f.operation == operation && f.collection == collection)
        {
            if faults[i].skip == 0 {
                faults.remove(i);
                self.inner
                    .faults_armed
                    .store(!faults.is_empty(), Ordering::Release);
                return true;
            }
            faults[i].skip -= 1;
        }
        false
    }

    fn no_client_retry_after(&self) -> Duration {
        let state = self.inner.state.borrow();
        state
            .next_attempt_in_ms()
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(100))
    }

    /// Runs `op` on collection `collection` through the breaker, under the deadline.
    ///
    /// `operation` is the OpenTelemetry `db.operation.name` (`find`, `insert_one`, ...).
    pub async fn run<T, D, F, Fut>(
        &self,
        operation: &'static str,
        collection: &'static str,
        op: F,
    ) -> Result<T, DbError>
    where
        D: Send + Sync,
        F: FnOnce(Collection<D>) -> Fut,
        Fut: Future<Output = mongodb::error::Result<T>>,
    {
        self.guarded(
            Caller::Ordinary,
            operation,
            collection,
            self.inner.operation_timeout,
            |db: Database| op(db.collection::<D>(collection)),
        )
        .await
    }

    /// Runs a command against the database (not a collection) through the breaker.
    pub async fn run_command(
        &self,
        operation: &'static str,
        command: Document,
    ) -> Result<Document, DbError> {
        self.guarded(
            Caller::Ordinary,
            operation,
            "",
            self.inner.operation_timeout,
            |db: Database| async move { db.run_command(command).await },
        )
        .await
    }

    /// The supervisor's ping: may be the breaker's half-open probe. Returns its latency.
    pub async fn ping(&self, deadline: Duration) -> Result<Duration, DbError> {
        let started = Instant::now();
        self.guarded(
            Caller::Supervisor,
            "ping",
            "",
            deadline,
            |db: Database| async move { db.run_command(doc! { "ping": 1 }).await },
        )
        .await?;
        Ok(started.elapsed())
    }

    async fn guarded<T, F, Fut>(
        &self,
        caller: Caller,
        operation: &'static str,
        collection: &'static str,
        deadline: Duration,
        op: F,
    ) -> Result<T, DbError>
    where
        F: FnOnce(Database) -> Fut,
        Fut: Future<Output = mongodb::error::Result<T>>,
    {
        let target = self.target();
        let span_name = if collection.is_empty() {
            operation.to_string()
        } else {
            format!("{operation} {collection}")
        };
        let span = tracing::info_span!(
            "db.operation",
            otel.name = span_name,
            otel.kind = "client",
            otel.status_code = Empty,
            db.system.name = "mongodb",
            db.namespace = %self.inner.db_name,
            db.collection.name = Empty,
            db.operation.name = operation,
            server.address = %target.server_address,
            server.port = Empty,
            error.type = Empty,
            db.response.status_code = Empty,
        );
        if !collection.is_empty() {
            span.record("db.collection.name", collection);
        }
        if let Some(port) = target.server_port {
            span.record("server.port", i64::from(port));
        }
        let fail_span = |kind: &str| {
            span.record("error.type", kind);
            span.record("otel.status_code", "ERROR");
        };
        let metric_collection = if collection.is_empty() {
            "(database)"
        } else {
            collection
        };
        let started = Instant::now();

        let permit = match self.inner.breaker.try_acquire(caller) {
            Ok(p) => p,
            Err(refused) => {
                self.inner.metrics.breaker_refused_calls.inc();
                self.inner.metrics.db_operation(
                    operation,
                    metric_collection,
                    "refused",
                    started.elapsed(),
                    &span,
                );
                fail_span(match refused.state {
                    BreakerState::HalfOpen => "circuit_half_open",
                    _ => "circuit_open",
                });
                return Err(DbError::Unavailable {
                    retry_after: refused.retry_after,
                });
            }
        };
        let Some(db) = target.db else {
            permit.record(Outcome::Ignored);
            self.inner.metrics.breaker_refused_calls.inc();
            self.inner.metrics.db_operation(
                operation,
                metric_collection,
                "refused",
                started.elapsed(),
                &span,
            );
            fail_span("no_client");
            return Err(DbError::Unavailable {
                retry_after: self.no_client_retry_after(),
            });
        };

        let result = if self.take_fault(operation, collection) {
            Err(Fault::Injected)
        } else {
            match tokio::time::timeout(deadline, op(db).instrument(span.clone())).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(Fault::Driver(e)),
                Err(_) => Err(Fault::Timeout),
            }
        };
        let took = started.elapsed();
        let retry_after = || self.retry_after_hint();
        match result {
            Ok(v) => {
                permit.record(Outcome::Success);
                self.inner.metrics.db_operation(
                    operation,
                    metric_collection,
                    "success",
                    took,
                    &span,
                );
                Ok(v)
            }
            Err(Fault::Timeout) => {
                let message = format!("no answer within {} ms", deadline.as_millis());
                permit.record(Outcome::Failure(format!("{span_name}: {message}")));
                self.inner.metrics.db_operation(
                    operation,
                    metric_collection,
                    "failure",
                    took,
                    &span,
                );
                fail_span("timeout");
                Err(DbError::Failed {
                    kind: "timeout",
                    message,
                    retry_after: retry_after(),
                })
            }
            Err(Fault::Injected) => {
                let message = "injected failure".to_string();
                permit.record(Outcome::Failure(message.clone()));
                self.inner.metrics.db_operation(
                    operation,
                    metric_collection,
                    "failure",
                    took,
                    &span,
                );
                fail_span("injected");
                Err(DbError::Failed {
                    kind: "injected",
                    message,
                    retry_after: retry_after(),
                })
            }
            Err(Fault::Driver(e)) => {
                let message = self.inner.redactor.scrub(&describe(&e));
                if let mongodb::error::ErrorKind::Command(c) = e.kind.as_ref() {
                    span.record("db.response.status_code", c.code.to_string());
                }
                match classify(&e) {
                    ErrorClass::DatabaseFailure(kind) => {
                        permit.record(Outcome::Failure(format!("{kind}: {message}")));
                        self.inner.metrics.db_operation(
                            operation,
                            metric_collection,
                            "failure",
                            took,
                            &span,
                        );
                        fail_span(kind);
                        tracing::warn!(parent: &span, error.type = kind, "database failure: {message}");
                        Err(DbError::Failed {
                            kind,
                            message,
                            retry_after: retry_after(),
                        })
                    }
                    ErrorClass::DuplicateKey => {
                        permit.record(Outcome::Ignored);
                        self.inner.metrics.db_operation(
                            operation,
                            metric_collection,
                            "rejected",
                            took,
                            &span,
                        );
                        span.record("error.type", "duplicate_key");
                        Err(DbError::DuplicateKey(message))
                    }
                    ErrorClass::Rejected(kind) => {
                        permit.record(Outcome::Ignored);
                        self.inner.metrics.db_operation(
                            operation,
                            metric_collection,
                            "rejected",
                            took,
                            &span,
                        );
                        fail_span(kind);
                        Err(DbError::Rejected { kind, message })
                    }
                }
            }
        }
    }

    fn retry_after_hint(&self) -> Duration {
        self.inner
            .breaker
            .snapshot()
            .next_probe_in_ms()
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(100))
    }
}

enum Fault {
    Timeout,
    Injected,
    Driver(mongodb::error::Error),
}
