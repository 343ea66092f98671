//! One purchase is one trace: the W3C trace context crosses Kafka (record headers and the
//! envelope) and gRPC (metadata) unchanged. Its own test binary because it installs the
//! process-wide telemetry.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use opentelemetry::trace::{TraceContextExt, TraceId};
use pos_events::{
    AggregateRef, EventConsumer, EventPublisher, Payload, Topic, ensure_topics, new_envelope,
};
use pos_proto::v1::TerminalSignedIn;
use pos_telemetry::{LogFormat, TelemetryConfig};
use pos_testkit::TestEnv;
use tracing_opentelemetry::OpenTelemetrySpanExt;

fn trace_id_of(context: &opentelemetry::Context) -> TraceId {
    context.span().span_context().trace_id()
}

#[tokio::test]
async fn trace_context_crosses_kafka_and_grpc() {
    let telemetry = pos_telemetry::init(&TelemetryConfig {
        service_name: "trace-test".to_owned(),
        log_format: LogFormat::Pretty,
        log_filter: "info".to_owned(),
        otlp_endpoint: None,
    })
    .expect("telemetry initialises once");

    let span = tracing::info_span!("sign_in", terminal_id = "T0000005");
    let trace_id = trace_id_of(&span.context());
    assert_ne!(
        trace_id,
        TraceId::INVALID,
        "spans carry real trace ids without an exporter"
    );

    let env = TestEnv::new();
    let config = env.bus("trace-test");
    ensure_topics(&config, &[Topic::Terminals]).await.unwrap();
    let publisher = EventPublisher::new(&config).unwrap();
    let envelope = {
        let _entered = span.enter();
        new_envelope(
            &AggregateRef::new("terminal", "T0000005"),
            1,
            "trace-test",
            Payload::TerminalSignedIn(TerminalSignedIn::default()),
        )
    };
    assert!(
        envelope.traceparent.contains(&trace_id.to_string()),
        "envelope carries the trace: {}",
        envelope.traceparent
    );
    publisher
        .publish(Topic::Terminals, "T0000005", &envelope)
        .await
        .unwrap();

    let consumer = EventConsumer::new(&config, &env.group("trace"), &[Topic::Terminals]).unwrap();
    let event = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .expect("event in time")
        .unwrap();
    assert_eq!(
        trace_id_of(&event.parent),
        trace_id,
        "record headers carry the trace"
    );

    let mut metadata = tonic::metadata::MetadataMap::new();
    {
        let _entered = span.enter();
        pos_telemetry::grpc::inject_context(&mut metadata);
    }
    assert!(metadata.get("traceparent").is_some());
    let remote = pos_telemetry::grpc::extract_context(&metadata);
    assert_eq!(
        trace_id_of(&remote),
        trace_id,
        "gRPC metadata carries the trace"
    );

    drop(span);
    telemetry.shutdown();
}
