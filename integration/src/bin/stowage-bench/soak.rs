//! Soak: consecutive live runs over the same artifacts (each to a new memory binding, so
//! every run moves all of them), with retention on, reporting after each run how large
//! migration-svc's tables and their indexes are and how many dead tuples they hold. The
//! tables must level off instead of growing with every run. Deleted rows return their space
//! only through vacuum: on a server with `autovacuum = off` the soak vacuums the tables
//! after each run (as autovacuum would) and says so.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use stowage_integration::{
    app::{Bearer, BearerToken, test_common},
    db::TestDb,
    migration::{self as m},
};
use stowage_proto::migration::v1::{
    self as pb, artifact_service_client::ArtifactServiceClient,
    binding_service_client::BindingServiceClient, migration_service_client::MigrationServiceClient,
};
use stowage_shared::auth::{Role, TokenMinter};

use super::server::{Server, common_config};

/// The tables a run writes, and the evidence beside them.
const TABLES: &[&str] = &[
    "runs",
    "run_items",
    "artifacts",
    "audit_log",
    "domain_events",
    "request_log",
];

/// Artifacts are 64 bytes: the soak is about rows, not bytes, and every memory binding
/// keeps its copies in migration-svc's memory.
const SIZE: usize = 64;

pub async fn run(artifacts: usize, runs: usize) -> Result<()> {
    let db = TestDb::migrated().await?;
    let common = test_common(&db)?;
    let root = std::env::current_dir()?.join("target/bench/soak");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let (common_toml, port) = common_config(&common, &db.url)?;
    // Items of a run are kept 30 s after it ends: by the next run's end they are gone.
    let config = format!(
        "{common_toml}[migration]\nconcurrency = 32\nbatch_size = 64\npoll_interval = \"20ms\"\n\
         [retention]\nrun_items = \"30s\"\nrequests = \"1h\"\nevidence = \"1d\"\n\
         interval = \"5s\"\n"
    );
    let config_path = root.join("migration-svc.toml");
    std::fs::write(&config_path, config)?;
    let server = Server::start("migration-svc", &config_path, port, &root.join("soak.log")).await?;
    let minter = TokenMinter::from_config(&common.auth)?;
    let token = minter.mint(
        "soak",
        "soak",
        &[Role::OrgAdmin],
        Duration::from_secs(6 * 3600),
    )?;
    let bearer = BearerToken::new(Some(&token));
    let mut bindings: BindingServiceClient<Bearer> =
        BindingServiceClient::with_interceptor(server.channel.clone(), bearer.clone());
    let artifact_client =
        ArtifactServiceClient::with_interceptor(server.channel.clone(), bearer.clone());
    let mut run_client = MigrationServiceClient::with_interceptor(server.channel.clone(), bearer);

    m::create_active(&mut bindings, m::memory_binding("soak-0")).await?;
    let started = Instant::now();
    super::migration_bench::upload_to(&artifact_client, artifacts, SIZE, 32).await?;
    println!(
        "soak: {artifacts} artifacts of {SIZE} B uploaded in {:.1} s; {runs} runs follow",
        started.elapsed().as_secs_f64()
    );
    let client = db.client().await?;
    let autovacuum: String = client.query_one("show autovacuum", &[]).await?.get(0);
    let vacuum_here = autovacuum != "on";
    if vacuum_here {
        println!("soak: this server runs with autovacuum = off; each run is followed by VACUUM");
    }
    println!("{}", header());
    for round in 1..=runs {
        let target =
            m::create_active(&mut bindings, m::memory_binding(&format!("soak-{round}"))).await?;
        let mut request = m::start_request(&target.id, pb::MigrationMode::Live);
        request.request_id = format!("soak-{round}");
        let started = Instant::now();
        let run = m::run_to_end(&mut run_client, request, Duration::from_secs(3600)).await?;
        let migrated = run.items.unwrap_or_default().migrated;
        if run.state() != pb::RunState::Completed || migrated != artifacts as i64 {
            bail!(
                "run {round} ended {:?} with {migrated} migrated",
                run.state()
            );
        }
        let seconds = started.elapsed().as_secs_f64();
        // Statistics are flushed at the end of each transaction; give autovacuum's view
        // of the table a moment to include the run's last ones.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if vacuum_here {
            for table in TABLES {
                client
                    .batch_execute(&format!("vacuum migration.{table}"))
                    .await?;
            }
        }
        println!("{}", sizes(&client, round, seconds).await?);
    }
    server.stop().await?;
    Ok(())
}

fn header() -> String {
    let mut line = String::from("| run | s |");
    for table in TABLES {
        line.push_str(&format!(" {table} MiB (idx) dead |"));
    }
    line
}

/// One table row: per table, heap + toast and index sizes and dead tuples.
async fn sizes(client: &tokio_postgres::Client, round: usize, seconds: f64) -> Result<String> {
    let mut line = format!("| {round} | {seconds:.1} |");
    for table in TABLES {
        let name = format!("migration.{table}");
        let row = client
            .query_one(
                "select pg_table_size($1::text::regclass), pg_indexes_size($1::text::regclass),
                        coalesce((select n_dead_tup from pg_stat_user_tables
                                  where relid = $1::text::regclass), 0)",
                &[&name],
            )
            .await?;
        let (heap, index, dead): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        let mib = |bytes: i64| bytes as f64 / (1 << 20) as f64;
        line.push_str(&format!(" {:.1} ({:.1}) {dead} |", mib(heap), mib(index)));
    }
    Ok(line)
}
