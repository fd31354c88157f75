//! What one migrated item costs the database and migration-svc: a live run of COUNT small
//! objects between two `file` directories on a private PostgreSQL cluster started with
//! `pg_stat_statements`, counting every statement clients sent to the run's database (one
//! statement is one round trip: tokio-postgres runs a cached prepared statement in one
//! exchange; BEGIN and COMMIT count too; the foreign-key checks the server runs inside a
//! statement are not counted), beside migration-svc's CPU seconds. The cluster runs with `fsync = off`: it is here to count, not to time.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use stowage_integration::{app::test_common, db::TestDb, migration as m, pg_cluster::PgCluster};
use stowage_shared::auth::TokenMinter;

use super::{
    migration_bench::{Clients, Migrated, Place, migrate_polling, upload},
    server::{Server, fresh_root, migration_config},
};

/// How often the benchmark asks for the run: rarely, so its own reads barely count.
const POLL: Duration = Duration::from_millis(250);

/// migration-svc on a private cluster that counts statements, with `count` objects of
/// 4 KiB on an active `file` binding of organization `org`.
pub(super) struct Counted {
    pub(super) server: Server,
    pub(super) clients: Clients,
    pub(super) root: PathBuf,
    pub(super) minter: TokenMinter,
    admin: tokio_postgres::Client,
    _db: TestDb,
    _cluster: PgCluster,
}

impl Counted {
    pub(super) async fn start(name: &str, org: &str, count: usize) -> Result<Self> {
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
        let root = fresh_root(name)?;
        let (config_path, port) = migration_config(&common, &db.url, &root)?;
        let log = root.join("migration-svc.log");
        let server = Server::start("migration-svc", &config_path, port, &log).await?;
        let minter = TokenMinter::from_config(&common.auth)?;
        let mut clients = Clients::new(&server.channel, &minter, org)?;
        let source = Place::new_dir(&root, "source")?;
        m::create_active(&mut clients.bindings, source.binding("source")).await?;
        upload(&clients, count, 4096, 32).await?;
        Ok(Self {
            server,
            clients,
            root,
            minter,
            admin,
            _db: db,
            _cluster: cluster,
        })
    }

    /// A live run of the `count` objects to a fresh directory `name`, asking for the run
    /// every [`POLL`]; `started` is told the run's id as soon as StartRun answers.
    pub(super) async fn migrate(
        &mut self,
        name: &str,
        count: usize,
        started: impl FnOnce(&str),
    ) -> Result<Migrated> {
        let target = Place::new_dir(&self.root, name)?;
        migrate_polling(
            &mut self.clients,
            &self.server,
            &target,
            count,
            POLL,
            started,
        )
        .await
    }

    /// Forgets the statements counted so far.
    pub(super) async fn reset(&self) -> Result<()> {
        self.admin
            .batch_execute("select pg_stat_statements_reset()")
            .await?;
        Ok(())
    }

    /// The statements executed for the database since the last reset, most called first:
    /// (calls, query).
    pub(super) async fn statements(&self) -> Result<Vec<(i64, String)>> {
        let rows = self
            .admin
            .query(
                "select calls, regexp_replace(query, '\\s+', ' ', 'g')
                 from pg_stat_statements
                 where dbid = (select oid from pg_database where datname = current_database())
                   and toplevel and query not like '%pg_stat_statements%'
                 order by calls desc",
                &[],
            )
            .await?;
        let statements: Vec<(i64, String)> =
            rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        if statements.is_empty() {
            bail!("pg_stat_statements saw nothing");
        }
        Ok(statements)
    }
}

pub async fn run(count: usize) -> Result<()> {
    let mut counted = Counted::start("database-work", "database-work", count).await?;
    counted.reset().await?;
    let run = counted.migrate("target", count, |_| ()).await?;
    let statements = counted.statements().await?;
    counted.server.stop().await?;
    report(count, run.elapsed, run.cpu_seconds, &statements);
    Ok(())
}

fn report(count: usize, elapsed: Duration, cpu: f64, statements: &[(i64, String)]) {
    let items = count as f64;
    let total: i64 = statements.iter().map(|(calls, _)| calls).sum();
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
    for (calls, query) in statements.iter().take(15) {
        let query: String = query.chars().take(110).collect();
        println!(
            "| `{}` | {calls} | {:.3} |",
            query.replace('|', "\\|"),
            *calls as f64 / items
        );
    }
}
