-- Counted actions of the learning loop (CI fix attempts per pull request, improvement PR
-- updates per day), so limits survive restarts and hold across workers and replicas.
CREATE TABLE ledger (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    repository  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    -- what makes an entry the same action again (a redelivered CI result, a resumed job)
    entry_key   TEXT NOT NULL,
    note        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (repository, kind, entry_key)
);

CREATE INDEX ledger_count ON ledger (repository, kind, subject, created_at);
