-- Archive stores are versioned: every SetArchiveStore adds a version, new archives go to
-- the newest, and each archived job names the version its blob is in, so a change of
-- store (or of key) never strands an earlier archive. Blobs that no job may point at any
-- more are recorded in blob_garbage before they could become orphans, and a sweeper
-- deletes them.

create table archive.stores (
    version               bigint primary key,
    provider              text not null check (provider in ('azure', 'file', 'memory')),
    -- where the blobs are, without any secret: endpoint and container, or a directory
    location              text not null,
    credential_kind       text not null,
    -- the sealed connection string and container (domain::stores::StoreSetting)
    sealed_setting        bytea not null,
    credential_version    integer not null default 1,
    created_at            timestamptz not null default now(),
    created_by            text not null,
    reason                text,
    credential_updated_at timestamptz,
    credential_updated_by text
);

alter table archive.scan_jobs
    add column archive_store_version bigint references archive.stores (version);
create index scan_jobs_by_store on archive.scan_jobs (archive_store_version)
    where archived_at is not null;

create table archive.blob_garbage (
    id              bigserial primary key,
    store_version   bigint not null references archive.stores (version),
    blob_key        text not null,
    job_id          uuid not null,
    tenant_id       text not null,
    -- 'job_deleted' | 'moved' | 'move_abandoned'
    cause           text not null,
    created_at      timestamptz not null default now(),
    attempts        integer not null default 0,
    last_error      text,
    next_attempt_at timestamptz not null default now()
);
create index blob_garbage_due on archive.blob_garbage (next_attempt_at);

-- The organization of the caller, where it is not the job's tenant (a SUPER_ADMIN's).
alter table archive.audit_log add column actor_tenant text;
