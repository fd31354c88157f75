-- The archive queue: the schedule's tick enqueues the jobs due (up to its limit, oldest
-- terminal first) and every replica claims from it with FOR UPDATE SKIP LOCKED, so
-- replicas archive disjoint jobs in parallel. A claim is a lease: a replica that dies
-- holding one leaves it to expire and be claimed again. A failed attempt waits out a
-- backoff instead of blocking the head of the queue.
create table archive.archive_queue (
    job_id          uuid primary key,
    tenant_id       text not null,
    -- oldest terminal first: when the job became idle (terminal, or last active)
    idle_since      timestamptz not null,
    enqueued_at     timestamptz not null default now(),
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error      text,
    claimed_by      text,
    claimed_until   timestamptz
);
create index archive_queue_ready on archive.archive_queue (idle_since, job_id);
