-- Scan jobs and their per-file rows, as the scanning application writes them, plus the
-- archive marker and metadata archive-svc keeps on each job. The contract with the
-- scanning application is in archive-svc/CONTRACT.md.

create table archive.scan_jobs (
    id                 uuid primary key,
    tenant_id          text not null,
    owner_id           text not null,
    name               text not null,
    status             text not null check (status in ('SCANNING', 'READY_TO_TRANSFER',
                           'TRANSFERRING', 'PAUSED', 'CANCELLED', 'FAILED', 'SCAN_COMPLETE',
                           'COMPLETED')),
    file_count         bigint not null default 0,
    byte_count         bigint not null default 0,
    error_count        bigint not null default 0,
    started_at         timestamptz,
    completed_at       timestamptz,
    cancelled_at       timestamptz,
    -- when the job entered its current terminal status; null while active
    terminal_at        timestamptz,
    -- bumped by every user or worker interaction with the job or its rows
    last_activity_at   timestamptz not null default now(),
    configuration      jsonb not null default '{}',
    error_summary      text,
    created_at         timestamptz not null default now(),

    -- The archive marker: set while the per-file rows live in cold storage.
    archived_at        timestamptz,
    archive_blob_key   text,
    -- 'json.zst' | 'json.gz' (encrypted), or 'legacy.json.gz' (unencrypted, earlier system)
    archive_format     text,
    archive_stored_bytes    bigint,
    archive_plaintext_bytes bigint,
    archive_plaintext_sha256 text,
    archive_kek_id     text,
    archive_scan_items bigint,
    archive_file_records bigint,
    -- order-independent digest of every archived row (see domain::rows)
    archive_rows_digest bytea,
    check ((archived_at is null) = (archive_blob_key is null))
);

create index scan_jobs_by_tenant on archive.scan_jobs (tenant_id, id);
-- The archive tick's candidates: hot terminal jobs, oldest terminal timestamp first.
create index scan_jobs_archive_candidates on archive.scan_jobs (terminal_at)
    where archived_at is null
      and status in ('CANCELLED', 'FAILED', 'SCAN_COMPLETE', 'COMPLETED');

-- One row per file or folder the scan discovered.
create table archive.scan_items (
    job_id        uuid not null,
    id            bigint not null,
    parent_id     bigint,
    path          text not null,
    name          text not null,
    kind          text not null check (kind in ('file', 'folder')),
    size_bytes    bigint,
    modified_at   timestamptz,
    etag          text,
    mime_type     text,
    status        text not null,
    error         text,
    discovered_at timestamptz not null,
    primary key (job_id, id)
);

-- One row per file the migration attempted to transfer.
create table archive.file_records (
    job_id           uuid not null,
    id               bigint not null,
    scan_item_id     bigint,
    source_path      text not null,
    destination_path text,
    size_bytes       bigint not null,
    checksum         text,
    status           text not null,
    attempts         integer not null default 0,
    last_error       text,
    started_at       timestamptz,
    completed_at     timestamptz,
    primary key (job_id, id)
);

-- Evidence of every archive, restore, delete and admin call.
create table archive.audit_log (
    id         bigserial primary key,
    at         timestamptz not null default now(),
    tenant_id  text not null,
    actor      text not null,
    action     text not null,
    job_id     uuid,
    reason     text,
    outcome    text not null,
    detail     jsonb not null default '{}'
);
create index audit_log_by_tenant on archive.audit_log (tenant_id, id);
