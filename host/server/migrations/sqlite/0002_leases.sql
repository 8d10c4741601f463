-- Which server follows a run, and until when: a run whose lease ran out
-- (its server died) is taken over by another server, which follows its
-- pod again. A server writes a run only while it holds its lease.
ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN lease_until INTEGER;
