-- What a tenant may see of each unit it rents: the gate code only while access is granted
-- (an active tenancy of a unit that is not overlocked).
CREATE VIEW tenant_unit_access AS
SELECT ty.tenant_id,
       u.id AS unit_id,
       u.crm_unit_id,
       u.name,
       u.size,
       CASE WHEN ty.access_status = 'active' AND u.status <> 'overlocked'
            THEN ty.access_code END AS access_code,
       CASE WHEN ty.access_status = 'active' AND u.status <> 'overlocked'
            THEN 'granted' ELSE 'denied' END AS access
FROM tenancies ty
JOIN units u ON u.id = ty.unit_id;
