//! The `aila-api` binary: settings, telemetry, start, serve until SIGTERM/SIGINT, flush.

use std::time::SystemTime;

use aila_api::config::{ConfigSources, Settings};
use aila_api::metrics::Metrics;
use aila_api::startup::{Application, shutdown_signal};
use aila_api::telemetry::{PastPhase, Telemetry, init_fallback_logging};
use opentelemetry::KeyValue;

#[tokio::main]
async fn main() {
    // Reading settings is pure (it cannot log); what it did is logged right after the
    // subscriber exists, so no line is lost and nothing logs before logging is configured.
    let t0 = SystemTime::now();
    let settings = match Settings::load(&ConfigSources::from_process()) {
        Ok(s) => s,
        Err(e) => {
            init_fallback_logging();
            tracing::error!("{e}");
            std::process::exit(2);
        }
    };
    let t1 = SystemTime::now();
    let metrics = Metrics::new();
    let telemetry = Telemetry::init(&settings, metrics.clone());
    let t2 = SystemTime::now();

    let startup = telemetry.startup_span(
        t0,
        &[
            PastPhase {
                name: "config.load",
                start: t0,
                end: t1,
                attributes: vec![KeyValue::new("config.app_env", settings.app_env.clone())],
            },
            PastPhase {
                name: "telemetry.init",
                start: t1,
                end: t2,
                attributes: vec![
                    KeyValue::new("otel.exporter.enabled", telemetry.export_enabled()),
                    KeyValue::new("otel.exporter.endpoint", settings.otel.endpoint.clone()),
                ],
            },
        ],
    );
    for line in &settings.load_report {
        tracing::info!("{line}");
    }
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }

    let stop = shutdown_signal();
    let app = match Application::start(settings, metrics, startup).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("{e}");
            telemetry.shutdown();
            std::process::exit(1);
        }
    };
    let result = app.run_until(stop).await;
    telemetry.shutdown();
    if let Err(e) = result {
        tracing::error!("server error: {e}");
        std::process::exit(1);
    }
}
