//! Benchmarks of stowage, each beside the baseline it must be compared with, measured in
//! the same run. `cargo run --release -p stowage-integration --bin stowage-bench -- help`.
//!
//! - `format`: encrypt+hash and decrypt+verify throughput of the object format on a
//!   256 MiB buffer, against raw SHA-256 of the same buffer.
//! - `write-rss`: peak RSS of this process while a 2 GiB object is written (verified) to a
//!   `file` store.
//! - `archive [ROWS]`: archive-svc (the release binary, as a server) archiving and restoring
//!   one job of ROWS rows (default 1,000,000) through gRPC, beside `psql` binary COPY of the
//!   same rows into and out of the same tables. Needs `DATABASE_URL` (admin) and a release
//!   build of archive-svc.
//! - `archive-queue [JOBS] [ROWS]`: JOBS jobs of ROWS rows (default 2,000 of 1,000)
//!   enqueued by one tick and archived by one, then two, archive-svc replicas: jobs per
//!   second, each job's fixed cost and the blob size per row, beside psql's single pass
//!   per job. Needs `DATABASE_URL` and a release build of archive-svc.
//! - `migration [azure] [s3] [file] [rss]`: migration-svc (the release binary, as a
//!   server) migrating 1,000 objects of 4 KiB and 10 of 50 MiB between two Azurite
//!   containers, two prefixes of a SeaweedFS S3 bucket and two `file` directories (those
//!   named, or all), each beside `rclone copy` of the same objects between the same places;
//!   then its peak RSS while migrating one 2 GiB object (`rss`: only that). Needs
//!   `DATABASE_URL`, `STOWAGE_TEST_AZURITE`, `STOWAGE_TEST_S3*`, rclone and a release build
//!   of migration-svc (`deploy/dev/bench migration` provides all of them).
//! - `database-work [ITEMS]`: the database statements (round trips) and migration-svc CPU
//!   per migrated item, on a private cluster with `pg_stat_statements` (default 1,000
//!   items of 4 KiB, file → file). Needs PostgreSQL's `initdb` and a release build.
//! - `watchers [WATCHERS] [ITEMS]`: live runs of ITEMS objects of 4 KiB (default 10,000)
//!   followed by 0, 10, 100 and WATCHERS (default 1,000) WatchRun streams: the run's
//!   throughput, PostgreSQL statements per second and the delay from an item's commit to
//!   its delivery (p50, p99, max). Needs PostgreSQL's `initdb` and a release build.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::stream;
use stowage_shared::{
    blob::{
        BlobKey, BlobStore, Credential, EncryptedStore, Location, Provider, StoreConfig,
        StoreOptions,
    },
    digest::Sha256Pipe,
    format::{DEFAULT_SEGMENT_SIZE, Decryptor, Encryptor},
    keyring::{Kek, KeyRing},
};

mod archive_bench;
mod archive_queue;
mod database_work;
mod migration_bench;
mod server;
mod soak;
mod watchers;

const MIB: usize = 1 << 20;
/// Chunk size the write path sees (as from a network read).
const CHUNK: usize = MIB;

fn keys() -> KeyRing {
    KeyRing::new(vec![Kek::new("bench", &[7u8; 32]).expect("key")], "bench").expect("ring")
}

fn pseudo_random(len: usize) -> Bytes {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> Result<T>) -> Result<(Duration, T)> {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..runs {
        let start = Instant::now();
        let value = f()?;
        let elapsed = start.elapsed();
        if best.as_ref().is_none_or(|(b, _)| elapsed < *b) {
            best = Some((elapsed, value));
        }
    }
    best.context("no runs")
}

fn gbps(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e9
}

/// Encrypts `data` in `CHUNK` pieces while the hashing thread digests them, filling one
/// upload part at a time (the write path, without the upload). Returns the sealed length
/// and the digest.
fn encrypt_and_hash(keys: &KeyRing, data: &Bytes, part: usize) -> Result<(usize, [u8; 32])> {
    let (mut encryptor, header) = Encryptor::new(keys, DEFAULT_SEGMENT_SIZE)?;
    let mut sealed_len = header.len();
    let mut part_buffer = Vec::with_capacity(part + 2 * CHUNK);
    let mut hasher = Sha256Pipe::new();
    for start in (0..data.len()).step_by(CHUNK) {
        let chunk = data.slice(start..(start + CHUNK).min(data.len()));
        encryptor.update(&chunk, &mut part_buffer)?;
        hasher.blocking_update(chunk);
        if part_buffer.len() >= part {
            sealed_len += part_buffer.len();
            part_buffer.clear();
        }
    }
    encryptor.finish(&mut part_buffer)?;
    sealed_len += part_buffer.len();
    Ok((sealed_len, hasher.blocking_finish().context("hasher")?))
}

/// Decrypts `sealed` as it would arrive from a store while hashing the plaintext: the read
/// path.
fn decrypt_and_verify(keys: &KeyRing, sealed: &[u8], expected: &[u8; 32]) -> Result<usize> {
    let mut decryptor = Decryptor::new(keys.clone());
    let mut hasher = Sha256Pipe::new();
    let mut plaintext_len = 0;
    let mut out = Vec::with_capacity(2 * CHUNK);
    for piece in sealed.chunks(CHUNK) {
        decryptor.update(piece, &mut out)?;
        if !out.is_empty() {
            plaintext_len += out.len();
            hasher.blocking_update(Bytes::from(std::mem::replace(
                &mut out,
                Vec::with_capacity(2 * CHUNK),
            )));
        }
    }
    decryptor.finish(&mut out)?;
    plaintext_len += out.len();
    hasher.blocking_update(Bytes::from(out));
    if hasher.blocking_finish().context("hasher")? != *expected {
        bail!("digest mismatch");
    }
    Ok(plaintext_len)
}

fn format_bench(size_mib: usize) -> Result<()> {
    let keys = keys();
    let data = pseudo_random(size_mib * MIB);
    let (sha_time, digest) = best_of(5, || Ok(stowage_shared::api::sha256(&data)))?;
    let (enc_time, (sealed_len, enc_digest)) =
        best_of(5, || encrypt_and_hash(&keys, &data, 8 * MIB))?;
    if enc_digest != digest {
        bail!("the pipeline's digest differs from the one-shot digest");
    }
    let sealed = stowage_shared::format::seal(&keys, DEFAULT_SEGMENT_SIZE, &data)?;
    if sealed.len() != sealed_len {
        bail!("sealed {sealed_len} bytes, expected {}", sealed.len());
    }
    let (dec_time, len) = best_of(5, || decrypt_and_verify(&keys, &sealed, &digest))?;
    if len != data.len() {
        bail!("decrypted {len} bytes of {}", data.len());
    }
    let (sha, enc, dec) = (
        gbps(data.len(), sha_time),
        gbps(data.len(), enc_time),
        gbps(data.len(), dec_time),
    );
    println!(
        "buffer: {size_mib} MiB, segment {} KiB, best of 5",
        DEFAULT_SEGMENT_SIZE / 1024
    );
    println!("| operation | GB/s | ratio to raw SHA-256 |");
    println!("|---|---|---|");
    println!("| raw SHA-256 (baseline) | {sha:.2} | 1.00 |");
    println!("| encrypt + hash | {enc:.2} | {:.2} |", enc / sha);
    println!("| decrypt + verify | {dec:.2} | {:.2} |", dec / sha);
    Ok(())
}

/// Peak resident set size (VmHWM) of process `pid` ("self" for this one), in MiB.
fn peak_rss_mib(pid: &str) -> Result<f64> {
    status_mib(pid, "VmHWM:")
}

/// A memory figure (`VmHWM:`, `VmRSS:`) of process `pid`, in MiB.
fn status_mib(pid: &str, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .context("no such field in /proc/PID/status")?;
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .context("field value")?
        .parse()?;
    Ok(kib / 1024.0)
}

async fn write_rss_bench(size_mib: usize, dir: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let config = StoreConfig {
        provider: Provider::File,
        location: Location {
            container: dir.to_owned(),
            ..Location::default()
        },
        credential: Credential::None,
    }
    .validated()?;
    let store = BlobStore::open(&config, &StoreOptions::default())?;
    let objects = EncryptedStore::new(store.clone(), keys());
    let block = pseudo_random(CHUNK);
    let chunks = (0..size_mib).map(move |_| Ok::<_, std::io::Error>(block.clone()));
    let key = BlobKey::new("bench/two-gib")?;
    let before = peak_rss_mib("self")?;
    let start = Instant::now();
    let receipt = objects.put(&key, stream::iter(chunks)).await?;
    let elapsed = start.elapsed();
    let peak = peak_rss_mib("self")?;
    store.delete(&key).await?;
    println!(
        "verified write of {} MiB to a file store: {:.1} s ({:.0} MiB/s incl. read-back), \
         peak RSS {peak:.1} MiB (before the write: {before:.1} MiB)",
        receipt.plaintext_len / MIB as u64,
        elapsed.as_secs_f64(),
        receipt.plaintext_len as f64 / MIB as f64 / elapsed.as_secs_f64(),
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("format") => {
            let size_mib = args.get(1).map_or(Ok(256), |s| s.parse())?;
            tokio::task::spawn_blocking(move || format_bench(size_mib)).await?
        }
        Some("archive") => {
            let rows = args.get(1).map_or(Ok(1_000_000), |s| s.parse())?;
            archive_bench::run(rows).await
        }
        Some("archive-queue") => {
            let jobs = args.get(1).map_or(Ok(2000), |s| s.parse())?;
            let rows = args.get(2).map_or(Ok(1000), |s| s.parse())?;
            archive_queue::run(jobs, rows).await
        }
        Some("migration") => {
            let mut kinds = Vec::new();
            let mut only_rss = false;
            for arg in &args[1..] {
                match arg.as_str() {
                    "azure" => kinds.push(migration_bench::Kind::Azure),
                    "s3" => kinds.push(migration_bench::Kind::S3),
                    "file" => kinds.push(migration_bench::Kind::File),
                    "rss" => only_rss = true,
                    other => bail!("migration takes azure, s3, file or rss, not {other}"),
                }
            }
            migration_bench::run(&kinds, only_rss).await
        }
        Some("database-work") => {
            let count = args.get(1).map(|n| n.parse()).transpose()?.unwrap_or(1000);
            database_work::run(count).await
        }
        Some("watchers") => {
            let watchers = args.get(1).map_or(Ok(1000), |s| s.parse())?;
            let count = args.get(2).map_or(Ok(10_000), |s| s.parse())?;
            watchers::run(watchers, count).await
        }
        Some("soak") => {
            let artifacts = args.get(1).map_or(Ok(100_000), |s| s.parse())?;
            let runs = args.get(2).map_or(Ok(20), |s| s.parse())?;
            soak::run(artifacts, runs).await
        }
        Some("write-rss") => {
            let dir = args
                .get(1)
                .cloned()
                .unwrap_or_else(|| "target/bench/file-store".into());
            write_rss_bench(2048, &dir).await
        }
        _ => {
            println!(
                "usage: stowage-bench format [MiB] | write-rss [DIR] | archive [ROWS] | archive-queue [JOBS] [ROWS] | migration [azure] [s3] [file] [rss] | database-work [ITEMS] | watchers [WATCHERS] [ITEMS] | soak [ARTIFACTS] [RUNS]"
            );
            Ok(())
        }
    }
}
