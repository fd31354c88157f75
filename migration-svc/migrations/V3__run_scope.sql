-- What a run covers: purposes to include or exclude, source bindings, a creation-time
-- window ({} is the whole organization, as every run before this column).
alter table migration.runs add column scope jsonb not null default '{}'::jsonb;
