-- pgbench floor of GET /tenant/access: the statements kiss-auth sends for one request (the
-- tenant token's lookup, then the account with its units), for a random one of the bench's tenants.
\set n random(1, :tokens)
SELECT tt.tenant_id, tt.secret_hash, tt.expires_at, tt.last_used_at
FROM tenant_tokens tt
WHERE tt.id = :n AND tt.revoked_at IS NULL
  AND EXISTS (SELECT 1 FROM tenants t JOIN tenancies ty ON ty.tenant_id = t.id
              WHERE t.id = tt.tenant_id AND t.person_id = tt.person_id);
SELECT t.name, c.id AS company_id, c.name AS company_name, l.id AS location_id,
       COALESCE(l.name, l.crm_location_id) AS location_name, a.unit_id, a.crm_unit_id,
       a.name AS unit_name, a.size, a.access_code, a.access
FROM tenants t
JOIN companies c ON c.id = t.company_id
JOIN locations l ON l.id = t.location_id
LEFT JOIN tenant_unit_access a ON a.tenant_id = t.id
WHERE t.id = (SELECT tenant_id FROM tenant_tokens WHERE id = :n)
ORDER BY a.crm_unit_id;
