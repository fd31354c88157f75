-- Organizations and their storage bindings. The credential is sealed with the key ring
-- (see shared::keyring) and bound to its binding id; it never leaves in clear.

create table migration.organizations (
    id          text primary key,
    create_time timestamptz not null default now()
);

create table migration.bindings (
    id                     uuid primary key,
    organization_id        text not null references migration.organizations (id),
    display_name           text not null,
    provider               text not null
                           check (provider in ('azure', 's3', 'gcs', 'file', 'memory')),
    container              text not null,
    prefix                 text not null default '',
    endpoint               text,
    account                text,
    region                 text,
    state                  text not null check (state in ('pending', 'active', 'disabled')),
    credential_kind        text not null,
    credential_sealed      bytea not null,
    credential_update_time timestamptz not null,
    create_time            timestamptz not null,
    update_time            timestamptz not null,
    activate_time          timestamptz,
    disable_time           timestamptz
);

-- Exactly one active binding per organization.
create unique index bindings_one_active_per_organization
    on migration.bindings (organization_id) where state = 'active';
create index bindings_by_organization on migration.bindings (organization_id, id);

-- Idempotent mutations (shared::api::Idempotency).
create table migration.request_log (
    scope          text not null,
    method         text not null,
    request_id     text not null,
    request_digest bytea not null,
    response       jsonb,
    created_at     timestamptz not null,
    primary key (scope, method, request_id)
);
