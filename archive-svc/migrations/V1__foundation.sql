-- Settings operators change at run time (the archive store's sealed connection string
-- lives here), and the log of idempotent mutations (shared::api::Idempotency).

create table archive.admin_config (
    key         text primary key,
    value       bytea not null,
    sealed      boolean not null,
    update_time timestamptz not null default now(),
    updated_by  text not null
);

create table archive.request_log (
    scope          text not null,
    method         text not null,
    request_id     text not null,
    request_digest bytea not null,
    response       jsonb,
    created_at     timestamptz not null,
    primary key (scope, method, request_id)
);
