//! `archive-svc seed`: fills the scan tables with realistic jobs and per-file rows fast
//! (binary COPY), for demos, tests and benchmarks. Rows are deterministic per job id.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Duration, Utc};
use stowage_shared::api::InvalidArgument;
use uuid::Uuid;

use crate::{
    db,
    domain::{
        jobs::{JobStatus, tenant_id_problem},
        rows::{FileRecord, Row, ScanItem},
    },
    error::Result,
};

/// What to seed.
#[derive(Clone, Debug)]
pub struct SeedSpec {
    pub tenant: String,
    pub jobs: u32,
    /// Per-file rows per job: about 60% scan items, 40% file records.
    pub rows: u64,
    pub status: JobStatus,
    /// Days since the jobs reached their terminal status (ignored for active statuses).
    pub terminal_days_ago: f64,
}

const DEPARTMENTS: &[&str] = &[
    "Finance",
    "Legal",
    "Marketing",
    "Engineering",
    "HR",
    "Operations",
    "Sales",
    "Research",
];
const FOLDERS: &[&str] = &[
    "Shared Documents",
    "Contracts",
    "Reports",
    "Archive",
    "Projects",
    "Invoices",
    "Templates",
    "Board Meetings",
    "Customer Files",
    "Policies",
];
const STEMS: &[&str] = &[
    "Quarterly Report",
    "Invoice",
    "Meeting Notes",
    "Budget",
    "Proposal",
    "Statement of Work",
    "Roadmap",
    "Design Review",
    "Onboarding Checklist",
    "Risk Register",
    "Forecast",
    "Minutes",
];
const TYPES: &[(&str, &str)] = &[
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("msg", "application/vnd.ms-outlook"),
    ("txt", "text/plain"),
];

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Rows per folder: a scan walks the tree, so siblings come out together.
const FOLDER_SIZE: i64 = 12;

/// The folder holding row `id`: a stable function of the folder number, so the file
/// records of a job walk the same tree as its scan items.
fn folder_of(job_seed: u64, id: i64) -> String {
    let folder = (id - 1) / FOLDER_SIZE;
    let mut rng = Rng((job_seed ^ (folder as u64 / 40).wrapping_mul(0x9e37_79b9)) | 1);
    let site = format!("/sites/{}/{}", rng.pick(DEPARTMENTS), rng.pick(FOLDERS));
    let mut rng = Rng((job_seed ^ (folder as u64).wrapping_mul(0x85eb_ca6b)) | 1);
    format!(
        "{site}/{}/{} {}",
        2019 + rng.below(7),
        rng.pick(FOLDERS),
        folder % 40 + 1
    )
}

fn path_of(rng: &mut Rng, job_seed: u64, id: i64) -> (String, String, &'static str) {
    let (ext, mime) = *rng.pick(TYPES);
    let name = format!(
        "{} {} v{}.{ext}",
        rng.pick(STEMS),
        2019 + rng.below(7),
        1 + id % 9
    );
    let path = format!("{}/{name}", folder_of(job_seed, id));
    (path, name, mime)
}

/// Inserts the jobs and their rows; returns the job ids.
pub async fn seed(pool: &deadpool_postgres::Pool, spec: &SeedSpec) -> Result<Vec<Uuid>> {
    if let Some(problem) = tenant_id_problem(&spec.tenant) {
        return Err(InvalidArgument::new(
            "tenant",
            format!("{problem}: a tenant id names its archive blobs ({{tenant}}/{{job}}…)"),
        )
        .into());
    }
    let mut ids = Vec::with_capacity(spec.jobs as usize);
    let now = Utc::now();
    let terminal_at = now - Duration::milliseconds((spec.terminal_days_ago * 86_400_000.0) as i64);
    for n in 0..spec.jobs {
        let job = SeededJob {
            id: Uuid::new_v4(),
            n,
            items: (spec.rows * 3 / 5) as i64,
            records: spec.rows as i64 - (spec.rows * 3 / 5) as i64,
            terminal_at,
            started: terminal_at - Duration::hours(3),
        };
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        job.insert(&tx, spec, now).await?;
        let mut rng = Rng(job.seed() | 1);
        copy(&tx, job.scan_items(&mut rng)).await?;
        copy(&tx, job.file_records(&mut rng)).await?;
        tx.commit().await?;
        ids.push(job.id);
    }
    Ok(ids)
}

/// One job being seeded.
struct SeededJob {
    id: Uuid,
    n: u32,
    items: i64,
    records: i64,
    terminal_at: DateTime<Utc>,
    started: DateTime<Utc>,
}

impl SeededJob {
    fn seed(&self) -> u64 {
        self.id.as_u128() as u64
    }

    async fn insert(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        spec: &SeedSpec,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (n, terminal_at) = (self.n, self.terminal_at);
        let terminal = spec.status.is_terminal();
        tx.execute(
            "insert into archive.scan_jobs (id, tenant_id, owner_id, name, status, file_count,
                 byte_count, error_count, started_at, completed_at, cancelled_at, terminal_at,
                 last_activity_at, configuration, error_summary)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            &[
                &self.id,
                &spec.tenant,
                &format!("user-{}", n % 7),
                &format!(
                    "{} migration wave {}",
                    DEPARTMENTS[n as usize % DEPARTMENTS.len()],
                    n + 1
                ),
                &spec.status.as_str(),
                &self.items,
                &(self.items * 245_760),
                &(self.records / 50),
                &self.started,
                &(matches!(spec.status, JobStatus::Completed | JobStatus::ScanComplete)
                    .then_some(terminal_at)),
                &(spec.status == JobStatus::Cancelled).then_some(terminal_at),
                &terminal.then_some(terminal_at),
                &if terminal { terminal_at } else { now },
                &serde_json::json!({"source": "sharepoint", "destination": "onedrive",
                    "includeVersions": n % 2 == 0, "concurrency": 8}),
                &(self.records > 0)
                    .then(|| format!("{} files failed to transfer", self.records / 50)),
            ],
        )
        .await?;
        Ok(())
    }

    fn scan_items<'a>(&'a self, rng: &'a mut Rng) -> impl Iterator<Item = ScanItem> + 'a {
        let (id, job_seed, base) = (self.id, self.seed(), self.started);
        (1..=self.items).map(move |i| {
            let (path, name, mime) = path_of(rng, job_seed, i);
            let folder = i % FOLDER_SIZE == 0;
            ScanItem {
                job_id: id,
                id: i,
                parent_id: (i > FOLDER_SIZE).then(|| ((i - 1) / FOLDER_SIZE) * FOLDER_SIZE),
                path,
                name,
                kind: if folder { "folder" } else { "file" }.to_owned(),
                size_bytes: (!folder).then(|| 1024 + rng.below(50_000_000) as i64),
                modified_at: Some(
                    base - Duration::seconds((i / FOLDER_SIZE) * 3_600 + rng.below(3_600) as i64),
                ),
                etag: Some(format!(
                    "\"{{{}}},{}\"",
                    Uuid::from_u128(u128::from(rng.next()) << 64 | u128::from(rng.next()))
                        .to_string()
                        .to_uppercase(),
                    1 + rng.below(9)
                )),
                mime_type: (!folder).then(|| mime.to_owned()),
                status: if i % 53 == 0 { "SKIPPED" } else { "DISCOVERED" }.to_owned(),
                error: (i % 53 == 0)
                    .then(|| "Access denied: the item is locked by another user".to_owned()),
                discovered_at: base + Duration::milliseconds(i * 7),
            }
        })
    }

    fn file_records<'a>(&'a self, rng: &'a mut Rng) -> impl Iterator<Item = FileRecord> + 'a {
        let (id, job_seed, base) = (self.id, self.seed(), self.started);
        (1..=self.records).map(move |i| {
            let (path, _, _) = path_of(rng, job_seed, i);
            let failed = i % 50 == 0;
            let started_at = base + Duration::milliseconds(i * 11);
            let mut hash = [0u8; 20];
            for chunk in hash.chunks_mut(8) {
                let bytes = rng.next().to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
            FileRecord {
                job_id: id,
                id: i,
                scan_item_id: Some(i),
                destination_path: (!failed).then(|| format!("/drives/b!migrated{}", path)),
                source_path: path,
                size_bytes: 1024 + rng.below(50_000_000) as i64,
                checksum: (!failed).then(|| STANDARD.encode(hash)),
                status: if failed { "FAILED" } else { "TRANSFERRED" }.to_owned(),
                attempts: 1 + i32::from(failed) * 2,
                last_error: failed
                    .then(|| "HTTP 429 Too Many Requests: retry after 30s".to_owned()),
                started_at: Some(started_at),
                completed_at: (!failed)
                    .then(|| started_at + Duration::milliseconds(300 + rng.below(5000) as i64)),
            }
        })
    }
}

async fn copy<R: Row>(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: impl Iterator<Item = R>,
) -> Result<()> {
    let mut copy = db::rows::CopyIn::<R>::open(tx).await?;
    for row in rows {
        copy.write(&row).await?;
    }
    copy.finish().await?;
    Ok(())
}
