-- pgbench floor of a single-unit PATCH: the statements kiss-auth sends for one request with a
-- token it remembers (the in-place update, which also checks that the token is live, with its
-- answer, in a transaction).
\set n random(0, 999)
BEGIN;
WITH u AS (
    UPDATE units SET name = COALESCE(NULL, name), size = size,
        status = CASE WHEN :n % 2 = 0 THEN 'rented' ELSE 'available' END, updated_at = now()
    WHERE company_id = :company_id AND crm_unit_id = 'single-' || lpad(:n::text, 4, '0')
      AND EXISTS (SELECT 1 FROM live_api_tokens WHERE id = :token_id)
    RETURNING id, location_id, crm_unit_id, name, size, status
)
SELECT u.crm_unit_id, l.crm_location_id, l.name AS location_name, u.name, u.size, u.status,
       tn.id, tn.crm_tenant_id, tn.name, p.phone_e164, tn.email, ty.access_code, ty.access_status
FROM u
JOIN locations l ON l.id = u.location_id
LEFT JOIN tenancies ty ON ty.unit_id = u.id
LEFT JOIN tenants tn ON tn.id = ty.tenant_id
LEFT JOIN people p ON p.id = tn.person_id;
COMMIT;
