-- A tenant token belongs to the person (phone) who logged in: when the PMS gives the tenant
-- account another phone, the old phone's tokens stop working.
ALTER TABLE tenant_tokens ADD COLUMN person_id text REFERENCES people (id) ON DELETE CASCADE;
UPDATE tenant_tokens tt SET person_id = t.person_id FROM tenants t WHERE t.id = tt.tenant_id;
ALTER TABLE tenant_tokens ALTER COLUMN person_id SET NOT NULL;

-- Development without KISS_APP_KEY: the key the first process made, shared by every process
-- and kept across restarts. Never used when KISS_APP_KEY is set.
CREATE TABLE development_app_key (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key       bytea   NOT NULL CHECK (length(key) >= 32)
);
