//! Logs and traces.
//!
//! One `tracing` subscriber feeds two outputs: log lines (human-readable, or JSON with
//! `trace_id`/`span_id` when `LOG_FORMAT=json`; `RUST_LOG` filters) and OpenTelemetry spans
//! exported over OTLP/gRPC in batches from a background thread. A collector that is down or
//! slow never slows a request: the batch queue drops what it cannot send, failed exports are
//! counted in `/metrics` and a warning is logged once (and once again when export recovers).
//! With `OTEL_SDK_DISABLED=true` spans still get ids (for the JSON logs) but nothing is sent.
//! W3C trace context (`traceparent`) is the propagation format.
//!
//! [`Telemetry::startup_span`] opens the `startup` trace at the process's first instant
//! (see [`backdate`]), with the phases that ran before telemetry existed as its children.

mod backdate;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use self::backdate::{Backdating, StartOverride};
use crate::config::{LogFormat, Settings};
use crate::metrics::Metrics;

/// Keeps the tracer provider alive; [`Telemetry::shutdown`] flushes it.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    export_enabled: bool,
    starts: StartOverride,
}

/// Span data with explicit times, for start-up phases that ran before telemetry existed.
#[derive(Debug, Clone)]
pub struct PastPhase {
    /// Span name.
    pub name: &'static str,
    /// Start.
    pub start: SystemTime,
    /// End.
    pub end: SystemTime,
    /// Attributes.
    pub attributes: Vec<KeyValue>,
}

/// Targets silenced by default: the OpenTelemetry SDK's own logs (export failures are
/// reported once by this module instead of once per batch).
const QUIET_TARGETS: &str =
    "opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,tonic=off,h2=off,hyper=warn";

fn filter(directives: &str) -> EnvFilter {
    let mut all = QUIET_TARGETS.to_string();
    for d in directives.split(',').filter(|d| !d.trim().is_empty()) {
        all.push(',');
        all.push_str(d.trim());
    }
    EnvFilter::try_new(&all).unwrap_or_else(|_| EnvFilter::new(format!("{QUIET_TARGETS},info")))
}

impl Telemetry {
    /// Installs the global subscriber and the tracer provider. Must run inside the Tokio
    /// runtime (the gRPC exporter needs it). Never fails: a bad endpoint disables export
    /// with a warning.
    pub fn init(settings: &Settings, metrics: Arc<Metrics>) -> Telemetry {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let resource = Resource::builder()
            .with_service_name(settings.otel.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .with_attribute(KeyValue::new(
                "deployment.environment.name",
                settings.app_env.clone(),
            ))
            .build();
        let mut builder = SdkTracerProvider::builder().with_resource(resource);
        let mut export_problem = None;
        let export_enabled = !settings.otel.disabled;
        let starts = StartOverride::default();
        // Exemplars name traces: only worth it when the traces go somewhere.
        metrics.set_exemplars(export_enabled);
        if export_enabled {
            match opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(settings.otel.endpoint.clone())
                .with_timeout(Duration::from_secs(3))
                .build()
            {
                Ok(exporter) => {
                    let batch = BatchSpanProcessor::builder(CountingExporter {
                        inner: exporter,
                        metrics,
                        failing: Arc::new(AtomicBool::new(false)),
                        endpoint: settings.otel.endpoint.clone(),
                    })
                    .build();
                    builder = builder.with_span_processor(Backdating {
                        inner: batch,
                        starts: starts.clone(),
                    });
                }
                Err(e) => {
                    export_problem = Some(format!(
                        "trace export disabled: OTLP exporter for {} refused: {e}",
                        settings.otel.endpoint
                    ))
                }
            }
        }
        let provider = builder.build();
        let tracer = provider.tracer("aila-api");
        opentelemetry::global::set_tracer_provider(provider.clone());

        let otel_layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false);
        let fmt_layer = match settings.log.format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_target(true)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .fmt_fields(NoSpanFields)
                .event_format(JsonWithTrace)
                .boxed(),
        };
        let _ = tracing_subscriber::registry()
            .with(filter(&settings.log.filter))
            .with(otel_layer)
            .with(fmt_layer)
            .try_init();
        if let Some(p) = export_problem {
            tracing::warn!("{p}");
        }
        Telemetry {
            provider,
            export_enabled,
            starts,
        }
    }

    /// The root span of start-up: it begins at `began` (the process's first instant, before
    /// telemetry existed) and has `past` (the phases that ran before) as its first children;
    /// everything start-up does later nests under it.
    pub fn startup_span(&self, began: SystemTime, past: &[PastPhase]) -> tracing::Span {
        let span = tracing::info_span!("startup", service.version = env!("CARGO_PKG_VERSION"));
        let cx = span.context();
        let id = cx.span().span_context().span_id();
        self.starts.set(id, began);
        self.record_past_phases(&span, past);
        span
    }

    /// Records phases that ran before telemetry existed as children of `parent`.
    pub fn record_past_phases(&self, parent: &tracing::Span, phases: &[PastPhase]) {
        let cx = parent.context();
        let tracer = self.provider.tracer("aila-api");
        for phase in phases {
            let span = tracer
                .span_builder(phase.name)
                .with_start_time(phase.start)
                .with_attributes(phase.attributes.clone())
                .start_with_context(&tracer, &cx);
            let cx = Context::current_with_span(span);
            cx.span().end_with_timestamp(phase.end);
        }
    }

    /// True when spans are sent somewhere.
    pub fn export_enabled(&self) -> bool {
        self.export_enabled
    }

    /// Flushes pending spans (bounded) and stops the exporter.
    pub fn shutdown(&self) {
        let provider = self.provider.clone();
        // The batch processor blocks on its own thread; keep the runtime free. Shutting down
        // exports what is pending (a force_flush first would only double the wait when the
        // collector hangs: each export may take the exporter's whole timeout).
        let _ = std::thread::spawn(move || {
            let _ = provider.shutdown_with_timeout(Duration::from_secs(5));
        })
        .join();
    }

    /// Flushes pending spans without stopping (tests use it before reading Jaeger).
    pub fn flush(&self) {
        let provider = self.provider.clone();
        let _ = std::thread::spawn(move || provider.force_flush()).join();
    }
}

/// The trace id of `span` (32 hex digits), when it has one.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Minimal logging for the one case where the settings cannot be read: the error line.
pub fn init_fallback_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter("info"))
        .try_init();
}

/// Wraps the OTLP exporter: counts failures and dropped spans, warns once per episode.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    metrics: Arc<Metrics>,
    failing: Arc<AtomicBool>,
    endpoint: String,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("trace export to {} works again", self.endpoint);
                }
            }
            Err(e) => {
                self.metrics.trace_export_failures.inc();
                self.metrics.spans_dropped.inc_by(n);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "trace export to {} failed ({e}); spans are dropped and counted in aila_trace_spans_dropped_total until it works again",
                        self.endpoint
                    );
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The span fields of the JSON layer: none. A JSON line names its span and trace (the
/// trace holds the span's fields), so the text of every span's fields, which the layer
/// would otherwise write for each span of each request, is never read.
struct NoSpanFields;

impl<'w> FormatFields<'w> for NoSpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        _writer: Writer<'w>,
        _fields: R,
    ) -> std::fmt::Result {
        Ok(())
    }
}

/// JSON log lines: `timestamp`, `level`, `target`, `message`, the event's fields, `span`,
/// and the OpenTelemetry `trace_id` and `span_id` of the current span.
struct JsonWithTrace;

impl<S, N> FormatEvent<S, N> for JsonWithTrace
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut obj = serde_json::Map::new();
        obj.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        obj.insert("level".into(), event.metadata().level().as_str().into());
        obj.insert("target".into(), event.metadata().target().into());
        let mut fields = JsonFields(serde_json::Map::new());
        event.record(&mut fields);
        obj.extend(fields.0);
        if let Some(span) = ctx.lookup_current() {
            obj.insert("span".into(), span.name().into());
            let cx = tracing::Span::current().context();
            let sc = cx.span().span_context().clone();
            if sc.is_valid() {
                obj.insert("trace_id".into(), sc.trace_id().to_string().into());
                obj.insert("span_id".into(), sc.span_id().to_string().into());
            }
        }
        let line = serde_json::Value::Object(obj).to_string();
        writer.write_str(&line)?;
        writer.write_char('\n')
    }
}

struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
