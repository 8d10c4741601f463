-- The tenant a run was submitted by (none when the server has no
-- tenants): a tenant sees only its own runs, and its limit counts them.
ALTER TABLE runs ADD COLUMN tenant TEXT;
CREATE INDEX runs_by_tenant ON runs (tenant, state, seq);
