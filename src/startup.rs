//! Start-up and shutdown.
//!
//! [`Application::start`] binds the port and starts answering before any database I/O, then
//! hands the database work (`db.client.configure`, `db.connect`, `db.indexes`) to a
//! background task inside the start-up trace, and finishes with `http.listen` ("Application
//! startup complete", with the start-up trace's id and, when `JAEGER_UI_URL` is set, its link
//! in the Jaeger UI). If the database is down, start-up completes anyway and the
//! supervisor's reconnect loop takes over. [`Application::shutdown`] turns `/readiness` and
//! `/serving` to 503, lets in-flight requests finish (bounded) and stops the background
//! tasks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::auth::password::Hasher;
use crate::auth::token::TokenCodec;
use crate::config::{OtelSettings, Settings};
use crate::db::Gateway;
use crate::db::state::DbState;
use crate::db::supervisor::Supervisor;
use crate::http::api::tree_cache::TreeCache;
use crate::http::client_addr::TrustedProxies;
use crate::http::context::{AppContext, AppInner, ListLimits};
use crate::http::rate_limit::RateLimits;
use crate::metrics::Metrics;
use crate::resilience::admission::{Admission, AdmissionConfig};
use crate::resilience::breaker::{Breaker, BreakerConfig};

/// A running service.
pub struct Application {
    addr: SocketAddr,
    ctx: AppContext,
    shutdown_tx: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    background: JoinHandle<()>,
    sweeper: JoinHandle<()>,
    key_sweeper: JoinHandle<()>,
    email_case: JoinHandle<()>,
    pruner: JoinHandle<()>,
    mail_sender: Option<JoinHandle<()>>,
    /// Tells the mail sender to flush, and until when (after the HTTP drain).
    mail_flush_tx: watch::Sender<Option<tokio::time::Instant>>,
    drain: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Application {
    /// Binds, serves, and starts the database work in the background. Fails only when the
    /// port cannot be bound.
    pub async fn start(
        settings: Settings,
        metrics: Arc<Metrics>,
        startup: tracing::Span,
    ) -> std::io::Result<Application> {
        let started = Instant::now();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (state_tx, state_rx) = watch::channel(DbState::initial());

        let breaker_metrics = metrics.clone();
        let breaker = Breaker::new(
            BreakerConfig {
                failure_threshold: settings.breaker.failure_threshold,
                window_size: settings.breaker.window_size,
                minimum_calls: settings.breaker.minimum_calls,
                failure_rate: f64::from(settings.breaker.failure_rate_percent) / 100.0,
                slow_call_rate: f64::from(settings.breaker.slow_call_rate_percent) / 100.0,
                slow_call: Duration::from_millis(settings.breaker.slow_call_ms),
                half_open_calls: settings.breaker.half_open_calls,
                open_initial: Duration::from_millis(settings.breaker.open_initial_ms),
                open_max: Duration::from_millis(settings.breaker.open_max_ms),
                ..BreakerConfig::default()
            },
            move |t| {
                breaker_metrics.breaker_transition(t);
                let open_for_ms = t.open_for.map(|d| d.as_millis() as i64);
                // A short span of its own, so the transition reaches the trace backend even
                // when no span is current (the supervisor tripping the breaker between two
                // pings); inside a request or a ping it nests under that span.
                let span = tracing::info_span!(
                    "circuit_breaker.transition",
                    breaker.from = t.from.as_str(),
                    breaker.to = t.to.as_str(),
                    breaker.reason = %t.reason,
                    breaker.open_for_ms = open_for_ms,
                );
                // The span carries the fields; the event (a span event in traces, the log
                // line) says it in words: `circuit breaker closed => open (5 consecutive failures)`.
                span.in_scope(|| tracing::info!("{t}"));
            },
        );
        let admission = Admission::new(AdmissionConfig {
            max_in_flight: settings.admission.max_in_flight,
            min_in_flight: settings.admission.min_in_flight,
            queue_length: settings.admission.queue_length,
            queue_timeout: Duration::from_millis(settings.admission.queue_timeout_ms),
            ..AdmissionConfig::default()
        });
        let gateway = Gateway::with_admission(
            settings.mongo.db_name.clone(),
            breaker,
            admission,
            settings.mongo.operation_timeout,
            metrics.clone(),
            settings.mongo.url.redactor(),
            state_rx.clone(),
        );
        let rate_limits = Arc::new(RateLimits::new(&settings.rate_limit, metrics.clone()));
        let trusted_proxies = TrustedProxies::parse(&settings.http.trusted_proxies)
            .map_err(|e| std::io::Error::other(format!("TRUSTED_PROXIES: {e}")))?;
        let ping_max_age = settings.mongo.ping_interval * 2 + settings.mongo.ping_timeout;
        let (mail_flush_tx, mail_flush_rx) = watch::channel(None);
        let (mailer, mail_sender) =
            crate::mail::Mailer::start(&settings.mail, metrics.clone(), mail_flush_rx);
        let ctx = AppContext(Arc::new(AppInner {
            gateway: gateway.clone(),
            tokens: TokenCodec::new(settings.jwt_secret_bytes()),
            metrics: metrics.clone(),
            db_state: state_rx,
            started,
            shutting_down: AtomicBool::new(false),
            config_warnings: settings.warnings.clone(),
            jwt_ephemeral: settings.jwt.ephemeral,
            health_show_errors: settings.health_show_errors,
            ping_max_age,
            limits: ListLimits::default(),
            trusted_proxies,
            rate_limits: rate_limits.clone(),
            hasher: Hasher::new(Duration::from_millis(settings.limits.hash_queue_timeout_ms)),
            caps: settings.limits.clone(),
            mailer,
            verification_ttl: settings.mail.verification_ttl,
            password_reset_ttl: settings.mail.password_reset_ttl,
            idempotency_ttl: Duration::from_secs(settings.idempotency.key_ttl_secs),
            tree_cache: TreeCache::new(
                settings.limits.tree_cache_max_bytes,
                Duration::from_millis(settings.limits.tree_cache_ttl_ms),
                metrics.clone(),
            ),
        }));

        // The port first: answering before any database I/O.
        let bind = format!("{}:{}", settings.http.host, settings.http.port);
        let acceptor = async { TcpListener::bind(bind.as_str()).into_acceptor().await }
            .instrument(tracing::info_span!(parent: &startup, "http.bind", server.address = %bind))
            .await
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {bind}: {e} (set PORT to a free port)"),
                )
            })?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .ok_or_else(|| std::io::Error::other("the listener has no address"))?;
        let endpoint = crate::http::build_endpoint(
            ctx.clone(),
            settings.http.body_limit_bytes,
            &settings.http.cors_allowed_origins,
        );
        let drain = Duration::from_millis(settings.http.shutdown_timeout_ms);
        let mut server_shutdown = shutdown_rx.clone();
        let server = tokio::spawn(
            poem::Server::new_with_acceptor(acceptor)
                .name("aila-api")
                .run_with_graceful_shutdown(
                    endpoint,
                    async move {
                        let _ = server_shutdown.wait_for(|stop| *stop).await;
                    },
                    Some(drain),
                ),
        );

        // Then the database, in the background, inside the start-up trace.
        let mut supervisor = Supervisor::new(
            gateway.clone(),
            settings.mongo.clone(),
            settings.reconnect.clone(),
            state_tx,
            metrics,
            shutdown_rx.clone(),
        );
        // Expired preview sessions: FerretDB refuses TTL indexes, so the service sweeps.
        let sweeper = crate::repo::sweep::spawn(
            gateway.clone(),
            Duration::from_millis(settings.preview.sweep_interval_ms),
            shutdown_rx.clone(),
            crate::repo::preview::PREVIEW_SESSIONS,
            "expired preview session(s)",
        );
        // Expired idempotency keys, likewise.
        let key_sweeper = crate::repo::sweep::spawn(
            gateway.clone(),
            Duration::from_millis(settings.idempotency.sweep_interval_ms),
            shutdown_rx.clone(),
            crate::repo::idempotency::IDEMPOTENCY_KEYS,
            "expired idempotency key(s)",
        );
        // Emails the old service stored in another case: lower-cased once, in the background.
        let email_case = crate::repo::email_case::spawn_once(
            gateway.clone(),
            ctx.db_state.clone(),
            settings.mongo.index_timeout,
            shutdown_rx.clone(),
        );
        let pruner = rate_limits.spawn_pruner(shutdown_rx.clone());
        let db_name = settings.mongo.db_name.clone();
        let trace = startup_trace_note(&startup, &settings.otel);
        let background = tokio::spawn(async move {
            async {
                supervisor.start().await;
                tracing::info_span!("http.listen", server.address = %addr).in_scope(|| {
                    tracing::info!(
                        "Application startup complete: listening on {addr}, database {db_name}{trace}"
                    );
                });
            }
            .instrument(startup)
            .await;
            supervisor.run().await;
        });
        Ok(Application {
            addr,
            ctx,
            shutdown_tx,
            server,
            background,
            sweeper,
            key_sweeper,
            email_case,
            pruner,
            mail_sender,
            mail_flush_tx,
            drain,
        })
    }

    /// The bound address (the real port when 0 was asked).
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Shared state (tests inspect the gateway and published states through it).
    pub fn context(&self) -> &AppContext {
        &self.ctx
    }

    /// Begins shutdown: `/readiness` and `/serving` 503 (Kubernetes takes the pod out of the
    /// Service), in-flight requests finish within the drain time, background tasks stop.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let drain_ends = tokio::time::Instant::now() + self.drain;
        self.ctx.begin_shutdown();
        self.ctx.metrics.ready.set(0);
        tracing::info!(
            "shutdown requested: readiness and serving now 503, draining in-flight requests (up to {} ms)",
            self.drain.as_millis()
        );
        let _ = self.shutdown_tx.send(true);
        let result = match self.server.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        };
        // No request can queue mail any more: queued mail gets the rest of the drain time.
        let _ = self.mail_flush_tx.send(Some(drain_ends));
        self.background.abort();
        let _ = self.background.await;
        let _ = self.sweeper.await;
        let _ = self.key_sweeper.await;
        let _ = self.email_case.await;
        let _ = self.pruner.await;
        if let Some(mail_sender) = self.mail_sender {
            let _ = mail_sender.await;
        }
        tracing::info!("server stopped");
        result
    }

    /// Serves until `signal` resolves, then shuts down.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        signal.await;
        self.shutdown().await
    }
}

/// `; start-up trace ID: LINK` for the start-up line (the link only when the Jaeger UI's
/// address is configured), so the trace of a pod that started badly is one click away.
fn startup_trace_note(startup: &tracing::Span, otel: &OtelSettings) -> String {
    let Some(id) = crate::telemetry::trace_id(startup) else {
        return String::new();
    };
    match otel.trace_url(&id) {
        Some(url) => format!("; start-up trace {id}: {url}"),
        None => format!("; start-up trace {id}"),
    }
}

/// Installs the SIGTERM and SIGINT handlers now (so a signal that arrives while starting
/// is not lost) and returns a future that resolves on the first of them.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                },
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                    tracing::info!("SIGINT received");
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("SIGINT received");
    }
}
