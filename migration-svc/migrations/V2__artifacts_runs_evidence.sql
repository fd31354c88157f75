-- Artifacts, migration runs and their items, and the evidence runs leave behind.

create table migration.artifacts (
    id              uuid primary key,
    organization_id text not null references migration.organizations (id),
    -- the binding the artifact is read from; flipped to the target when migrated
    binding_id      uuid not null references migration.bindings (id),
    object_key      text not null,
    name            text not null,
    purpose         text not null,
    content_type    text not null,
    size_bytes      bigint not null check (size_bytes >= 0),
    -- plaintext SHA-256, lowercase hex
    sha256          text not null,
    stored_bytes    bigint not null,
    kek_id          text not null,
    create_time     timestamptz not null,
    update_time     timestamptz not null,
    delete_time     timestamptz
);
create index artifacts_by_organization on migration.artifacts (organization_id, id);
create index artifacts_by_binding on migration.artifacts (organization_id, binding_id, id);

create table migration.runs (
    id                 uuid primary key,
    organization_id    text not null references migration.organizations (id),
    target_binding_id  uuid not null references migration.bindings (id),
    mode               text not null check (mode in ('dry_run', 'live')),
    state              text not null check (state in ('queued', 'planning', 'running',
                           'completed', 'completed_with_errors', 'failed', 'cancelled')),
    reason             text not null,
    requested_by       text not null,
    retry_of           uuid references migration.runs (id),
    limit_bytes_per_second   bigint not null default 0,
    limit_objects_per_second bigint not null default 0,
    cancel_requested   boolean not null default false,
    failure_cause      text,
    failure_detail     text,
    -- the plan: artifacts and bytes per source binding ([{binding_id, artifacts, bytes}])
    sources            jsonb not null default '[]',
    -- keyset cursor of planning (last artifact id planned), so a takeover continues it
    plan_cursor        uuid,
    -- item counters, kept in step with run_items in the same transactions
    items_queued       bigint not null default 0,
    items_running      bigint not null default 0,
    items_migrated     bigint not null default 0,
    items_skipped      bigint not null default 0,
    items_failed       bigint not null default 0,
    bytes_total        bigint not null default 0,
    bytes_migrated     bigint not null default 0,
    -- outcomes so far; each item outcome takes the next number under the run's row lock,
    -- so numbers are assigned in commit order and a watcher's cursor never skips one
    last_outcome       bigint not null default 0,
    -- which replica plans or finishes the run, until when
    lease_owner        text,
    lease_expires      timestamptz,
    create_time        timestamptz not null,
    start_time         timestamptz,
    end_time           timestamptz,
    update_time        timestamptz not null
);
create index runs_by_organization on migration.runs (organization_id, id);
create index runs_open on migration.runs (create_time)
    where state in ('queued', 'planning', 'running');
-- One open live run per organization: two would copy the same artifacts.
create unique index runs_one_open_live_run on migration.runs (organization_id)
    where mode = 'live' and state in ('queued', 'planning', 'running');

create table migration.run_items (
    run_id            uuid not null references migration.runs (id),
    artifact_id       uuid not null references migration.artifacts (id),
    source_binding_id uuid not null references migration.bindings (id),
    size_bytes        bigint not null,
    state             text not null check (state in ('queued', 'running', 'migrated',
                          'skipped', 'failed')),
    cause             text,
    cause_detail      text,
    attempts          integer not null default 0,
    lease_owner       text,
    lease_expires     timestamptz,
    outcome_seq       bigint,
    start_time        timestamptz,
    end_time          timestamptz,
    update_time       timestamptz not null,
    primary key (run_id, artifact_id)
);
create index run_items_claimable on migration.run_items (run_id, artifact_id)
    where state in ('queued', 'running');
create index run_items_by_state on migration.run_items (run_id, state, artifact_id);
create unique index run_items_by_outcome on migration.run_items (run_id, outcome_seq)
    where outcome_seq is not null;

-- Evidence. Audit entries: every submission (who, when, target, mode, reason).
create table migration.audit_log (
    id              bigserial primary key,
    at              timestamptz not null default now(),
    organization_id text not null,
    actor           text not null,
    action          text not null,
    run_id          uuid,
    binding_id      uuid,
    mode            text,
    reason          text,
    outcome         text not null,
    detail          jsonb not null default '{}'
);
create index audit_log_by_organization on migration.audit_log (organization_id, id);

-- Domain events: a run ended (success or failure shape).
create table migration.domain_events (
    id              bigserial primary key,
    at              timestamptz not null default now(),
    organization_id text not null,
    type            text not null,
    run_id          uuid,
    payload         jsonb not null
);
create index domain_events_by_organization on migration.domain_events (organization_id, id);

-- Security events: fail-closed conditions (storageOperationsMigrationFailed).
create table migration.security_events (
    id              bigserial primary key,
    at              timestamptz not null default now(),
    organization_id text not null,
    type            text not null,
    severity        text not null,
    run_id          uuid,
    binding_id      uuid,
    detail          jsonb not null
);
create index security_events_by_organization on migration.security_events (organization_id, id);
