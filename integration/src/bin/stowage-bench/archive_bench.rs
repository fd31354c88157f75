//! archive-svc against `psql` binary COPY on the same rows and tables.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use archive_svc::{domain::jobs::JobStatus, seed};
use stowage_integration::{app::test_common, db::TestDb};
use stowage_proto::archive::v1::{
    self as pb, archive_admin_service_client::ArchiveAdminServiceClient,
    archive_service_client::ArchiveServiceClient,
};
use stowage_shared::auth::{Role, TokenMinter};
use uuid::Uuid;

use super::server::{Server, machine_cpu};

/// Rounds of each measurement; the best counts (this machine is shared and noisy).
const ROUNDS: usize = 3;

const ITEMS: &str = "job_id, id, parent_id, path, name, kind, size_bytes, modified_at, etag, \
    mime_type, status, error, discovered_at";
const RECORDS: &str = "job_id, id, scan_item_id, source_path, destination_path, size_bytes, \
    checksum, status, attempts, last_error, started_at, completed_at";

/// Run after every pass that leaves dead or freshly written rows, so each measurement meets
/// the tables in the same state.
pub(super) const VACUUM: &str =
    "vacuum analyze archive.scan_items;\nvacuum analyze archive.file_records;\n";

/// A psql script that opens a transaction, binary-COPYs each query's rows to its file, then
/// runs `end` (which closes the transaction).
fn copy_out_script(queries: [String; 2], files: [&Path; 2], end: &str) -> String {
    let mut script = String::from("begin;\n");
    for (query, file) in queries.iter().zip(files) {
        script += &format!(
            "\\copy ({query}) to '{}' with (format binary)\n",
            file.display()
        );
    }
    script + end
}

/// Runs a psql script (through a file, so `\\copy` lines work) and times it.
pub(super) async fn psql(url: &str, script: &str, dir: &Path) -> Result<Duration> {
    let file = dir.join("script.sql");
    std::fs::write(&file, script)?;
    let start = Instant::now();
    let output = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"])
        .arg(&file)
        .output()
        .await
        .context("psql (postgresql-client) must be installed")?;
    if !output.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(start.elapsed())
}

fn authorized<T>(message: T, token: &str) -> Result<tonic::Request<T>> {
    Ok(stowage_shared::cli::authorized(
        message,
        &format!("Bearer {token}"),
    )?)
}

pub async fn run(rows: u64) -> Result<()> {
    let db = TestDb::migrated().await?;
    let common = test_common(&db)?;
    let dir = std::env::current_dir()?.join("target/bench/archive");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("store"))?;
    let (common_toml, port) = super::server::common_config(&common, &db.url)?;
    let config = format!(
        "{common_toml}[archive.default_store]\nconnection_string = \"file://{}\"\n",
        dir.join("store").display(),
    );
    let config_path = dir.join("archive-svc.toml");
    std::fs::write(&config_path, config)?;

    // Seed one COMPLETED job.
    let pool = stowage_shared::db::pool(&db.config())?;
    let spec = seed::SeedSpec {
        tenant: "bench".into(),
        jobs: 1,
        rows,
        status: JobStatus::Completed,
        terminal_days_ago: 30.0,
    };
    let seeding = Instant::now();
    let job: Uuid = seed::seed(&pool, &spec).await?[0];
    println!(
        "seeded {rows} rows in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    psql(&db.url, VACUUM, &dir).await?;

    let server = Server::start(
        "archive-svc",
        &config_path,
        port,
        &dir.join("archive-svc.log"),
    )
    .await?;
    let channel = server.channel.clone();
    let token = TokenMinter::from_config(&common.auth)?.mint(
        "bench",
        "bench",
        &[Role::SuperAdmin],
        Duration::from_secs(3600),
    )?;
    let mut admin = ArchiveAdminServiceClient::new(channel.clone());
    let mut user = ArchiveServiceClient::new(channel);

    let items_file = dir.join("items.bin");
    let records_file = dir.join("records.bin");
    let (mut raw_out, mut raw_in, mut ours_out, mut ours_in) = (vec![], vec![], vec![], vec![]);
    let mut raw_single = vec![];
    let mut stored = 0i64;
    for round in 0..ROUNDS {
        // Baseline archive: binary COPY TO a client file, then DELETE, in one transaction.
        let out = psql(
            &db.url,
            &copy_out_script(
                [
                    format!("select {ITEMS} from archive.scan_items where job_id = '{job}'"),
                    format!("select {RECORDS} from archive.file_records where job_id = '{job}'"),
                ],
                [&items_file, &records_file],
                &format!(
                    "delete from archive.scan_items where job_id = '{job}';\n\
                     delete from archive.file_records where job_id = '{job}';\ncommit;\n"
                ),
            ),
            &dir,
        )
        .await?;
        // Baseline restore: binary COPY FROM those files into the same indexed tables.
        let back = psql(
            &db.url,
            &format!(
                "begin;\n\\copy archive.scan_items ({ITEMS}) from '{}' with (format binary)\n\
                 \\copy archive.file_records ({RECORDS}) from '{}' with (format binary)\ncommit;\n",
                items_file.display(),
                records_file.display()
            ),
            &dir,
        )
        .await?;
        psql(&db.url, VACUUM, &dir).await?;
        // For reference, psql doing archive-svc's single pass: binary COPY of what the
        // deletes return, rolled back (so the rows need no restore).
        let single = psql(
            &db.url,
            &copy_out_script(
                [
                    format!("delete from archive.scan_items where job_id = '{job}' returning {ITEMS}"),
                    format!(
                        "delete from archive.file_records where job_id = '{job}' returning {RECORDS}"
                    ),
                ],
                [&items_file, &records_file],
                "rollback;\n",
            ),
            &dir,
        )
        .await?;
        psql(&db.url, VACUUM, &dir).await?;

        let (cpu, (busy, _)) = (server.cpu_seconds()?, machine_cpu()?);
        let start = Instant::now();
        let request = pb::ArchiveJobRequest {
            job_id: job.to_string(),
            reason: "benchmark".into(),
            compression: pb::Compression::Zstd.into(),
            request_id: String::new(),
        };
        let archived = admin
            .archive_job(authorized(request, &token)?)
            .await?
            .into_inner();
        let archive_time = start.elapsed();
        let archive_cpu = (server.cpu_seconds()? - cpu, machine_cpu()?.0 - busy);
        stored = archived.stored_bytes;

        let start = Instant::now();
        let request = pb::RestoreJobRequest {
            job_id: job.to_string(),
            trigger: pb::RestoreTrigger::User.into(),
        };
        let mut stream = user
            .restore_job(authorized(request, &token)?)
            .await?
            .into_inner();
        let mut done = 0;
        while let Some(progress) = stream.message().await? {
            done = progress.rows_done;
        }
        let restore_time = start.elapsed();
        if done != rows as i64 {
            bail!("restored {done} rows of {rows}");
        }
        psql(&db.url, VACUUM, &dir).await?;
        println!(
            "round {round}: COPY TO+DELETE {:.2} s, COPY FROM {:.2} s, \
             COPY (DELETE … RETURNING) {:.2} s, archive {:.2} s \
             (CPU: archive-svc {:.2} s, machine {:.2} s), restore {:.2} s",
            out.as_secs_f64(),
            back.as_secs_f64(),
            single.as_secs_f64(),
            archive_time.as_secs_f64(),
            archive_cpu.0,
            archive_cpu.1,
            restore_time.as_secs_f64()
        );
        raw_out.push(out);
        raw_single.push(single);
        raw_in.push(back);
        ours_out.push(archive_time);
        ours_in.push(restore_time);
    }
    let best = |v: &[Duration]| v.iter().min().copied().unwrap_or_default().as_secs_f64();
    let rss = server.peak_rss_mib()?;
    server.stop().await?;
    println!("\n{rows} rows, best of {ROUNDS} rounds");
    println!("| operation | stowage (s) | baseline (s) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| archive (gRPC ArchiveJob) vs psql binary COPY TO + DELETE | {:.2} | {:.2} | {:.2} |",
        best(&ours_out),
        best(&raw_out),
        best(&ours_out) / best(&raw_out)
    );
    println!(
        "| archive vs psql binary COPY (DELETE … RETURNING), one pass (reference) | {:.2} | {:.2} | {:.2} |",
        best(&ours_out),
        best(&raw_single),
        best(&ours_out) / best(&raw_single)
    );
    println!(
        "| restore (gRPC RestoreJob) vs psql binary COPY FROM | {:.2} | {:.2} | {:.2} |",
        best(&ours_in),
        best(&raw_in),
        best(&ours_in) / best(&raw_in)
    );
    println!(
        "blob: {stored} bytes, {:.1} bytes/row (zstd, encrypted)",
        stored as f64 / rows as f64
    );
    println!("archive-svc peak RSS: {rss:.0} MiB");
    Ok(())
}
