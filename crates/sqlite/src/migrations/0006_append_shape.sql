-- Schema version 6: an append writes fewer pages (issue 20, goal 2).
--
-- The writer's cost per append follows the pages it changes: every commit writes each
-- changed page to the log whole (4 KiB), and before this an append changed the last
-- leaf page of five per-household B-trees, two of them holding whole rows (the
-- commands and the events, keyed by household). Now:
-- - `commands` and `events` are rowid tables: their rows go to the end of the table,
--   where a batch's appends, whatever their households, share the last pages; their
--   keys, (tenant_id, command_id) and (tenant_id, seq), become unique indexes, whose
--   entries are small;
-- - events lose the unique (tenant_id, event_id) index: event ids derive from the
--   household, the command id and the event's index (`hearth_core::event_id`), and the
--   command id is unique per household, so it kept nothing a read needed. It backed the
--   outbox's foreign key; a job now names its event by position, `seq`, and the key
--   points at (tenant_id, seq).
-- The rows are carried over in household order; nothing else changes meaning.

CREATE TABLE commands_v6 (
    tenant_id   BLOB    NOT NULL REFERENCES households (tenant_id),
    command_id  BLOB    NOT NULL,
    type        TEXT    NOT NULL,
    payload     TEXT,
    metadata    TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN
                    ('pending', 'accepted', 'rejected', 'scheduled', 'completed', 'failed')),
    -- The CommandOutcome as JSON: what a repeat of the id gets back.
    outcome     TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL,
    -- Idempotency: a command id is recorded once per household.
    UNIQUE (tenant_id, command_id)
);
INSERT INTO commands_v6 (tenant_id, command_id, type, payload, metadata, status, outcome,
                         recorded_at)
    SELECT tenant_id, command_id, type, payload, metadata, status, outcome, recorded_at
    FROM commands ORDER BY tenant_id, recorded_at;

CREATE TABLE events_v6 (
    tenant_id      BLOB    NOT NULL REFERENCES households (tenant_id),
    seq            INTEGER NOT NULL CHECK (seq >= 1),
    event_id       BLOB    NOT NULL,
    domain         TEXT    NOT NULL,
    aggregate_id   BLOB    NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        TEXT,
    metadata       TEXT    NOT NULL,
    -- The command whose append wrote this event.
    command_id     BLOB    NOT NULL,
    created_at     INTEGER NOT NULL,
    requires_job   INTEGER NOT NULL CHECK (requires_job IN (0, 1)),
    -- The household's gap-free position.
    UNIQUE (tenant_id, seq),
    -- Optimistic concurrency: one event per version of a stream.
    UNIQUE (tenant_id, domain, aggregate_id, version),
    FOREIGN KEY (tenant_id, command_id) REFERENCES commands (tenant_id, command_id)
);
INSERT INTO events_v6 (tenant_id, seq, event_id, domain, aggregate_id, version, type,
                       schema_version, payload, metadata, command_id, created_at,
                       requires_job)
    SELECT tenant_id, seq, event_id, domain, aggregate_id, version, type, schema_version,
           payload, metadata, command_id, created_at, requires_job
    FROM events ORDER BY tenant_id, seq;

CREATE TABLE jobs_v6 (
    job_no         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id      BLOB    NOT NULL REFERENCES households (tenant_id),
    job_id         BLOB    NOT NULL,
    -- The position of the event that asked for the job (its id is job_id).
    seq            INTEGER NOT NULL,
    domain         TEXT    NOT NULL,
    aggregate_id   BLOB    NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('start', 'wake')),
    command_id     BLOB    NOT NULL,
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    correlation_id BLOB,
    traceparent    TEXT,
    UNIQUE (tenant_id, job_id),
    FOREIGN KEY (tenant_id, seq) REFERENCES events (tenant_id, seq)
);
INSERT INTO jobs_v6 (job_no, tenant_id, job_id, seq, domain, aggregate_id, kind, command_id,
                     created_at, started_at, correlation_id, traceparent)
    SELECT j.job_no, j.tenant_id, j.job_id, e.seq, j.domain, j.aggregate_id, j.kind,
           j.command_id, j.created_at, j.started_at, j.correlation_id, j.traceparent
    -- A job without its event would fail seq NOT NULL here, not vanish.
    FROM jobs j LEFT JOIN events e ON e.tenant_id = j.tenant_id AND e.event_id = j.job_id;

DROP TABLE jobs;
DROP TABLE events;
DROP TABLE commands;
ALTER TABLE commands_v6 RENAME TO commands;
ALTER TABLE events_v6 RENAME TO events;
ALTER TABLE jobs_v6 RENAME TO jobs;
CREATE INDEX jobs_pending ON jobs (job_no) WHERE started_at IS NULL;
