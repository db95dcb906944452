-- Which tokens are live: not revoked and, for a tenant token, its tenant still rents and still
-- belongs to the person who logged in. One definition for the token lookups and for the
-- statements that check a remembered token inside their own work. Expiry is compared with the
-- application's clock, so it is not part of the views.
CREATE VIEW live_api_tokens AS
    SELECT id, company_id, secret_hash, last_used_at
    FROM api_tokens
    WHERE revoked_at IS NULL;

CREATE VIEW live_tenant_tokens AS
    SELECT tt.id, tt.tenant_id, tt.person_id, tt.secret_hash, tt.expires_at, tt.last_used_at
    FROM tenant_tokens tt
    WHERE tt.revoked_at IS NULL
      AND EXISTS (SELECT 1 FROM tenants t JOIN tenancies ty ON ty.tenant_id = t.id
                  WHERE t.id = tt.tenant_id AND t.person_id = tt.person_id);
