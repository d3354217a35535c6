//! Observability proven with the real programs: traces read back from a real Jaeger, the
//! service with its collector down or hanging, the `/metrics` exposition (naming,
//! cardinality, values across a database outage), and the dashboard and alert rules under
//! `observability/` checked against the metrics the service really serves; exemplars from a
//! real Prometheus leading to traces in Jaeger; and the Jaeger web UI in headless Chromium.
//!
//! Every test starts its own processes on free ports (FerretDB or `MONGOD_BIN`, Jaeger,
//! the `aila-api` binary) and waits on conditions with deadlines, never on fixed sleeps.

#[path = "../common/mod.rs"]
mod common;

mod collector_down;
mod dashboards;
mod exemplars;
mod exposition;
mod jaeger;
mod metrics;
mod prometheus;
mod service;
mod traces;
mod ui;
