//! What one migrated item costs the database and migration-svc: a live run of COUNT small
//! objects between two `file` directories on a private PostgreSQL cluster started with
//! `pg_stat_statements`, counting every statement the server executed for the run's
//! database (one statement is one round trip: tokio-postgres runs a cached prepared
//! statement in one exchange; BEGIN and COMMIT count too), beside migration-svc's CPU
//! seconds. The cluster runs with `fsync = off`: it is here to count, not to time.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use stowage_integration::{app::test_common, db::TestDb, pg_cluster::PgCluster};
use stowage_proto::migration::v1 as pb;
use stowage_shared::auth::TokenMinter;

use super::{
    migration_bench::{Clients, Place, migrate_polling, upload},
    server::{Server, common_config},
};

/// How often the benchmark asks for the run: rarely, so its own reads barely count.
const POLL: Duration = Duration::from_millis(250);

pub async fn run(count: usize) -> Result<()> {
    let settings = "shared_preload_libraries = 'pg_stat_statements'\n\
                    pg_stat_statements.track = all\npg_stat_statements.max = 1000\n";
    let cluster = PgCluster::start_with(None, settings)?
        .context("no initdb found: install PostgreSQL's server package")?;
    let db = TestDb::migrated_on(&cluster.url("127.0.0.1", "")).await?;
    let admin = db.client().await?;
    admin
        .batch_execute("create extension if not exists pg_stat_statements")
        .await?;
    let common = test_common(&db)?;
    let root = std::env::current_dir()?.join("target/bench/database-work");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let (common_toml, port) = common_config(&common, &db.url)?;
    let config = format!(
        "{common_toml}[migration]\nconcurrency = 32\nbatch_size = 64\npoll_interval = \"20ms\"\n"
    );
    let config_path = root.join("migration-svc.toml");
    std::fs::write(&config_path, config)?;
    let log = root.join("migration-svc.log");
    let server = Server::start("migration-svc", &config_path, port, &log).await?;
    let minter = TokenMinter::from_config(&common.auth)?;
    let mut clients = Clients::new(&server.channel, &minter, "database-work")?;
    let source = Place::new_dir(&root, "source")?;
    let binding = clients
        .bindings
        .create_binding(source.binding("source"))
        .await?
        .into_inner();
    clients
        .bindings
        .activate_binding(pb::ActivateBindingRequest {
            id: binding.id,
            request_id: String::new(),
        })
        .await?;
    upload(&clients, count, 4096, 32).await?;

    admin
        .batch_execute("select pg_stat_statements_reset()")
        .await?;
    let target = Place::new_dir(&root, "target")?;
    let run = migrate_polling(&mut clients, &server, &target, count, POLL).await?;
    let statements = admin
        .query(
            "select calls, regexp_replace(query, '\\s+', ' ', 'g')
             from pg_stat_statements
             where dbid = (select oid from pg_database where datname = current_database())
               and query not like '%pg_stat_statements%'
             order by calls desc",
            &[],
        )
        .await?;
    server.stop().await?;
    if statements.is_empty() {
        bail!("pg_stat_statements saw nothing");
    }
    report(count, run.elapsed, run.cpu_seconds, &statements);
    Ok(())
}

fn report(count: usize, elapsed: Duration, cpu: f64, statements: &[tokio_postgres::Row]) {
    let items = count as f64;
    let total: i64 = statements.iter().map(|row| row.get::<_, i64>(0)).sum();
    println!(
        "\n{count} × 4 KiB, file → file: {:.2} s, {:.0} objects/s",
        elapsed.as_secs_f64(),
        items / elapsed.as_secs_f64()
    );
    println!(
        "migration-svc CPU per item: {:.3} ms; database round trips per item: **{:.3}** \
         ({total} statements)",
        1000.0 * cpu / items,
        total as f64 / items
    );
    println!("\n| statement | calls | per item |\n|---|---|---|");
    for row in statements.iter().take(15) {
        let calls: i64 = row.get(0);
        let query: &str = row.get(1);
        let query: String = query.chars().take(110).collect();
        println!(
            "| `{}` | {calls} | {:.3} |",
            query.replace('|', "\\|"),
            calls as f64 / items
        );
    }
}
