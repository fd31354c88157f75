//! The gRPC server both services run: their services behind authentication, plus open
//! `grpc.health.v1` and server reflection (v1 and v1alpha), TLS or mutual TLS when
//! configured, guarded connections ([`incoming`]), gRPC-Web for browsers behind the
//! configured CORS origins ([`web`]) and a graceful drain on shutdown.

pub mod incoming;
pub mod tls;
pub mod web;

use std::{convert::Infallible, future::Future, io, net::SocketAddr, pin::Pin};

use futures::Stream;
use http::Request;
use tokio::net::TcpListener;
use tonic::{
    Response, Status, body::Body, server::NamedService, service::RoutesBuilder, transport::Server,
};
use tonic_health::{
    ServingStatus,
    pb::{
        HealthCheckRequest, HealthCheckResponse,
        health_server::{Health, HealthServer},
    },
    server::{HealthReporter, HealthService},
};
use tower::Service;

use crate::{
    config::GrpcConfig,
    shutdown::{self, Drain, DrainTrigger},
};

/// The largest HTTP/2 header list a server takes, in bytes: well above
/// [`crate::auth::MAX_TOKEN_LEN`], so an oversized token reaches authentication and is
/// refused as UNAUTHENTICATED instead of by HTTP/2 (status 431, which clients see as
/// UNKNOWN).
pub const MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("tls: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error(transparent)]
    Cors(#[from] web::BadOrigin),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// A bound, not yet serving, gRPC server.
pub struct GrpcServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: GrpcConfig,
    routes: RoutesBuilder,
    services: Vec<&'static str>,
    health: HealthReporter,
    trigger: DrainTrigger,
    drain: Drain,
}

impl GrpcServer {
    /// Binds the listener now, so a caller asking for port 0 learns the real port.
    pub async fn bind(config: &GrpcConfig) -> Result<Self, ServerError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let (trigger, drain) = shutdown::channel();
        Ok(Self {
            listener,
            local_addr,
            config: config.clone(),
            routes: RoutesBuilder::default(),
            services: Vec::new(),
            health: HealthReporter::new(),
            trigger,
            drain,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Long-lived streams end when this starts draining.
    pub fn drain(&self) -> Drain {
        self.drain.clone()
    }

    /// Adds a service; it is reported SERVING by health and listed by reflection.
    pub fn add_service<S>(&mut self, service: S) -> &mut Self
    where
        S: Service<Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.services.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Serves until `shutdown` resolves, then: health turns NOT_SERVING, watch streams end,
    /// new calls are refused and open ones get up to the drain timeout to finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let Self {
            listener,
            local_addr,
            config,
            mut routes,
            services,
            health,
            trigger,
            drain,
        } = self;
        for name in &services {
            health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        routes.add_service(HealthServer::new(DrainingHealth {
            inner: HealthService::from_health_reporter(health.clone()),
            drain: drain.clone(),
        }));
        let reflection = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(stowage_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name("grpc.health.v1.Health");
            for name in &services {
                builder = builder.with_service_name(*name);
            }
            builder
        };
        routes.add_service(reflection().build_v1()?);
        routes.add_service(reflection().build_v1alpha()?);

        // HTTP/1.1 as well as HTTP/2, for gRPC-Web: CORS first (a preflight is answered
        // there), then the translation to gRPC, so telemetry sees plain gRPC calls.
        let mut builder = Server::builder()
            .accept_http1(true)
            .layer(web::cors_layer(&config.cors_origins)?)
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(crate::rpc_telemetry::RpcTelemetryLayer::new(&services))
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
            .http2_max_header_list_size(MAX_HEADER_LIST_SIZE);
        // TCP_NODELAY, the connection limit, TLS (reloaded when its files change) and the
        // handshake deadline are applied to each accepted socket: the builder's own settings
        // apply only to listeners it binds.
        let tls = match &config.tls {
            Some(tls) => Some(tls::ServerTls::load(tls).await?),
            None => None,
        };
        let connections = incoming::incoming(
            listener,
            incoming::Limits {
                handshake_timeout: config.handshake_timeout,
                max_connections: config.max_connections,
            },
            tls,
        );

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serve = builder
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(connections, async {
                let _ = stop_rx.await;
            });
        tracing::info!(%local_addr, services = ?services, tls = config.tls.is_some(), "serving gRPC");
        let mut serve = Box::pin(serve);
        tokio::select! {
            result = &mut serve => return result.map_err(ServerError::from),
            () = shutdown => {}
        }

        tracing::info!(drain_timeout = ?config.drain_timeout, "draining");
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for name in &services {
            health
                .set_service_status(*name, ServingStatus::NotServing)
                .await;
        }
        trigger.start();
        let _ = stop_tx.send(());
        match tokio::time::timeout(config.drain_timeout, &mut serve).await {
            Ok(result) => result.map_err(ServerError::from),
            Err(_) => {
                tracing::warn!("drain timeout reached; closing remaining calls");
                Ok(())
            }
        }
    }
}

/// tonic's health service, with `Watch` streams ended by the drain.
struct DrainingHealth {
    inner: HealthService,
    drain: Drain,
}

type HealthStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for DrainingHealth {
    async fn check(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = HealthStream;

    async fn watch(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let stream = self.inner.watch(request).await?.into_inner();
        Ok(Response::new(Box::pin(self.drain.clone().cut(stream))))
    }
}
