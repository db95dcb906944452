//! Unit queries. Bulk writes are set-based: a constant number of statements whatever the size of
//! the request (arrays bound once and expanded with `UNNEST`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::input::{LOCATION_REQUIRED, UnitPatch, UnitStatus};
use crate::domain::{Error, Result, ValidationErrors};
use crate::features::tenancy::{Tenancy, TenantSummary};

/// A unit as every response shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Unit {
    pub crm_unit_id: String,
    pub crm_location_id: String,
    pub location_name: Option<String>,
    pub name: String,
    pub size: Option<String>,
    pub status: String,
    pub tenancy: Option<Tenancy>,
}

/// A row of the `unit_details` shape: the unit, its location and its tenancy's columns.
struct UnitRow {
    crm_unit_id: String,
    crm_location_id: String,
    location_name: Option<String>,
    name: String,
    size: Option<String>,
    status: String,
    tenant_id: Option<String>,
    crm_tenant_id: Option<String>,
    tenant_name: Option<String>,
    tenant_phone: Option<String>,
    tenant_email: Option<String>,
    access_code: Option<String>,
    access_status: Option<String>,
}

impl From<UnitRow> for Unit {
    fn from(row: UnitRow) -> Self {
        let tenancy = match (
            row.tenant_id,
            row.crm_tenant_id,
            row.tenant_name,
            row.tenant_phone,
            row.access_status,
        ) {
            (
                Some(tenant_id),
                Some(crm_tenant_id),
                Some(name),
                Some(phone),
                Some(access_status),
            ) => Some(Tenancy {
                crm_unit_id: row.crm_unit_id.clone(),
                tenant: TenantSummary {
                    tenant_id,
                    crm_tenant_id,
                    name,
                    phone,
                    email: row.tenant_email,
                },
                access_code: row.access_code,
                access_status,
            }),
            _ => None,
        };
        Unit {
            crm_unit_id: row.crm_unit_id,
            crm_location_id: row.crm_location_id,
            location_name: row.location_name,
            name: row.name,
            size: row.size,
            status: row.status,
            tenancy,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SyncCounts {
    pub created: u64,
    pub updated: u64,
}

/// Advisory-lock class that serialises bulk syncs of one company, so that telling existing units
/// from new ones and inserting the new ones cannot race with another sync.
const BULK_SYNC_LOCK: i32 = 0x4b55_0001;

/// Which of `crm_unit_ids` are units of the company (read without locks: for naming errors only).
pub async fn existing_ids(
    db: impl PgExecutor<'_>,
    company_id: Uuid,
    crm_unit_ids: &[&str],
) -> Result<HashSet<String>> {
    let ids: Vec<String> = crm_unit_ids.iter().map(|id| (*id).to_owned()).collect();
    let found = sqlx::query_scalar!(
        "SELECT crm_unit_id FROM units WHERE company_id = $1 AND crm_unit_id = ANY($2)",
        company_id,
        &ids,
    )
    .fetch_all(db)
    .await?;
    Ok(found.into_iter().collect())
}

/// Takes the company's bulk-sync lock until the transaction ends. Every write that takes it does
/// so before any row lock, so a bulk sync and a single-unit write never wait on each other in a
/// circle.
pub async fn lock_company_units(tx: &mut PgConnection, company_id: Uuid) -> Result<()> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        BULK_SYNC_LOCK,
        company_id.to_string(),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn find(
    db: impl PgExecutor<'_>,
    company_id: Uuid,
    crm_unit_id: &str,
) -> Result<Option<Unit>> {
    let row = sqlx::query_as!(
        UnitRow,
        r#"SELECT crm_unit_id AS "crm_unit_id!", crm_location_id AS "crm_location_id!",
                  location_name, name AS "name!", size, status AS "status!",
                  tenant_id, crm_tenant_id, tenant_name, tenant_phone, tenant_email,
                  access_code, access_status
           FROM unit_details WHERE company_id = $1 AND crm_unit_id = $2"#,
        company_id,
        crm_unit_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Unit::from))
}

/// One page of a company's units in `crm_unit_id` order, after `after` if given.
pub async fn list(
    db: impl PgExecutor<'_>,
    company_id: Uuid,
    crm_location_id: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Unit>> {
    let rows = sqlx::query_as!(
        UnitRow,
        r#"SELECT crm_unit_id AS "crm_unit_id!", crm_location_id AS "crm_location_id!",
                  location_name, name AS "name!", size, status AS "status!",
                  tenant_id, crm_tenant_id, tenant_name, tenant_phone, tenant_email,
                  access_code, access_status
           FROM unit_details
           WHERE company_id = $1
             AND ($2::text IS NULL OR crm_location_id = $2)
             AND ($3::text IS NULL OR crm_unit_id > $3)
           ORDER BY crm_unit_id
           LIMIT $4"#,
        company_id,
        crm_location_id,
        after,
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Unit::from).collect())
}

/// The single-unit PATCH that touches no location: one statement that updates the unit and
/// returns it with its location and tenancy (which the statement does not change, so reading them
/// from the statement's snapshot is exact). It changes nothing unless the API token
/// `api_token_id` is live, so `Some` also confirms the token.
pub async fn patch_in_place(
    conn: &mut PgConnection,
    company_id: Uuid,
    api_token_id: Uuid,
    patch: &UnitPatch,
    now: DateTime<Utc>,
) -> Result<Option<Unit>> {
    let row = sqlx::query_as!(
        UnitRow,
        r#"WITH u AS (
               UPDATE units SET
                   name = COALESCE($3, name),
                   size = CASE WHEN $4 THEN $5 ELSE size END,
                   status = COALESCE($6, status),
                   updated_at = $7
               WHERE company_id = $1 AND crm_unit_id = $2
                 AND EXISTS (SELECT 1 FROM live_api_tokens WHERE id = $8)
               RETURNING id, location_id, crm_unit_id, name, size, status
           )
           SELECT u.crm_unit_id, l.crm_location_id, l.name AS location_name, u.name, u.size,
                  u.status, tn.id AS "tenant_id?", tn.crm_tenant_id AS "crm_tenant_id?",
                  tn.name AS "tenant_name?", p.phone_e164 AS "tenant_phone?",
                  tn.email AS "tenant_email?", ty.access_code AS "access_code?",
                  ty.access_status AS "access_status?"
           FROM u
           JOIN locations l ON l.id = u.location_id
           LEFT JOIN tenancies ty ON ty.unit_id = u.id
           LEFT JOIN tenants tn ON tn.id = ty.tenant_id
           LEFT JOIN people p ON p.id = tn.person_id"#,
        company_id,
        patch.crm_unit_id,
        patch.name,
        patch.size.is_some(),
        patch.size.clone().flatten(),
        patch.status.map(UnitStatus::as_str),
        now,
        api_token_id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(Unit::from))
}

/// Upserts units by `crm_unit_id` inside the caller's transaction. Only the fields each patch sent
/// change; a unit that does not exist yet must name its location (otherwise the 422 names it and
/// the caller's transaction is dropped, writing nothing). Five statements whatever the number of
/// units: lock, insert locations, update existing units, insert new units, name locations.
pub async fn sync(
    tx: &mut PgConnection,
    company_id: Uuid,
    units: &[UnitPatch],
    now: DateTime<Utc>,
) -> Result<SyncCounts> {
    lock_company_units(tx, company_id).await?;

    insert_locations(tx, company_id, units, now).await?;
    let existing = update_units(tx, company_id, units, now).await?;
    let new_units: Vec<&UnitPatch> = units
        .iter()
        .filter(|u| !existing.contains(u.crm_unit_id.as_str()))
        .collect();

    let mut errors = ValidationErrors::new();
    for (index, unit) in units.iter().enumerate() {
        if unit.crm_location_id.is_none() && !existing.contains(unit.crm_unit_id.as_str()) {
            errors.add(format!("units.{index}.crm_location_id"), LOCATION_REQUIRED);
        }
    }
    errors.into_result(())?;

    let created = insert_units(tx, company_id, &new_units, now).await?;
    if created != new_units.len() as u64 {
        return Err(Error::Internal(anyhow::anyhow!(
            "bulk sync inserted {created} of {} new units",
            new_units.len()
        )));
    }
    name_locations(tx, company_id, units, now).await?;
    Ok(SyncCounts {
        created,
        updated: existing.len() as u64,
    })
}

/// Creates the locations the units name that do not exist yet.
async fn insert_locations(
    tx: &mut PgConnection,
    company_id: Uuid,
    units: &[UnitPatch],
    now: DateTime<Utc>,
) -> Result<()> {
    let mut seen = HashSet::new();
    let location_ids: Vec<&str> = units
        .iter()
        .filter_map(|u| u.crm_location_id.as_deref())
        .filter(|id| seen.insert(*id))
        .collect();
    if location_ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO locations (company_id, crm_location_id, created_at, updated_at)
         SELECT $1, v.crm_location_id, $3, $3 FROM UNNEST($2::text[]) AS v(crm_location_id)
         ON CONFLICT (company_id, crm_location_id) DO NOTHING",
        company_id,
        &location_ids as &[&str],
        now,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The fields of a set of patches, one array per column, to bind once and expand with `UNNEST`.
struct Columns<'a> {
    crm_unit_id: Vec<&'a str>,
    crm_location_id: Vec<Option<&'a str>>,
    name: Vec<Option<&'a str>>,
    size: Vec<Option<&'a str>>,
    /// Whether `size` was sent (a `None` size then clears it).
    size_set: Vec<bool>,
    status: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn of(units: impl ExactSizeIterator<Item = &'a UnitPatch>) -> Self {
        let mut c = Columns {
            crm_unit_id: Vec::with_capacity(units.len()),
            crm_location_id: Vec::with_capacity(units.len()),
            name: Vec::with_capacity(units.len()),
            size: Vec::with_capacity(units.len()),
            size_set: Vec::with_capacity(units.len()),
            status: Vec::with_capacity(units.len()),
        };
        for unit in units {
            c.crm_unit_id.push(&unit.crm_unit_id);
            c.crm_location_id.push(unit.crm_location_id.as_deref());
            c.name.push(unit.name.as_deref());
            c.size.push(unit.size.as_ref().and_then(|s| s.as_deref()));
            c.size_set.push(unit.size.is_some());
            c.status.push(unit.status.map(UnitStatus::as_str));
        }
        c
    }
}

/// Applies the patches to the units that exist and returns their ids.
async fn update_units<'a>(
    tx: &mut PgConnection,
    company_id: Uuid,
    units: &'a [UnitPatch],
    now: DateTime<Utc>,
) -> Result<HashSet<&'a str>> {
    let c = Columns::of(units.iter());
    let updated: Vec<String> = sqlx::query_scalar!(
        "UPDATE units AS u SET
             location_id = COALESCE(l.id, u.location_id),
             name = COALESCE(v.name, u.name),
             size = CASE WHEN v.size_set THEN v.size ELSE u.size END,
             status = COALESCE(v.status, u.status),
             updated_at = $8
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::text[])
              AS v(crm_unit_id, crm_location_id, name, size, size_set, status)
         LEFT JOIN locations l ON l.company_id = $1 AND l.crm_location_id = v.crm_location_id
         WHERE u.company_id = $1 AND u.crm_unit_id = v.crm_unit_id
         RETURNING u.crm_unit_id",
        company_id,
        &c.crm_unit_id as &[&str],
        &c.crm_location_id as &[Option<&str>],
        &c.name as &[Option<&str>],
        &c.size as &[Option<&str>],
        &c.size_set,
        &c.status as &[Option<&str>],
        now,
    )
    .fetch_all(&mut *tx)
    .await?;
    let updated: HashSet<String> = updated.into_iter().collect();
    Ok(c.crm_unit_id
        .into_iter()
        .filter(|id| updated.contains(*id))
        .collect())
}

async fn insert_units(
    tx: &mut PgConnection,
    company_id: Uuid,
    units: &[&UnitPatch],
    now: DateTime<Utc>,
) -> Result<u64> {
    if units.is_empty() {
        return Ok(0);
    }
    let c = Columns::of(units.iter().copied());
    let result = sqlx::query!(
        "INSERT INTO units (company_id, location_id, crm_unit_id, name, size, status, created_at, updated_at)
         SELECT $1, l.id, v.crm_unit_id, COALESCE(v.name, v.crm_unit_id), v.size,
                COALESCE(v.status, 'available'), $7, $7
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
              AS v(crm_unit_id, crm_location_id, name, size, status)
         JOIN locations l ON l.company_id = $1 AND l.crm_location_id = v.crm_location_id",
        company_id,
        &c.crm_unit_id as &[&str],
        &c.crm_location_id as &[Option<&str>],
        &c.name as &[Option<&str>],
        &c.size as &[Option<&str>],
        &c.status as &[Option<&str>],
        now,
    )
    .execute(&mut *tx)
    .await?;
    Ok(result.rows_affected())
}

/// Applies `location_name`s, after the units are in place: to the location a unit names, or to
/// the unit's current location when it names none. When several units name one location the last
/// one in the request wins.
async fn name_locations(
    tx: &mut PgConnection,
    company_id: Uuid,
    units: &[UnitPatch],
    now: DateTime<Utc>,
) -> Result<()> {
    // Deduplicate here so a request naming 25 locations from 10,000 units sends 25 rows.
    let mut last_by_target: HashMap<(Option<&str>, Option<&str>), usize> = HashMap::new();
    for (index, unit) in units.iter().enumerate() {
        if unit.location_name.is_none() {
            continue;
        }
        let target = match unit.crm_location_id.as_deref() {
            Some(location) => (Some(location), None),
            None => (None, Some(unit.crm_unit_id.as_str())),
        };
        last_by_target.insert(target, index);
    }
    if last_by_target.is_empty() {
        return Ok(());
    }
    let mut ordered: Vec<usize> = last_by_target.into_values().collect();
    ordered.sort_unstable();
    let crm_location_id: Vec<Option<&str>> = ordered
        .iter()
        .map(|&i| units[i].crm_location_id.as_deref())
        .collect();
    let crm_unit_id: Vec<&str> = ordered
        .iter()
        .map(|&i| units[i].crm_unit_id.as_str())
        .collect();
    let name: Vec<Option<&str>> = ordered
        .iter()
        .map(|&i| units[i].location_name.as_ref().and_then(|n| n.as_deref()))
        .collect();
    sqlx::query!(
        "UPDATE locations AS l SET name = r.name, updated_at = $5
         FROM (
             SELECT DISTINCT ON (location_id) location_id, name
             FROM (
                 SELECT COALESCE(named.id, current.location_id) AS location_id, v.name, v.ord
                 FROM UNNEST($2::text[], $3::text[], $4::text[]) WITH ORDINALITY
                      AS v(crm_location_id, crm_unit_id, name, ord)
                 LEFT JOIN locations named
                        ON named.company_id = $1 AND named.crm_location_id = v.crm_location_id
                 LEFT JOIN units current
                        ON v.crm_location_id IS NULL AND current.company_id = $1
                       AND current.crm_unit_id = v.crm_unit_id
             ) AS targets
             WHERE location_id IS NOT NULL
             ORDER BY location_id, ord DESC
         ) AS r
         WHERE l.id = r.location_id AND l.name IS DISTINCT FROM r.name",
        company_id,
        &crm_location_id as &[Option<&str>],
        &crm_unit_id as &[&str],
        &name as &[Option<&str>],
        now,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
