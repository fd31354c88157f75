-- Verified source cleanup: where each migrated artifact's source copy was (recorded with
-- the flip, in the same statement), and how far its deletion is. 'deleting' is written
-- before the source object is deleted and 'deleted' after, so a cleanup that died between
-- the two is finished by the next one, which verifies the target again first.
alter table migration.run_items
    add column source_object_key text,
    add column source_cleanup text check (source_cleanup in ('deleting', 'deleted')),
    add column source_deleted_time timestamptz;
create index run_items_source_cleanup on migration.run_items (run_id, artifact_id)
    where state = 'migrated' and source_object_key is not null
      and source_cleanup is distinct from 'deleted';
