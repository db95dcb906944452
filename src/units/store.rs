//! Unit queries. Bulk writes are set-based: a constant number of statements whatever the size of
//! the request (arrays bound once and expanded with `UNNEST`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use super::input::UnitPatch;
use crate::http::error::ValidationErrors;
use crate::http::{Error, Result};
use crate::tenancies::Tenancy;

/// A unit as every response shows it.
#[derive(Debug, Serialize)]
pub struct Unit {
    pub crm_unit_id: String,
    pub crm_location_id: String,
    pub location_name: Option<String>,
    pub name: String,
    pub size: Option<String>,
    pub status: String,
    pub tenancy: Option<Json<Tenancy>>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct SyncCounts {
    pub created: u64,
    pub updated: u64,
}

/// Advisory-lock class that serialises bulk syncs of one company, so that the existence check
/// and the insert of new units cannot race with another sync.
const BULK_SYNC_LOCK: i32 = 0x4b55_0001;

pub async fn find(
    db: impl PgExecutor<'_>,
    company_id: Uuid,
    crm_unit_id: &str,
) -> Result<Option<Unit>> {
    let unit = sqlx::query_as!(
        Unit,
        r#"SELECT crm_unit_id AS "crm_unit_id!", crm_location_id AS "crm_location_id!",
                  location_name, name AS "name!", size, status AS "status!",
                  tenancy AS "tenancy: Json<Tenancy>"
           FROM unit_details WHERE company_id = $1 AND crm_unit_id = $2"#,
        company_id,
        crm_unit_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(unit)
}

/// One page of a company's units in `crm_unit_id` order, after `after` if given.
pub async fn list(
    db: &PgPool,
    company_id: Uuid,
    crm_location_id: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Unit>> {
    let units = sqlx::query_as!(
        Unit,
        r#"SELECT crm_unit_id AS "crm_unit_id!", crm_location_id AS "crm_location_id!",
                  location_name, name AS "name!", size, status AS "status!",
                  tenancy AS "tenancy: Json<Tenancy>"
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
    Ok(units)
}

/// The single-unit PATCH that touches no location: one statement, returning the unit.
pub async fn patch_in_place(
    conn: &mut PgConnection,
    company_id: Uuid,
    patch: &UnitPatch,
    now: DateTime<Utc>,
) -> Result<Option<Unit>> {
    let unit = sqlx::query_as!(
        Unit,
        r#"UPDATE units AS u SET
               name = COALESCE($3, u.name),
               size = CASE WHEN $4 THEN $5 ELSE u.size END,
               status = COALESCE($6, u.status),
               updated_at = $7
           FROM locations l
           WHERE u.company_id = $1 AND u.crm_unit_id = $2 AND l.id = u.location_id
           RETURNING u.crm_unit_id, l.crm_location_id, l.name AS location_name, u.name, u.size,
                     u.status, unit_tenancy(u.id) AS "tenancy: Json<Tenancy>""#,
        company_id,
        patch.crm_unit_id,
        patch.name,
        patch.size.is_some(),
        patch.size.clone().flatten(),
        patch.status,
        now,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(unit)
}

/// Whether the company has this unit (locking it until the transaction ends).
pub async fn lock_unit(
    conn: &mut PgConnection,
    company_id: Uuid,
    crm_unit_id: &str,
) -> Result<Option<UnitKey>> {
    let key = sqlx::query_as!(
        UnitKey,
        "SELECT id, location_id FROM units WHERE company_id = $1 AND crm_unit_id = $2 FOR UPDATE",
        company_id,
        crm_unit_id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(key)
}

#[derive(Debug, Clone, Copy)]
pub struct UnitKey {
    pub id: Uuid,
    pub location_id: Uuid,
}

/// Upserts units by `crm_unit_id` inside the caller's transaction. Only the fields each patch sent
/// change; a unit that does not exist yet must name its location. Statements: lock, read existing,
/// insert locations, rename locations, update units, insert units — whatever the number of units.
pub async fn sync(
    tx: &mut PgConnection,
    company_id: Uuid,
    units: &[UnitPatch],
    now: DateTime<Utc>,
) -> Result<SyncCounts> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        BULK_SYNC_LOCK,
        company_id.to_string(),
    )
    .execute(&mut *tx)
    .await?;

    let ids: Vec<&str> = units.iter().map(|u| u.crm_unit_id.as_str()).collect();
    let existing: HashMap<String, String> = sqlx::query!(
        "SELECT u.crm_unit_id, l.crm_location_id
         FROM units u JOIN locations l ON l.id = u.location_id
         WHERE u.company_id = $1 AND u.crm_unit_id = ANY($2::text[])",
        company_id,
        &ids as &[&str],
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|row| (row.crm_unit_id, row.crm_location_id))
    .collect();

    let mut errors = ValidationErrors::new();
    for (index, unit) in units.iter().enumerate() {
        if unit.crm_location_id.is_none() && !existing.contains_key(&unit.crm_unit_id) {
            errors.add(
                format!("units.{index}.crm_location_id"),
                "The crm location id field is required when the unit is created.",
            );
        }
    }
    errors.into_result(())?;

    upsert_locations(tx, company_id, units, &existing, now).await?;

    let (updates, inserts): (Vec<&UnitPatch>, Vec<&UnitPatch>) = units
        .iter()
        .partition(|u| existing.contains_key(&u.crm_unit_id));
    let updated = update_units(tx, company_id, &updates, now).await?;
    let created = insert_units(tx, company_id, &inserts, now).await?;
    if updated != updates.len() as u64 || created != inserts.len() as u64 {
        return Err(Error::Internal(anyhow::anyhow!(
            "bulk sync wrote {updated}/{created} rows for {}/{} units",
            updates.len(),
            inserts.len()
        )));
    }
    Ok(SyncCounts { created, updated })
}

/// Creates the locations the units name and applies `location_name`s (the last one sent for a
/// location wins). A `location_name` without a `crm_location_id` renames the unit's current location.
async fn upsert_locations(
    tx: &mut PgConnection,
    company_id: Uuid,
    units: &[UnitPatch],
    existing: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut names: HashMap<&str, Option<&str>> = HashMap::new();
    for unit in units {
        let location = unit
            .crm_location_id
            .as_deref()
            .or_else(|| existing.get(&unit.crm_unit_id).map(String::as_str));
        let (Some(location), Some(name)) = (location, &unit.location_name) else {
            continue;
        };
        names.insert(location, name.as_deref());
    }
    let new_ids: Vec<&str> = units
        .iter()
        .filter_map(|u| u.crm_location_id.as_deref())
        .collect();
    if !new_ids.is_empty() {
        // Names are applied below, with the renames.
        sqlx::query!(
            "INSERT INTO locations (company_id, crm_location_id, created_at, updated_at)
             SELECT DISTINCT $1::uuid, v.crm_location_id, $3::timestamptz, $3::timestamptz
             FROM UNNEST($2::text[]) AS v(crm_location_id)
             ON CONFLICT (company_id, crm_location_id) DO NOTHING",
            company_id,
            &new_ids as &[&str],
            now,
        )
        .execute(&mut *tx)
        .await?;
    }
    let (renamed, new_names): (Vec<&str>, Vec<Option<&str>>) =
        names.iter().map(|(id, name)| (*id, *name)).unzip();
    if !renamed.is_empty() {
        sqlx::query!(
            "UPDATE locations AS l SET name = v.name, updated_at = $4
             FROM UNNEST($2::text[], $3::text[]) AS v(crm_location_id, name)
             WHERE l.company_id = $1 AND l.crm_location_id = v.crm_location_id
               AND l.name IS DISTINCT FROM v.name",
            company_id,
            &renamed as &[&str],
            &new_names as &[Option<&str>],
            now,
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The columns of a set of patches, one array per field, for `UNNEST`.
struct Columns<'a> {
    crm_unit_id: Vec<&'a str>,
    crm_location_id: Vec<Option<&'a str>>,
    name: Vec<Option<&'a str>>,
    size: Vec<Option<&'a str>>,
    size_set: Vec<bool>,
    status: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn of(units: &[&'a UnitPatch]) -> Self {
        Columns {
            crm_unit_id: units.iter().map(|u| u.crm_unit_id.as_str()).collect(),
            crm_location_id: units.iter().map(|u| u.crm_location_id.as_deref()).collect(),
            name: units.iter().map(|u| u.name.as_deref()).collect(),
            size: units
                .iter()
                .map(|u| u.size.as_ref().and_then(|s| s.as_deref()))
                .collect(),
            size_set: units.iter().map(|u| u.size.is_some()).collect(),
            status: units.iter().map(|u| u.status.as_deref()).collect(),
        }
    }
}

async fn update_units(
    tx: &mut PgConnection,
    company_id: Uuid,
    units: &[&UnitPatch],
    now: DateTime<Utc>,
) -> Result<u64> {
    if units.is_empty() {
        return Ok(0);
    }
    let c = Columns::of(units);
    let result = sqlx::query!(
        "UPDATE units AS u SET
             location_id = COALESCE(l.id, u.location_id),
             name = COALESCE(v.name, u.name),
             size = CASE WHEN v.size_set THEN v.size ELSE u.size END,
             status = COALESCE(v.status, u.status),
             updated_at = $8
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::text[])
              AS v(crm_unit_id, crm_location_id, name, size, size_set, status)
         LEFT JOIN locations l ON l.company_id = $1 AND l.crm_location_id = v.crm_location_id
         WHERE u.company_id = $1 AND u.crm_unit_id = v.crm_unit_id",
        company_id,
        &c.crm_unit_id as &[&str],
        &c.crm_location_id as &[Option<&str>],
        &c.name as &[Option<&str>],
        &c.size as &[Option<&str>],
        &c.size_set,
        &c.status as &[Option<&str>],
        now,
    )
    .execute(&mut *tx)
    .await?;
    Ok(result.rows_affected())
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
    let c = Columns::of(units);
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
