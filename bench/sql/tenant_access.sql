-- pgbench floor of GET /tenant/access: the statement kiss-auth sends for one request with a token
-- it remembers (the account with its units, only while the token is live), for a random one of
-- the bench's tenants.
\set n random(1, :tokens)
SELECT t.name, c.id AS company_id, c.name AS company_name, l.id AS location_id,
       COALESCE(l.name, l.crm_location_id) AS location_name, a.unit_id, a.crm_unit_id,
       a.name AS unit_name, a.size, a.access_code, a.access
FROM live_tenant_tokens tt
JOIN tenants t ON t.id = tt.tenant_id
JOIN companies c ON c.id = t.company_id
JOIN locations l ON l.id = t.location_id
LEFT JOIN tenant_unit_access a ON a.tenant_id = t.id
WHERE tt.id = :n AND tt.expires_at > now()
ORDER BY a.crm_unit_id;
