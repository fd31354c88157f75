//! Telemetry of each gRPC call the server handles, as one tower layer: a server span whose
//! parent is the caller's W3C `traceparent` (TraceContext propagator), carrying
//! `rpc.service`, `rpc.method`, `rpc.grpc.status_code` and the `trace_id` that log lines
//! inside it show; and the per-method, per-code request counter and latency histogram. A
//! call ends with its response body (a stream's whole life), so both see the final status,
//! which for most calls is in the trailers.

use crate::error::code_name;
use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Frame, SizeHint};
use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use prost::Message;
use tonic::{Code, Status, body::Body};
use tower::{Layer, Service};
use tracing::{Instrument, Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::instruments::Metric;

pub const REQUESTS: &str = "grpc_server_requests_total";
pub const DURATION: &str = "grpc_server_request_duration_seconds";

/// The gRPC server metrics, for the catalog.
pub fn catalog() -> Vec<Metric> {
    vec![
        Metric::counter(
            REQUESTS,
            "gRPC calls handled, by service, method and final status code (OK, NOT_FOUND, …)",
        ),
        Metric::histogram(
            DURATION,
            "Time from a gRPC call's arrival to its last response byte (for a stream, its whole \
             life), by service, method and final status code",
        )
        .unit(metrics::Unit::Seconds),
    ]
}

/// Services whose methods are labelled by name; any other path counts as `unknown`, so
/// a caller cannot grow the label set.
const BUILT_IN: &[(&str, &[&str])] = &[
    ("grpc.health.v1.Health", &["Check", "Watch"]),
    (
        "grpc.reflection.v1.ServerReflection",
        &["ServerReflectionInfo"],
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection",
        &["ServerReflectionInfo"],
    ),
];

/// `/package.Service/Method` → (service, method) for the methods this server offers.
type Methods = HashMap<String, (Arc<str>, Arc<str>)>;

/// The layer; [`RpcTelemetryLayer::new`] registers each offered method's request counter
/// at zero.
#[derive(Clone, Debug)]
pub struct RpcTelemetryLayer {
    methods: Arc<Methods>,
}

impl RpcTelemetryLayer {
    /// For a server offering `services` (full names, as in `NamedService::NAME`), whose
    /// methods are read from the workspace's descriptor set.
    pub fn new(services: &[&'static str]) -> Self {
        let mut methods = Methods::new();
        let mut add = |service: &str, method: &str| {
            methods.insert(
                format!("/{service}/{method}"),
                (Arc::from(service), Arc::from(method)),
            );
        };
        if let Ok(set) = prost_types::FileDescriptorSet::decode(stowage_proto::FILE_DESCRIPTOR_SET)
        {
            for file in &set.file {
                for service in &file.service {
                    let full = format!("{}.{}", file.package(), service.name());
                    if services.contains(&full.as_str()) {
                        for method in &service.method {
                            add(&full, method.name());
                        }
                    }
                }
            }
        }
        for (service, names) in BUILT_IN {
            for method in *names {
                add(service, method);
            }
        }
        crate::instruments::register(&catalog());
        for (service, method) in methods.values() {
            metrics::counter!(
                REQUESTS,
                "service" => service.to_string(),
                "method" => method.to_string(),
                "code" => code_name(Code::Ok),
            )
            .increment(0);
        }
        Self {
            methods: Arc::new(methods),
        }
    }
}

impl<S> Layer<S> for RpcTelemetryLayer {
    type Service = RpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcTelemetry {
            inner,
            methods: self.methods.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RpcTelemetry<S> {
    inner: S,
    methods: Arc<Methods>,
}

impl<S> Service<Request<Body>> for RpcTelemetry<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let unknown: (Arc<str>, Arc<str>) = (Arc::from("unknown"), Arc::from("unknown"));
        let (service, method) = self
            .methods
            .get(request.uri().path())
            .cloned()
            .unwrap_or(unknown);
        let span = tracing::info_span!(
            "grpc",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = Empty,
            trace_id = Empty,
        );
        let caller = TraceContextPropagator::new().extract(&Headers(request.headers()));
        let _ = span.set_parent(caller.clone());
        let ours = span.context().span().span_context().clone();
        let theirs = caller.span().span_context().clone();
        if ours.is_valid() {
            span.record("trace_id", tracing::field::display(ours.trace_id()));
        } else if theirs.is_valid() {
            // no trace export here: the caller's trace id still ties the logs together
            span.record("trace_id", tracing::field::display(theirs.trace_id()));
        }
        let mut finish = Finish {
            span: span.clone(),
            service,
            method,
            started,
            status: None,
            ended: false,
        };
        // the clone that was ready serves this call (tower's rule for `call`)
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(
            async move {
                let (parts, body) = inner.call(request).await?.into_parts();
                // errors come trailers-only: the status in the headers
                finish.status = grpc_status(&parts.headers);
                let body = Body::new(TelemetryBody {
                    inner: body,
                    finish: Some(finish),
                });
                Ok(Response::from_parts(parts, body))
            }
            .instrument(span),
        )
    }
}

/// A response body that records the call when it ends or is dropped.
struct TelemetryBody {
    inner: Body,
    finish: Option<Finish>,
}

impl http_body::Body for TelemetryBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some(finish) = &mut this.finish {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                        finish.status = Some(code);
                    }
                }
                Poll::Ready(Some(Err(status))) => finish.status = Some(status.code()),
                Poll::Ready(None) => finish.ended = true,
                Poll::Pending => {}
            }
            if finish.ended {
                this.finish = None;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One call's record, written when dropped: with the body's end, or earlier if the caller
/// went away.
struct Finish {
    span: Span,
    service: Arc<str>,
    method: Arc<str>,
    started: Instant,
    status: Option<Code>,
    ended: bool,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let code = match self.status {
            Some(code) => code,
            None if self.ended => Code::Unknown,
            // dropped before the end: the caller cancelled or the connection closed
            None => Code::Cancelled,
        };
        let elapsed = self.started.elapsed();
        self.span.record("rpc.grpc.status_code", code as i64);
        if is_server_error(code) {
            self.span.record("otel.status_code", "ERROR");
        }
        let labels = [
            ("service", self.service.to_string()),
            ("method", self.method.to_string()),
            ("code", code_name(code).to_owned()),
        ];
        metrics::counter!(REQUESTS, &labels).increment(1);
        metrics::histogram!(DURATION, &labels).record(elapsed.as_secs_f64());
        self.span.in_scope(|| {
            tracing::debug!(
                code = code_name(code),
                elapsed_ms = elapsed.as_millis() as u64,
                "grpc call finished"
            );
        });
    }
}

/// The codes OpenTelemetry counts as a server's own error.
fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

fn grpc_status(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    value.parse::<i32>().ok().map(Code::from_i32)
}

/// Request headers as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_read_from_grpc_status() {
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_status(&headers), None);
        headers.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(grpc_status(&headers), Some(Code::NotFound));
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
    }

    #[test]
    fn methods_of_offered_services_are_known_and_others_are_not() {
        let layer = RpcTelemetryLayer::new(&["stowage.migration.v1.BindingService"]);
        let (service, method) = &layer.methods["/stowage.migration.v1.BindingService/ListBindings"];
        assert_eq!(
            (&**service, &**method),
            ("stowage.migration.v1.BindingService", "ListBindings")
        );
        assert!(layer.methods.contains_key("/grpc.health.v1.Health/Check"));
        assert!(!layer.methods.keys().any(|k| k.contains("ArchiveService")));
    }
}
