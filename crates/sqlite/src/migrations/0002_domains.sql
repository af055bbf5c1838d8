-- Schema version 2: streams of any registered domain (issue 15).
--
-- An aggregate is a domain and an id: `events` and `snapshots` get a `domain`
-- column in their stream keys, and the outbox's `order_id` becomes `domain` and
-- `aggregate_id`. Job kinds become the platform's: `start` a process (was `fulfil`)
-- and `wake` it (was `cancel`). Every existing row is an order's, and is carried
-- over as one. SQLite cannot change a table's keys in place: each table is rebuilt
-- (created anew, copied, swapped), with foreign keys off for the migration and
-- checked before it commits (`migrate` in db.rs).

CREATE TABLE events_v2 (
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
    PRIMARY KEY (tenant_id, seq),
    -- Optimistic concurrency: one event per version of a stream.
    UNIQUE (tenant_id, domain, aggregate_id, version),
    UNIQUE (tenant_id, event_id),
    FOREIGN KEY (tenant_id, command_id) REFERENCES commands (tenant_id, command_id)
) WITHOUT ROWID;
INSERT INTO events_v2
    SELECT tenant_id, seq, event_id, 'order', aggregate_id, version, type, schema_version,
           payload, metadata, command_id, created_at, requires_job
    FROM events;

CREATE TABLE snapshots_v2 (
    tenant_id      BLOB    NOT NULL REFERENCES households (tenant_id),
    domain         TEXT    NOT NULL,
    aggregate_id   BLOB    NOT NULL,
    schema_version INTEGER NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 0),
    state          TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, domain, aggregate_id, schema_version)
) WITHOUT ROWID;
INSERT INTO snapshots_v2
    SELECT tenant_id, 'order', aggregate_id, schema_version, version, state FROM snapshots;

CREATE TABLE jobs_v2 (
    job_no       INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    BLOB    NOT NULL REFERENCES households (tenant_id),
    job_id       BLOB    NOT NULL,
    domain       TEXT    NOT NULL,
    aggregate_id BLOB    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('start', 'wake')),
    command_id   BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    UNIQUE (tenant_id, job_id),
    FOREIGN KEY (tenant_id, job_id) REFERENCES events (tenant_id, event_id)
);
INSERT INTO jobs_v2 (job_no, tenant_id, job_id, domain, aggregate_id, kind, command_id,
                     created_at, started_at)
    SELECT job_no, tenant_id, job_id, 'order', order_id,
           CASE kind WHEN 'fulfil' THEN 'start' ELSE 'wake' END,
           command_id, created_at, started_at
    FROM jobs;

DROP TABLE jobs;
DROP TABLE snapshots;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
ALTER TABLE snapshots_v2 RENAME TO snapshots;
ALTER TABLE jobs_v2 RENAME TO jobs;
CREATE INDEX jobs_pending ON jobs (job_no) WHERE started_at IS NULL;
