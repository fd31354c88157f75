-- What a dry run planned, artifact by artifact, so that a live run can execute exactly
-- that plan, or be told how the candidates drifted from it; and the plan's digest.
create table migration.run_plans (
    run_id      uuid not null references migration.runs (id) on delete cascade,
    artifact_id uuid not null,
    binding_id  uuid not null,
    size_bytes  bigint not null,
    sha256      text not null,
    primary key (run_id, artifact_id)
);
alter table migration.runs add column plan_digest text;
alter table migration.runs add column from_dry_run uuid
    references migration.runs (id) on delete set null;
