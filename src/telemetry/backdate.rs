//! The `startup` root span begins when the process does.
//!
//! The `startup` span can only exist once telemetry does, yet its first children
//! (`config.load`, `telemetry.init`) ran before, and tracing-opentelemetry gives a span the
//! instant it was created as its start. [`Backdating`], a span processor in front of the
//! exporter, moves the start of the one span registered in [`StartOverride`] back to the
//! instant given, so no child of the trace begins before its parent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use opentelemetry::Context;
use opentelemetry::trace::SpanId;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

/// The span whose start moves back, and where to.
#[derive(Debug, Clone, Default)]
pub struct StartOverride {
    armed: Arc<AtomicBool>,
    target: Arc<Mutex<Option<(SpanId, SystemTime)>>>,
}

impl StartOverride {
    /// The span `id` starts at `start` (if that is earlier than its own start).
    pub fn set(&self, id: SpanId, start: SystemTime) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = Some((id, start));
        self.armed.store(true, Ordering::Release);
    }

    /// The start for `id`, once (a span ends once).
    fn take(&self, id: SpanId) -> Option<SystemTime> {
        // Every span ends through here: no lock unless an override is waiting.
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let mut target = self.target.lock().unwrap_or_else(|e| e.into_inner());
        match *target {
            Some((wanted, start)) if wanted == id => {
                *target = None;
                self.armed.store(false, Ordering::Release);
                Some(start)
            }
            _ => None,
        }
    }
}

/// Wraps the span processor that exports: applies the [`StartOverride`] on the way.
#[derive(Debug)]
pub struct Backdating<P> {
    /// The exporting processor.
    pub inner: P,
    /// Which span to move.
    pub starts: StartOverride,
}

impl<P: SpanProcessor> SpanProcessor for Backdating<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        if let Some(start) = self.starts.take(span.span_context.span_id()) {
            span.start_time = span.start_time.min(start);
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    #[derive(Debug, Clone, Default)]
    struct Capture(Arc<Mutex<Vec<SpanData>>>);

    impl SpanProcessor for Capture {
        fn on_start(&self, _: &mut Span, _: &Context) {}
        fn on_end(&self, span: SpanData) {
            self.0.lock().unwrap().push(span);
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    #[test]
    fn only_the_registered_span_starts_earlier_and_only_once() {
        let capture = Capture::default();
        let starts = StartOverride::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Backdating {
                inner: capture.clone(),
                starts: starts.clone(),
            })
            .build();
        let tracer = provider.tracer("test");
        let before = SystemTime::now() - Duration::from_millis(50);
        let mut root = tracer.start("startup");
        let mut other = tracer.start("other");
        starts.set(root.span_context().span_id(), before);
        other.end();
        root.end();
        let spans = capture.0.lock().unwrap();
        let by_name = |n: &str| spans.iter().find(|s| s.name == n).unwrap();
        assert_eq!(by_name("startup").start_time, before);
        assert!(by_name("other").start_time > before);
        // Used once: the override is gone after the span ended.
        let id = by_name("startup").span_context.span_id();
        assert!(starts.take(id).is_none());
    }
}
