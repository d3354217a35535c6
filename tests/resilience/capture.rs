//! What the in-process service of *one* test logs, captured for inspection (the redaction
//! tests assert no password ever appears in a log line or span field; the outage tests
//! read the reconnect and transition lines).
//!
//! Each test gets its own buffer: [`install`] sets a thread-local subscriber for the test's
//! thread, and a `#[tokio::test]` runtime runs the service's tasks on that thread, so
//! tests running in parallel never read each other's lines.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::format::FmtSpan;

/// One test's captured logs; capturing stops when it is dropped.
pub struct Captured {
    buffer: Arc<Mutex<Vec<u8>>>,
    _guard: DefaultGuard,
}

impl Captured {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this thread's logs at debug level, with span fields on every line.
pub fn install() -> Captured {
    install_with(FmtSpan::NONE)
}

/// Like [`install`], and every span too, with all its fields, when it opens and closes
/// (what a trace exporter would receive).
pub fn install_with_spans() -> Captured {
    install_with(FmtSpan::NEW | FmtSpan::CLOSE)
}

fn install_with(span_events: FmtSpan) -> Captured {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buffer.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("debug,hyper=info,h2=info,tower=info,poem=info")
        .with_span_events(span_events)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // A callsite first hit by another test's thread while this subscriber was being
    // registered can keep a stale "never" interest (tracing caches interest globally): ask
    // every callsite again now that this one is in place.
    tracing::callsite::rebuild_interest_cache();
    Captured {
        buffer,
        _guard: guard,
    }
}

/// Asks every callsite again whether a subscriber wants it: call once the service is up,
/// when its callsites have been registered (possibly by other tests' threads at the same
/// time as this test's subscriber).
pub fn refresh_interest() {
    tracing::callsite::rebuild_interest_cache();
}
