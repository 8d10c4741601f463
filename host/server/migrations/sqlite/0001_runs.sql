-- A run's record, written before its pod exists.
CREATE TABLE runs (
    -- Submission order: the queue's order and the list's cursor.
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    application TEXT NOT NULL,
    -- queued, starting, running, succeeded, failed, cancelled, lost:
    -- only ever moved forward.
    state TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    -- BLAKE3 of the submitted body: a replayed key must carry the same.
    body_hash TEXT NOT NULL,
    -- The prepared pod and the run's context, as JSON.
    pod TEXT NOT NULL,
    context TEXT NOT NULL,
    stdin BLOB,
    -- The result (as `podrun run -o json` prints it) once finished.
    result TEXT,
    -- Why a run ended without a result of its own (lost, cancelled
    -- before it started).
    message TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    log_bytes INTEGER NOT NULL DEFAULT 0,
    log_truncated INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_state ON runs (state, seq);

-- Container output, line by line, as it arrived.
CREATE TABLE logs (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    container TEXT NOT NULL,
    line BLOB NOT NULL,
    PRIMARY KEY (run_id, seq)
);
