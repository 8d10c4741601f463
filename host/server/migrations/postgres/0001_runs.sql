-- A run's record, written before its pod exists.
CREATE TABLE runs (
    -- Submission order: the queue's order and the list's cursor.
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    stdin BYTEA,
    -- The result (as `podrun run -o json` prints it) once finished.
    result TEXT,
    -- Why a run ended without a result of its own (lost, cancelled
    -- before it started).
    message TEXT,
    -- Flags are 0 or 1, as in SQLite: one code path reads both stores.
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    log_bytes BIGINT NOT NULL DEFAULT 0,
    log_truncated BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_state ON runs (state, seq);

-- Container output, line by line, as it arrived.
CREATE TABLE logs (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    container TEXT NOT NULL,
    line BYTEA NOT NULL,
    PRIMARY KEY (run_id, seq)
);
