-- Webhook intake and the durable job queue.
-- Times are integer milliseconds since the Unix epoch (UTC), so lease comparisons are plain
-- integer comparisons and the same schema carries over to Postgres (BIGINT).

-- One row per X-GitHub-Delivery id: the dedupe record. Kept separate from `events` so payloads
-- can be pruned without forgetting which deliveries were already handled.
CREATE TABLE deliveries (
    delivery_id   TEXT PRIMARY KEY NOT NULL,
    event         TEXT NOT NULL,
    received_at   INTEGER NOT NULL,
    -- how many times GitHub sent this delivery again after the first
    redeliveries  INTEGER NOT NULL DEFAULT 0,
    last_seen_at  INTEGER NOT NULL
);

CREATE TABLE events (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      TEXT NOT NULL UNIQUE REFERENCES deliveries (delivery_id),
    event            TEXT NOT NULL,
    action           TEXT,
    installation_id  INTEGER,
    repository       TEXT,
    payload          TEXT NOT NULL,
    received_at      INTEGER NOT NULL,
    -- set once the event was turned into jobs (or deliberately ignored)
    routed_at        INTEGER,
    route            TEXT
);

CREATE INDEX events_unrouted ON events (routed_at, id);

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT NOT NULL CHECK (kind IN ('generate', 'retry', 'ci_finished', 'cancel', 'status')),
    repository       TEXT NOT NULL,
    installation_id  INTEGER,
    issue_number     INTEGER,
    event_id         INTEGER REFERENCES events (id),
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'superseded')),
    phase            TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_token      TEXT,
    lease_until      INTEGER,
    superseded_by    INTEGER REFERENCES jobs (id),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    result           TEXT,
    error            TEXT
);

CREATE INDEX jobs_claim ON jobs (state, created_at, id);
CREATE INDEX jobs_issue ON jobs (repository, issue_number, state);
