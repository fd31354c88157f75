-- Per-tenant key-encryption keys (crypto-shredding): a tenant's archive blobs are wrapped
-- by its own key, sealed here by the service's key ring. Destroying a tenant's keys erases
-- `sealed`: every blob they wrapped is unreadable from then on, wherever a copy survives.
-- One live key per tenant; the next archive after a destruction creates a new one.
create table archive.tenant_keys (
    id           text primary key,
    tenant_id    text not null,
    sealed       bytea,
    created_at   timestamptz not null default now(),
    destroyed_at timestamptz,
    check ((sealed is null) = (destroyed_at is not null))
);
create unique index tenant_keys_one_live on archive.tenant_keys (tenant_id)
    where destroyed_at is null;
