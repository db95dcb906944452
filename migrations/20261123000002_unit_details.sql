-- A unit as the API shows it, with its location and its tenancy (or NULL), so every read and the
-- single-unit PATCH return the same shape from one statement.

CREATE FUNCTION unit_tenancy(target_unit_id uuid) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'crm_unit_id', u.crm_unit_id,
        'tenant', json_build_object(
            'tenant_id', tn.id,
            'crm_tenant_id', tn.crm_tenant_id,
            'name', tn.name,
            'phone', p.phone_e164,
            'email', tn.email
        ),
        'access_code', t.access_code,
        'access_status', t.access_status
    )
    FROM tenancies t
    JOIN units u ON u.id = t.unit_id
    JOIN tenants tn ON tn.id = t.tenant_id
    JOIN people p ON p.id = tn.person_id
    WHERE t.unit_id = target_unit_id
$$;

CREATE VIEW unit_details AS
SELECT u.id,
       u.company_id,
       u.crm_unit_id,
       l.crm_location_id,
       l.name AS location_name,
       u.name,
       u.size,
       u.status,
       unit_tenancy(u.id) AS tenancy
FROM units u
JOIN locations l ON l.id = u.location_id;
