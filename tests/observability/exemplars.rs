//! From metrics to traces, with the real programs: the service's latency histograms carry
//! trace-id exemplars in `/metrics`, a real Prometheus (exemplar storage on) scrapes and
//! stores them, and every trace id it returns from `/api/v1/query_exemplars` is a trace a
//! real Jaeger holds, containing the span that was measured.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{DEADLINE, Database, wait_until};
use crate::jaeger::Jaeger;
use crate::prometheus::{Prometheus, StoredExemplar};
use crate::service::Service;

fn is_trace_id(id: &str) -> bool {
    id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()) && id != "0".repeat(32)
}

/// Waits until Prometheus holds an exemplar of `selector` and returns them all.
async fn stored(prometheus: &Prometheus, selector: &str) -> Vec<StoredExemplar> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = prometheus.exemplars(selector).await;
        if !found.is_empty() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus stored no exemplar of {selector} within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn prometheus_exemplars_lead_to_the_traces_jaeger_holds() {
    let jaeger = Jaeger::start().await;
    let db = Database::start().await;
    let endpoint = jaeger.otlp_endpoint();
    let service = Service::start(
        &db.url(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    )
    .await;
    service.wait_ready().await;
    let token = service.register("exemplar@example.com").await;
    for name in ["Ada", "Grace", "Hedy"] {
        let r = service
            .post(
                "/api/persons",
                json!({"first_name": name, "last_name": "Test", "gender": "female"}),
                Some(&token),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    // The exposition itself: bucket lines with `# {trace_id="..."} value timestamp`.
    let m = service.metrics().await;
    for family in [
        "aila_http_server_request_duration_seconds_bucket",
        "aila_db_operation_duration_seconds_bucket",
    ] {
        let with: Vec<_> = m
            .matching(family, &[])
            .filter_map(|s| s.exemplar.as_ref())
            .collect();
        assert!(!with.is_empty(), "no exemplar on any {family} line");
        for e in with {
            assert!(
                is_trace_id(&e.labels["trace_id"]) && e.labels.len() == 1,
                "{family} exemplar labels {:?}",
                e.labels
            );
            assert!(
                e.timestamp.is_some(),
                "{family} exemplar without a timestamp"
            );
        }
    }

    let started = Instant::now();
    let address = service.address.trim_start_matches("http://").to_string();
    let prometheus = Prometheus::start(&address).await;
    let cases = [
        (
            r#"aila_http_server_request_duration_seconds_bucket{method="POST",route="/api/persons"}"#,
            "POST /api/persons",
        ),
        (
            r#"aila_db_operation_duration_seconds_bucket{operation="insert_one",collection="persons"}"#,
            "insert_one persons",
        ),
    ];
    for (selector, span_name) in cases {
        let exemplars = stored(&prometheus, selector).await;
        let family = selector.split('{').next().unwrap();
        for e in &exemplars {
            assert!(is_trace_id(&e.trace_id), "{selector}: exemplar {e:?}");
            assert_eq!(e.series["__name__"], family, "{selector}: exemplar {e:?}");
            assert!(e.value > 0.0, "{selector}: exemplar value {}", e.value);
        }
        // Each stored trace id opens a trace in Jaeger that holds the measured span.
        for e in &exemplars {
            wait_until(
                &format!("Jaeger to hold trace {} with `{span_name}`", e.trace_id),
                || async {
                    jaeger
                        .trace(&e.trace_id)
                        .await
                        .is_some_and(|t| t.spans.iter().any(|s| s.name == span_name))
                },
            )
            .await;
        }
        eprintln!(
            "exemplars: {} stored for {selector}, each a Jaeger trace with `{span_name}` ({:?} after Prometheus started)",
            exemplars.len(),
            started.elapsed()
        );
    }
}
