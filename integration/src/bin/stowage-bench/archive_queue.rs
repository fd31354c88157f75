//! The archive queue at scale: JOBS small jobs (ROWS rows each) enqueued by one tick and
//! archived by one and then two archive-svc replicas (release binaries, each with its
//! queue workers), to a `file` store. Reports jobs per second, each job's fixed cost
//! (worker-slot time and archive-svc CPU per job), and the blob size per row, beside psql
//! doing the same single pass per job (binary `COPY (DELETE … RETURNING)` of both tables,
//! rolled back) in one session.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use archive_svc::{
    config::ArchiveConfig,
    domain::{jobs::JobStatus, scheduler::Scheduler},
    seed,
};
use stowage_integration::{app::test_common, db::TestDb};

use super::{
    archive_bench::{VACUUM, psql},
    server::{Server, common_config, fresh_root},
};

/// Jobs each replica archives at once.
const CONCURRENCY: usize = 4;

pub async fn run(jobs: u32, rows: u64) -> Result<()> {
    let mut results = Vec::new();
    for replicas in [1, 2] {
        results.push(measure(jobs, rows, replicas).await?);
    }
    let (one, two) = (&results[0], &results[1]);
    let dictionary = &one.dictionary;
    println!("\n{jobs} jobs of {rows} rows, file store, {CONCURRENCY} workers a replica");
    println!(
        "| replicas | jobs/s | worker-slot ms/job | archive-svc CPU ms/job | blob bytes/row |"
    );
    println!("|---|---|---|---|---|");
    for r in &results {
        println!(
            "| {} | {:.0} | {:.1} | {:.2} | {:.1} |",
            r.replicas,
            r.jobs_per_second(),
            r.slot_ms_per_job(),
            r.cpu_ms_per_job(),
            r.bytes_per_row
        );
    }
    println!(
        "two replicas / one: {:.2}x jobs/s",
        two.jobs_per_second() / one.jobs_per_second()
    );
    println!(
        "zstd payload (level 1, as archived), {} jobs held out: {:.1} bytes/row alone, \
         {:.1} with a {} KiB dictionary trained on {} other jobs ({:.0}% smaller)",
        dictionary.tested,
        dictionary.plain_per_row,
        dictionary.with_dict_per_row,
        DICTIONARY_BYTES / 1024,
        dictionary.trained,
        100.0 * (1.0 - dictionary.with_dict_per_row / dictionary.plain_per_row)
    );
    println!(
        "psql, one session, COPY (DELETE … RETURNING) of both tables per job (rolled back): \
         {:.2} ms/job; one replica's jobs/s vs psql's: {:.2}",
        one.psql_ms_per_job,
        one.jobs_per_second() / (1000.0 / one.psql_ms_per_job)
    );
    Ok(())
}

/// Size of the zstd dictionary tried on the payloads of small jobs.
const DICTIONARY_BYTES: usize = 64 * 1024;
/// Payloads a dictionary is trained on, and payloads it is tried on.
const TRAIN: usize = 200;
const TEST: usize = 200;

/// What a trained zstd dictionary would do to the payloads of small jobs.
#[derive(Default)]
struct Dictionary {
    trained: usize,
    tested: usize,
    plain_per_row: f64,
    with_dict_per_row: f64,
}

struct Measured {
    dictionary: Dictionary,
    replicas: usize,
    jobs: u32,
    elapsed: Duration,
    cpu_seconds: f64,
    bytes_per_row: f64,
    psql_ms_per_job: f64,
}

impl Measured {
    fn jobs_per_second(&self) -> f64 {
        f64::from(self.jobs) / self.elapsed.as_secs_f64()
    }

    /// Wall time a worker slot spends on one job: the fixed cost of a small job.
    fn slot_ms_per_job(&self) -> f64 {
        let slots = (self.replicas * CONCURRENCY) as f64;
        self.elapsed.as_secs_f64() * 1000.0 * slots / f64::from(self.jobs)
    }

    fn cpu_ms_per_job(&self) -> f64 {
        self.cpu_seconds * 1000.0 / f64::from(self.jobs)
    }
}

async fn measure(jobs: u32, rows: u64, replicas: usize) -> Result<Measured> {
    let db = TestDb::migrated().await?;
    let common = test_common(&db)?;
    let root = fresh_root(&format!("archive-queue-{replicas}"))?;
    let store = root.join("store");
    std::fs::create_dir_all(&store)?;
    let pool = stowage_shared::db::pool(&db.config())?;
    let seeding = Instant::now();
    let spec = seed::SeedSpec {
        tenant: "bench".into(),
        jobs,
        rows,
        status: JobStatus::Completed,
        terminal_days_ago: 30.0,
    };
    let seeded = seed::seed(&pool, &spec).await?;
    println!(
        "{replicas} replica(s): seeded {jobs} jobs of {rows} rows in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let psql_ms_per_job = psql_single_pass(&db.url, &seeded, &root).await?;

    let mut servers = Vec::new();
    for n in 0..replicas {
        let (common_toml, port) = common_config(&common, &db.url)?;
        let config = format!(
            "{common_toml}[archive]\naccess_tier = \"Default\"\n\
             [archive.default_store]\nconnection_string = \"file://{}\"\n\
             [archive.queue]\nconcurrency = {CONCURRENCY}\npoll_interval = \"20ms\"\n",
            store.display()
        );
        let path = root.join(format!("archive-svc-{n}.toml"));
        std::fs::write(&path, config)?;
        let log = root.join(format!("archive-svc-{n}.log"));
        servers.push(Server::start("archive-svc", &path, port, &log).await?);
    }
    let cpu_before: f64 = servers
        .iter()
        .map(|s| s.cpu_seconds())
        .sum::<Result<f64>>()?;
    let archive = ArchiveConfig {
        jobs_per_tick: jobs,
        ..ArchiveConfig::default()
    };
    let policy = archive.policy().map_err(anyhow::Error::msg)?;
    let scheduler = Scheduler::new(policy, pool.clone(), archive.schedule.parse()?, jobs);
    let start = Instant::now();
    match scheduler.tick().await? {
        Some(n) if n == u64::from(jobs) => {}
        other => bail!("the tick enqueued {other:?}, not {jobs}"),
    }
    wait_until_archived(&pool, i64::from(jobs)).await?;
    let elapsed = start.elapsed();
    let cpu_after: f64 = servers
        .iter()
        .map(|s| s.cpu_seconds())
        .sum::<Result<f64>>()?;
    let client = pool.get().await?;
    let row = client
        .query_one(
            "select coalesce(sum(archive_stored_bytes), 0)::float8,
                    (select count(*) from archive.audit_log
                      where action = 'archive' and outcome = 'ok')
             from archive.scan_jobs",
            &[],
        )
        .await?;
    let (stored, audited): (f64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if audited != i64::from(jobs) {
        bail!("{audited} archives audited for {jobs} jobs: some job was archived twice");
    }
    for server in servers {
        server.stop().await?;
    }
    let dictionary = if replicas == 1 {
        try_dictionary(&pool, &common, &store, rows).await?
    } else {
        Dictionary::default()
    };
    println!(
        "{replicas} replica(s): {jobs} jobs archived in {:.2} s",
        elapsed.as_secs_f64()
    );
    Ok(Measured {
        dictionary,
        replicas,
        jobs,
        elapsed,
        cpu_seconds: cpu_after - cpu_before,
        bytes_per_row: stored / (f64::from(jobs) * rows as f64),
        psql_ms_per_job,
    })
}

/// Polls until `jobs` jobs are archived (at most ten minutes).
async fn wait_until_archived(pool: &stowage_shared::db::Pool, jobs: i64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let client = pool.get().await?;
    loop {
        let archived: i64 = client
            .query_one(
                "select count(*) from archive.scan_jobs where archived_at is not null",
                &[],
            )
            .await?
            .try_get(0)?;
        if archived >= jobs {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {archived} of {jobs} jobs archived in ten minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// psql in one session, per job: begin, binary COPY of what deleting the job's rows of
/// each table returns, to a file, rollback. Milliseconds per job.
async fn psql_single_pass(url: &str, jobs: &[uuid::Uuid], root: &std::path::Path) -> Result<f64> {
    let out = root.join("rows.bin");
    let mut script = String::new();
    for job in jobs {
        script += &format!(
            "begin;\n\\copy (delete from archive.scan_items where job_id = '{job}' returning *) \
             to '{0}' with (format binary)\n\\copy (delete from archive.file_records where \
             job_id = '{job}' returning *) to '{0}' with (format binary)\nrollback;\n",
            out.display()
        );
    }
    let elapsed = psql(url, &script, root).await?;
    let per_job = elapsed.as_secs_f64() * 1000.0 / jobs.len() as f64;
    // The rolled-back deletes leave dead tuples; the archive meets the tables clean.
    psql(url, VACUUM, root).await?;
    Ok(per_job)
}

/// Reads archived payloads back (decrypted under their tenant's keys, decompressed), trains
/// a dictionary on some and compresses others with and without it, at the archive's level.
async fn try_dictionary(
    pool: &stowage_shared::db::Pool,
    common: &stowage_shared::config::Common,
    store: &std::path::Path,
    rows: u64,
) -> Result<Dictionary> {
    use futures::TryStreamExt;
    use stowage_shared::{
        blob::{BlobKey, EncryptedStore},
        keyring::KeyRing,
        tenant_keys::TenantKeys,
    };
    let client = pool.get().await?;
    let keys = KeyRing::from_config(&common.keys)?;
    let ring = TenantKeys::new("archive.tenant_keys", keys)
        .for_reading(&client, "bench")
        .await?;
    let objects = EncryptedStore::new(stowage_integration::migration::raw_file_store(store)?, ring);
    let blobs = client
        .query(
            "select archive_blob_key from archive.scan_jobs order by id limit $1",
            &[&((TRAIN + TEST) as i64)],
        )
        .await?;
    let mut payloads = Vec::new();
    for row in blobs {
        let key = BlobKey::new(row.try_get::<_, String>(0)?)?;
        let chunks: Vec<bytes::Bytes> = objects.get(&key, None).await?.try_collect().await?;
        payloads.push(zstd::decode_all(&chunks.concat()[..])?);
    }
    let (train, test) = payloads.split_at(TRAIN.min(payloads.len()));
    let dictionary = zstd::dict::from_samples(train, DICTIONARY_BYTES)?;
    let mut with = zstd::bulk::Compressor::with_dictionary(1, &dictionary)?;
    let mut alone = zstd::bulk::Compressor::new(1)?;
    let (mut plain, mut dict) = (0usize, 0usize);
    for payload in test {
        plain += alone.compress(payload)?.len();
        dict += with.compress(payload)?.len();
    }
    let tested_rows = (test.len() as u64 * rows) as f64;
    Ok(Dictionary {
        trained: train.len(),
        tested: test.len(),
        plain_per_row: plain as f64 / tested_rows,
        with_dict_per_row: dict as f64 / tested_rows,
    })
}
