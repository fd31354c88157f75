//! Both services in-process on port 0 over one fresh database, with typed clients that
//! carry a bearer token.

use std::{net::SocketAddr, time::Duration};

use anyhow::Result;
use secrecy::SecretString;
use stowage_proto::{
    archive::v1::{
        archive_admin_service_client::ArchiveAdminServiceClient,
        archive_service_client::ArchiveServiceClient,
    },
    migration::v1::{
        artifact_service_client::ArtifactServiceClient,
        binding_service_client::BindingServiceClient,
        evidence_service_client::EvidenceServiceClient,
        migration_service_client::MigrationServiceClient,
    },
};
use stowage_shared::{
    auth::{Role, TokenMinter},
    config::{AuthConfig, Common, GrpcConfig, KeysConfig, LogConfig, MetricsConfig},
    keyring,
    startup::ServiceBinary,
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

use crate::db::TestDb;

/// The channel of a client whose every call carries `authorization: Bearer <token>`.
pub type Bearer = InterceptedService<Channel, BearerToken>;

#[derive(Clone, Debug)]
pub struct BearerToken(Option<MetadataValue<tonic::metadata::Ascii>>);

impl BearerToken {
    /// `authorization: Bearer <token>` on every call (`None`: no header).
    pub fn new(token: Option<&str>) -> Self {
        Self(token.map(|t| format!("Bearer {t}").parse().expect("ASCII token")))
    }
}

/// The token of operator `ops-1` of `organization` with `role`, for an hour, signed with
/// the auth secret of `common` (a service process started from it accepts it).
pub fn operator_token(common: &Common, organization: &str, role: Role) -> Result<String> {
    let minter = TokenMinter::from_config(&common.auth)?;
    Ok(minter.mint("ops-1", organization, &[role], Duration::from_secs(3600))?)
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Configuration the harness gives both services: everything on loopback port 0,
/// a random signing secret and a random KEK.
pub fn test_common(db: &TestDb) -> Result<Common> {
    let kek = keyring::generate_kek_base64()?;
    let secret = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        keyring::random_array::<48>()?,
    );
    Ok(Common {
        database: db.config(),
        grpc: GrpcConfig {
            drain_timeout: Duration::from_secs(5),
            ..GrpcConfig::on(SocketAddr::from(([127, 0, 0, 1], 0)))
        },
        metrics: MetricsConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        },
        log: LogConfig::default(),
        auth: AuthConfig {
            hs256_secret: Some(SecretString::from(secret)),
            ..AuthConfig::default()
        },
        keys: KeysConfig {
            primary: "test-1".to_owned(),
            keks: [("test-1".to_owned(), SecretString::from(kek))].into(),
        },
        client: Default::default(),
        retention: Default::default(),
    })
}

/// The runner settings tests use: quick to notice work, quick to give up on a dead
/// store, short leases so a takeover happens within seconds.
pub fn test_runner() -> migration_svc::config::RunnerConfig {
    migration_svc::config::RunnerConfig {
        concurrency: 4,
        batch_size: 8,
        plan_page: 7,
        lease_ttl: Duration::from_secs(3),
        poll_interval: Duration::from_millis(50),
        target_attempts: 2,
        store_retries: 1,
        store_retry_timeout: Duration::from_secs(2),
        watch_heartbeat: Duration::from_secs(1),
        ..Default::default()
    }
}

/// How a test adjusts the services' configuration before they start.
pub struct Configs<'a> {
    pub migration: &'a mut migration_svc::config::Config,
    pub archive: &'a mut archive_svc::config::Config,
}

/// A running pair of services.
pub struct TestApp {
    pub db: TestDb,
    pub common: Common,
    pub migration_addr: SocketAddr,
    pub archive_addr: SocketAddr,
    pub migration_metrics: Option<SocketAddr>,
    pub archive_metrics: Option<SocketAddr>,
    minter: TokenMinter,
    stop: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<Result<(), String>>>,
}

/// Starts both services on a fresh migrated database.
pub async fn spawn_app() -> Result<TestApp> {
    let db = TestDb::migrated().await?;
    let common = test_common(&db)?;
    spawn_app_with(db, common, |_| {}).await
}

/// [`spawn_app`], and a connection to its database (to read and write the tables behind
/// the services, such as the scanning application's).
pub async fn spawn_app_and_db() -> Result<(TestApp, tokio_postgres::Client)> {
    let app = spawn_app().await?;
    let db = app.db.client().await?;
    Ok((app, db))
}

/// Starts both services after `configure` adjusted them.
pub async fn spawn_app_configured(configure: impl FnOnce(Configs<'_>)) -> Result<TestApp> {
    let db = TestDb::migrated().await?;
    let common = test_common(&db)?;
    spawn_app_with(db, common, configure).await
}

/// The archive store `spawn_app` gives archive-svc: a process-local memory store.
pub fn archive_store_name(db: &TestDb) -> String {
    format!("archive-{}", db.name)
}

/// Starts both services with `common`, after `configure` adjusts their configuration.
pub async fn spawn_app_with(
    db: TestDb,
    common: Common,
    configure: impl FnOnce(Configs<'_>),
) -> Result<TestApp> {
    // Service logs at WARN and above (RUST_LOG overrides) show with a failing test.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let mut migration_config = migration_svc::config::Config {
        common: common.clone(),
        migration: test_runner(),
    };
    let mut archive_config = archive_svc::config::Config {
        common: common.clone(),
        archive: Default::default(),
    };
    archive_config.archive.default_store = Some(archive_svc::config::ArchiveStoreConfig {
        connection_string: SecretString::from(format!("memory://{}", archive_store_name(&db))),
        container: "archives".into(),
    });
    configure(Configs {
        migration: &mut migration_config,
        archive: &mut archive_config,
    });
    let migration = migration_svc::startup::App::build(migration_config).await?;
    let archive = archive_svc::startup::App::build(archive_config).await?;
    let (migration_addr, archive_addr) = (migration.local_addr(), archive.local_addr());
    let migration_metrics = migration.metrics_addr();
    let archive_metrics = archive.metrics_addr();
    let (stop_migration, stopped_migration) = oneshot::channel::<()>();
    let (stop_archive, stopped_archive) = oneshot::channel::<()>();
    let tasks = vec![
        tokio::spawn(async move {
            migration
                .run_until_stopped(async move {
                    let _ = stopped_migration.await;
                })
                .await
                .map_err(|e| e.to_string())
        }),
        tokio::spawn(async move {
            archive
                .run_until_stopped(async move {
                    let _ = stopped_archive.await;
                })
                .await
                .map_err(|e| e.to_string())
        }),
    ];
    let minter = TokenMinter::from_config(&common.auth)?;
    Ok(TestApp {
        db,
        common,
        migration_addr,
        archive_addr,
        migration_metrics,
        archive_metrics,
        minter,
        stop: vec![stop_migration, stop_archive],
        tasks,
    })
}

impl TestApp {
    /// A valid token for `org` with `roles`, an hour long.
    pub fn token(&self, org: &str, roles: &[Role]) -> String {
        self.minter
            .mint("test-user", org, roles, Duration::from_secs(3600))
            .expect("minting a test token")
    }

    pub fn minter(&self) -> &TokenMinter {
        &self.minter
    }

    pub async fn channel(&self, addr: SocketAddr) -> Channel {
        Endpoint::from_shared(format!("http://{addr}"))
            .expect("loopback URL")
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("connecting to the service under test")
    }

    fn bearer(token: Option<&str>) -> BearerToken {
        BearerToken::new(token)
    }

    /// `BindingService` as the holder of `token` (`None`: no authorization header).
    pub async fn bindings(&self, token: Option<&str>) -> BindingServiceClient<Bearer> {
        let channel = self.channel(self.migration_addr).await;
        BindingServiceClient::with_interceptor(channel, Self::bearer(token))
    }

    pub async fn artifacts(&self, token: Option<&str>) -> ArtifactServiceClient<Bearer> {
        let channel = self.channel(self.migration_addr).await;
        ArtifactServiceClient::with_interceptor(channel, Self::bearer(token))
    }

    pub async fn runs(&self, token: Option<&str>) -> MigrationServiceClient<Bearer> {
        let channel = self.channel(self.migration_addr).await;
        MigrationServiceClient::with_interceptor(channel, Self::bearer(token))
    }

    pub async fn evidence(&self, token: Option<&str>) -> EvidenceServiceClient<Bearer> {
        let channel = self.channel(self.migration_addr).await;
        EvidenceServiceClient::with_interceptor(channel, Self::bearer(token))
    }

    /// Another migration-svc replica on the same database and keys, with `runner`
    /// settings. Dropping it (or [`Replica::kill`]) stops it as a crash would: no drain,
    /// its leases left to expire.
    pub async fn replica(&self, runner: migration_svc::config::RunnerConfig) -> Result<Replica> {
        Replica::serve::<migration_svc::startup::App>(migration_svc::config::Config {
            common: self.common.clone(),
            migration: runner,
        })
        .await
    }

    /// Another archive-svc replica on the same database and keys, with `archive`
    /// settings (its schedule, queue workers and sweeper run too). Dropping it stops it as
    /// a crash would.
    pub async fn archive_replica(
        &self,
        archive: archive_svc::config::ArchiveConfig,
    ) -> Result<Replica> {
        Replica::serve::<archive_svc::startup::App>(archive_svc::config::Config {
            common: self.common.clone(),
            archive,
        })
        .await
    }

    /// archive-svc's schedule tick now, as its cron would run it with `archive`'s
    /// policy and limit: the due jobs enqueued for every replica's queue workers. How
    /// many were added.
    pub async fn archive_tick(&self, archive: &archive_svc::config::ArchiveConfig) -> Result<u64> {
        let config = archive_svc::config::Config {
            common: self.common.clone(),
            archive: archive.clone(),
        };
        let pool = archive_svc::startup::migrated_pool(&config).await?;
        let policy = archive.policy().map_err(anyhow::Error::msg)?;
        let cron = archive.schedule.parse()?;
        let scheduler = archive_svc::domain::scheduler::Scheduler::new(
            policy,
            pool,
            cron,
            archive.jobs_per_tick,
        );
        scheduler
            .tick()
            .await?
            .ok_or_else(|| anyhow::anyhow!("another tick ran"))
    }

    pub async fn archive_admin(&self, token: Option<&str>) -> ArchiveAdminServiceClient<Bearer> {
        let channel = self.channel(self.archive_addr).await;
        ArchiveAdminServiceClient::with_interceptor(channel, Self::bearer(token))
    }

    pub async fn archive(&self, token: Option<&str>) -> ArchiveServiceClient<Bearer> {
        let channel = self.channel(self.archive_addr).await;
        ArchiveServiceClient::with_interceptor(channel, Self::bearer(token))
    }

    /// Stops both services gracefully and reports how they ended.
    pub async fn stop(mut self) -> Result<()> {
        for stop in self.stop.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            task.await?.map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }
}

/// A migration-svc replica started by [`TestApp::replica`].
pub struct Replica {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Replica {
    async fn serve<A: ServiceBinary>(config: A::Config) -> Result<Self> {
        let app = A::build(config).await?;
        let addr = app.local_addr();
        let task = tokio::spawn(async move {
            let _ = app.run_until_stopped(std::future::pending()).await;
        });
        Ok(Self { addr, task })
    }

    /// Stops the replica at once, mid-work, like a killed process.
    pub async fn kill(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.task.abort();
    }
}
