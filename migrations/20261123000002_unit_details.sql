-- A unit as the API shows it: its location and its tenancy (all tenancy columns NULL when the
-- unit is vacant), so every read returns the same shape.
CREATE VIEW unit_details AS
SELECT u.id,
       u.company_id,
       u.crm_unit_id,
       l.crm_location_id,
       l.name AS location_name,
       u.name,
       u.size,
       u.status,
       tn.id AS tenant_id,
       tn.crm_tenant_id,
       tn.name AS tenant_name,
       p.phone_e164 AS tenant_phone,
       tn.email AS tenant_email,
       ty.access_code,
       ty.access_status
FROM units u
JOIN locations l ON l.id = u.location_id
LEFT JOIN tenancies ty ON ty.unit_id = u.id
LEFT JOIN tenants tn ON tn.id = ty.tenant_id
LEFT JOIN people p ON p.id = tn.person_id;
