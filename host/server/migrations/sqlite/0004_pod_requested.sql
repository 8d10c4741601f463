-- Set before a worker creates a run's pod: a server taking the run over
-- then only follows the pod if it is there, and never creates a second.
ALTER TABLE runs ADD COLUMN pod_requested INTEGER NOT NULL DEFAULT 0;
-- For the per-application limit and for retention.
CREATE INDEX runs_by_application ON runs (application, state);
CREATE INDEX runs_by_end ON runs (state, finished_at);
