-- Hearth's embedded store, schema version 1.
-- Every table is keyed by tenant_id first (the household), as in the PostgreSQL
-- design; with no row-level security in SQLite, every statement the adapter runs
-- names the tenant in its WHERE clause or key (see docs/sqlite.md).
-- Ids are 16-byte uuid blobs; timestamps are integer microseconds since the Unix
-- epoch (UTC), so they round-trip exactly.

CREATE TABLE households (
    tenant_id  BLOB    NOT NULL PRIMARY KEY,
    -- NULL until the directory creates the household: the event store may see a
    -- household's first append before (or without) its directory entry.
    name       TEXT,
    created_at INTEGER,
    -- The household's last event position: gap-free, bumped in each append.
    last_seq   INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
) WITHOUT ROWID;

CREATE TABLE commands (
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
    PRIMARY KEY (tenant_id, command_id)
) WITHOUT ROWID;

CREATE TABLE events (
    tenant_id      BLOB    NOT NULL REFERENCES households (tenant_id),
    seq            INTEGER NOT NULL CHECK (seq >= 1),
    event_id       BLOB    NOT NULL,
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
    UNIQUE (tenant_id, aggregate_id, version),
    UNIQUE (tenant_id, event_id),
    FOREIGN KEY (tenant_id, command_id) REFERENCES commands (tenant_id, command_id)
) WITHOUT ROWID;

CREATE TABLE snapshots (
    tenant_id      BLOB    NOT NULL REFERENCES households (tenant_id),
    aggregate_id   BLOB    NOT NULL,
    schema_version INTEGER NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 0),
    state          TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, aggregate_id, schema_version)
) WITHOUT ROWID;

-- The outbox: one row per event that needs durable work, written in the event's
-- transaction. job_no orders the relay's cross-household scan (oldest first).
CREATE TABLE jobs (
    job_no     INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  BLOB    NOT NULL REFERENCES households (tenant_id),
    job_id     BLOB    NOT NULL,
    order_id   BLOB    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('fulfil', 'cancel')),
    command_id BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    UNIQUE (tenant_id, job_id),
    FOREIGN KEY (tenant_id, job_id) REFERENCES events (tenant_id, event_id)
);
CREATE INDEX jobs_pending ON jobs (job_no) WHERE started_at IS NULL;

CREATE TABLE members (
    tenant_id BLOB    NOT NULL REFERENCES households (tenant_id),
    member_id BLOB    NOT NULL,
    name      TEXT    NOT NULL,
    role      TEXT    NOT NULL CHECK (role IN ('owner', 'member')),
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, member_id)
) WITHOUT ROWID;

CREATE TABLE invites (
    tenant_id  BLOB    NOT NULL REFERENCES households (tenant_id),
    code       TEXT    NOT NULL,
    created_by BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_by    BLOB,
    used_at    INTEGER,
    PRIMARY KEY (tenant_id, code)
) WITHOUT ROWID;
