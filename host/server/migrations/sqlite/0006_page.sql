-- What each hook changed in the pod at submit, values redacted as the
-- pod's are (a JSON list), for the page's "what each hook changed".
ALTER TABLE runs ADD COLUMN changes TEXT;

-- When the run's pod was started, created or found (started_at: when a
-- server took it).
ALTER TABLE runs ADD COLUMN running_at INTEGER;

-- How many places in the run's log may miss lines (log_gaps below).
ALTER TABLE runs ADD COLUMN log_gaps INTEGER NOT NULL DEFAULT 0;

-- Places in a run's log where lines may be missing: a log stream given
-- up, or one resumed where it could not be shown to overlap.
CREATE TABLE log_gaps (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    -- The number of the run's lines stored before the gap.
    at_line INTEGER NOT NULL,
    container TEXT,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, seq),
    -- A batch stored again after a lost answer adds no second notice.
    UNIQUE (run_id, at_line, message)
);
