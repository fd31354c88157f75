//! Traces: a call carrying a W3C `traceparent` becomes a server span of the caller's trace,
//! with `rpc.*` attributes and the final status code, exported through an in-memory
//! exporter; and the call's log lines carry its trace id.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry::{
    Value,
    trace::{SpanId, SpanKind, TraceId, TracerProvider as _},
};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use stowage_integration::spawn_app;
use stowage_proto::migration::v1 as pb;
use stowage_shared::auth::Role;
use tracing_subscriber::{EnvFilter, Registry, fmt::MakeWriter, layer::SubscriberExt};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn traceparent(
    trace: &str,
    parent: &str,
) -> tonic::metadata::MetadataValue<tonic::metadata::Ascii> {
    format!("00-{trace}-{parent}-01").parse().unwrap()
}

fn with_traceparent<T>(message: T, trace: &str, parent: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("traceparent", traceparent(trace, parent));
    request
}

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// Waits (five seconds at most) for the server span named `name`: it ends with the
/// response body, a moment after the client has the response.
async fn server_span(exporter: &InMemorySpanExporter, name: &str) -> SpanData {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let spans = exporter.get_finished_spans().unwrap();
        if let Some(span) = spans.into_iter().find(|s| s.name == name) {
            return span;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no span {name}: {:?}",
            exporter
                .get_finished_spans()
                .unwrap()
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_call_with_a_traceparent_is_a_server_span_of_the_callers_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let logs = Captured::default();
    let subscriber = Registry::default()
        .with(EnvFilter::new("info,stowage_shared::rpc_telemetry=debug"))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(logs.clone())
                .with_ansi(false),
        );
    // this thread runs the test's runtime, and so the services' tasks
    let _default = tracing::subscriber::set_default(subscriber);

    let app = spawn_app().await.unwrap();
    let token = app.token("org-traces", &[Role::Member]);
    let mut bindings = app.bindings(Some(&token)).await;
    bindings
        .list_bindings(with_traceparent(
            pb::ListBindingsRequest::default(),
            TRACE,
            PARENT,
        ))
        .await
        .unwrap();
    let other_trace = "0af7651916cd43dd8448eb211c80319c";
    let missing = bindings
        .get_binding(with_traceparent(
            pb::GetBindingRequest {
                id: uuid::Uuid::new_v4().to_string(),
            },
            other_trace,
            "b7ad6b7169203331",
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let list = server_span(
        &exporter,
        "stowage.migration.v1.BindingService/ListBindings",
    )
    .await;
    assert_eq!(
        list.span_context.trace_id(),
        TraceId::from_hex(TRACE).unwrap()
    );
    assert_eq!(list.parent_span_id, SpanId::from_hex(PARENT).unwrap());
    assert!(list.parent_span_is_remote);
    assert_eq!(list.span_kind, SpanKind::Server);
    assert_eq!(attribute(&list, "rpc.system"), Some(&Value::from("grpc")));
    assert_eq!(
        attribute(&list, "rpc.service"),
        Some(&Value::from("stowage.migration.v1.BindingService"))
    );
    assert_eq!(
        attribute(&list, "rpc.method"),
        Some(&Value::from("ListBindings"))
    );
    assert_eq!(
        attribute(&list, "rpc.grpc.status_code"),
        Some(&Value::I64(0))
    );

    let get = server_span(&exporter, "stowage.migration.v1.BindingService/GetBinding").await;
    assert_eq!(
        get.span_context.trace_id(),
        TraceId::from_hex(other_trace).unwrap()
    );
    assert_eq!(
        attribute(&get, "rpc.grpc.status_code"),
        Some(&Value::I64(5))
    );
    // NOT_FOUND is the caller's problem, not a server error
    assert_eq!(get.status, opentelemetry::trace::Status::Unset);

    // spans the services open inside a call are in the caller's trace too
    let children: Vec<_> = exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.parent_span_id == list.span_context.span_id())
        .collect();
    assert!(
        children
            .iter()
            .all(|s| s.span_context.trace_id() == list.span_context.trace_id())
    );

    let logs = logs.text();
    let finished: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("grpc call finished"))
        .collect();
    assert!(
        finished
            .iter()
            .any(|l| l.contains(&format!("trace_id={TRACE}")) && l.contains("code=\"OK\"")),
        "{logs}"
    );
    assert!(
        finished
            .iter()
            .any(|l| l.contains(&format!("trace_id={other_trace}"))
                && l.contains("code=\"NOT_FOUND\"")),
        "{logs}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn log_lines_carry_the_callers_trace_id_when_no_trace_is_exported() {
    let logs = Captured::default();
    let subscriber = Registry::default()
        .with(EnvFilter::new("info,stowage_shared::rpc_telemetry=debug"))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(logs.clone()),
        );
    let _default = tracing::subscriber::set_default(subscriber);

    let app = spawn_app().await.unwrap();
    let token = app.token("org-traces", &[Role::Member]);
    app.bindings(Some(&token))
        .await
        .list_bindings(with_traceparent(
            pb::ListBindingsRequest::default(),
            TRACE,
            PARENT,
        ))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = logs.text();
        let line = text.lines().find(|l| l.contains("grpc call finished"));
        if let Some(line) = line {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(line["span"]["trace_id"], TRACE, "{line}");
            assert_eq!(line["span"]["rpc.method"], "ListBindings", "{line}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await.unwrap();
}
