//! AÏLA API: the family-tree service that stays up when its database does not.
//!
//! # Layout
//! - [`config`]: layered settings (defaults < files < `.env` < environment), secrets redacted.
//! - [`telemetry`]: logs (text or JSON with trace ids) and OpenTelemetry traces over OTLP.
//! - [`metrics`]: Prometheus metrics for `/metrics`.
//! - [`startup`]: [`startup::Application`]: binds the port first, then the database work,
//!   each start-up phase a span.
//! - [`resilience`]: the circuit breaker and its backoff; knows nothing of MongoDB.
//! - [`db`]: the gateway (only owner of the client), error classification, the supervisor
//!   (reconnect loop), indexes, published database state.
//! - [`repo`]: one module per collection, on top of the gateway.
//! - [`domain`]: parsed request types (names, emails, link types, roles, ...).
//! - [`auth`]: JWTs and bcrypt hashes compatible with the old service.
//! - [`http`]: routes, probes, errors, authentication, request spans and metrics.
//! - [`mail`]: outgoing mail (a bounded queue, a background SMTP sender with retries) and
//!   its French texts.
//! - [`redact`]: keeping the MongoDB password out of logs, spans and health.
//!
//! The development tools are member crates of the workspace, outside the service:
//! `tools/aila-chaos`, `tools/aila-bench` and `tools/aila-testkit` (the local database
//! server the tools and the test harness run).

pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod redact;
pub mod repo;
pub mod resilience;
pub mod startup;
pub mod telemetry;
