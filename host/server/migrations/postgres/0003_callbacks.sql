-- Where a run's end is POSTed, and how delivery goes: callback_next_at
-- is when to try next (NULL: nothing to deliver), callback_state says
-- how it went (pending, delivered, failed).
ALTER TABLE runs ADD COLUMN callback_url TEXT;
ALTER TABLE runs ADD COLUMN callback_next_at BIGINT;
ALTER TABLE runs ADD COLUMN callback_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN callback_state TEXT;
CREATE INDEX runs_by_callback ON runs (callback_next_at);
