//! Unit bodies as clients send them, and their validation: every rule of docs/api.md, "PMS push", each problem
//! named by its path, in one linear pass over a bulk body.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::domain::validation::{Fields, MAX_TEXT_CHARS, Object, Sent, page_limit};
use crate::domain::{Result, ValidationErrors};

pub const MAX_ID_CHARS: usize = 191;

/// A unit's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnitStatus {
    Available,
    Rented,
    Reserved,
    Unavailable,
    Overlocked,
}

impl UnitStatus {
    pub const ALL: [UnitStatus; 5] = [
        UnitStatus::Available,
        UnitStatus::Rented,
        UnitStatus::Reserved,
        UnitStatus::Unavailable,
        UnitStatus::Overlocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UnitStatus::Available => "available",
            UnitStatus::Rented => "rented",
            UnitStatus::Reserved => "reserved",
            UnitStatus::Unavailable => "unavailable",
            UnitStatus::Overlocked => "overlocked",
        }
    }
}

/// One unit in a bulk `PATCH /units`. Fields left out keep their value; `null` clears `size` and
/// `location_name`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct UnitBody {
    /// 1–191 characters, no `/`, unique within the request.
    #[schema(value_type = String, required = true, example = "A-101", pattern = r"^[^/\u0000]{1,191}$")]
    #[serde(default)]
    crm_unit_id: Sent<String>,
    #[serde(flatten)]
    #[schema(inline)]
    fields: UnitFieldsBody,
}

/// The fields of a single-unit `PATCH /units/{crm_unit_id}` (a `crm_unit_id` in the body is
/// ignored), and of each unit of a bulk PATCH.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct UnitFieldsBody {
    /// Required when the unit is created.
    #[schema(value_type = Option<String>, example = "downtown", pattern = r"^[^\u0000]{0,191}$")]
    #[serde(default)]
    crm_location_id: Sent<String>,
    /// Names (or renames) the unit's location; `null` clears the name.
    #[schema(value_type = Option<String>, example = "Downtown Storage", pattern = r"^[^\u0000]{0,191}$")]
    #[serde(default)]
    location_name: Sent<String>,
    /// Defaults to `crm_unit_id`.
    #[schema(value_type = String, pattern = r"^\s*[^\s\u0000][^\u0000]{0,190}$")]
    #[serde(default)]
    name: Sent<String>,
    /// `null` clears the size.
    #[schema(value_type = Option<String>, example = "10x10", pattern = r"^[^\u0000]{0,191}$")]
    #[serde(default)]
    size: Sent<String>,
    /// Defaults to `available`.
    #[schema(value_type = UnitStatus)]
    #[serde(default)]
    status: Sent<String>,
}

/// The body of `PATCH /units`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct BulkUnitsBody {
    /// 1 to `KISS_BULK_MAX_UNITS` units; all are written or none.
    #[schema(value_type = Vec<UnitBody>, required = true, min_items = 1)]
    #[serde(default)]
    units: Sent<Vec<Sent<Object<UnitBody>>>>,
}

/// The fields one PATCH sends for a unit; `None` means "not sent, leave as it is".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPatch {
    pub crm_unit_id: String,
    pub crm_location_id: Option<String>,
    /// `Some(None)` clears the location's name.
    pub location_name: Option<Option<String>>,
    pub name: Option<String>,
    /// `Some(None)` clears the size.
    pub size: Option<Option<String>>,
    pub status: Option<UnitStatus>,
}

impl UnitPatch {
    /// Whether the patch moves the unit or names its location (the slower, general path).
    pub fn touches_location(&self) -> bool {
        self.crm_location_id.is_some() || self.location_name.is_some()
    }
}

/// A `crm_unit_id` (or `crm_location_id`): 1–191 characters, and no `/` for unit ids, so it can
/// stand in a path.
pub fn is_valid_crm_unit_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= MAX_ID_CHARS && !id.contains('/')
}

/// The validated body of `PATCH /units`: all items valid, or the 422 naming every bad one.
///
/// `existing` is what the database said about the items without `crm_location_id` when a first
/// check has already failed: those not among them are new units, and their missing location is
/// named with the other item errors. Before that (`None`), the store finds them under its lock.
pub fn validate_bulk(
    body: &BulkUnitsBody,
    max_units: usize,
    existing: Option<&HashSet<String>>,
) -> Result<Vec<UnitPatch>> {
    let mut errors = ValidationErrors::new();
    let items = match &body.units {
        Sent::Missing | Sent::Null => {
            errors.add("units", "The units field is required.");
            return Err(errors.into());
        }
        Sent::Value(items) => items,
        Sent::WrongType => {
            errors.add("units", "The units field must be an array.");
            return Err(errors.into());
        }
    };
    if items.is_empty() {
        errors.add("units", "The units field must have at least 1 item.");
    }
    if items.len() > max_units {
        errors.add(
            "units",
            format!("The units field must not have more than {max_units} items."),
        );
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }

    let mut units = Vec::with_capacity(items.len());
    let mut first_seen: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let Sent::Value(Object(item)) = item else {
            errors.add(format!("units.{index}"), "Each unit must be a JSON object.");
            continue;
        };
        let mut fields = Fields::item("units", index, &mut errors);
        let crm_unit_id = read_crm_unit_id(&mut fields, &item.crm_unit_id);
        if let Some(id) = crm_unit_id
            && first_seen.insert(id, index).is_some()
        {
            fields.error(
                "crm_unit_id",
                "The crm unit id field has a duplicate value.",
            );
        }
        let location_required = match (existing, crm_unit_id) {
            (Some(existing), Some(id)) => !existing.contains(id),
            _ => false,
        };
        let patch = read_fields(
            &mut fields,
            &item.fields,
            crm_unit_id.unwrap_or_default().to_owned(),
            location_required,
        );
        units.push(patch);
    }
    errors.into_result(units)
}

/// The body of `PATCH /units/{crm_unit_id}`: every unit field but the id.
pub fn validate_single(body: &UnitFieldsBody, crm_unit_id: &str) -> Result<UnitPatch> {
    let mut errors = ValidationErrors::new();
    let patch = read_fields(
        &mut Fields::new(&mut errors),
        body,
        crm_unit_id.to_owned(),
        false,
    );
    errors.into_result(patch)
}

fn read_crm_unit_id<'a>(fields: &mut Fields<'_>, sent: &'a Sent<String>) -> Option<&'a str> {
    let id = fields.required_str("crm_unit_id", sent)?;
    if !fields.check_length("crm_unit_id", id, 1, MAX_ID_CHARS) {
        return None;
    }
    if id.contains('/') {
        fields.error(
            "crm_unit_id",
            "The crm unit id field must not contain \"/\".",
        );
        return None;
    }
    Some(id)
}

/// The ids of a bulk body's units that send no `crm_location_id`: those the database must be
/// asked about to tell new units (which need one) from existing ones.
pub fn ids_without_location(body: &BulkUnitsBody) -> Vec<&str> {
    let Sent::Value(items) = &body.units else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item {
            Sent::Value(Object(unit)) => Some(unit),
            _ => None,
        })
        .filter(|unit| matches!(unit.fields.crm_location_id, Sent::Missing | Sent::Null))
        .filter_map(|unit| match &unit.crm_unit_id {
            Sent::Value(id) if is_valid_crm_unit_id(id) => Some(id.as_str()),
            _ => None,
        })
        .collect()
}

pub const LOCATION_REQUIRED: &str =
    "The crm location id field is required when the unit is created.";

fn read_fields(
    fields: &mut Fields<'_>,
    body: &UnitFieldsBody,
    crm_unit_id: String,
    location_required: bool,
) -> UnitPatch {
    let crm_location_id = match fields.optional_str("crm_location_id", &body.crm_location_id) {
        Some(Some(id)) if fields.check_length("crm_location_id", id, 1, MAX_ID_CHARS) => {
            Some(id.to_owned())
        }
        None | Some(None) if location_required => {
            fields.error("crm_location_id", LOCATION_REQUIRED);
            None
        }
        _ => None,
    };
    let location_name = nullable_text(fields, "location_name", &body.location_name);
    let name = match fields.optional_str("name", &body.name) {
        None => None,
        Some(None) => {
            fields.error("name", "The name field must have a value.");
            None
        }
        Some(Some(name)) => {
            let name = name.trim();
            fields
                .check_length("name", name, 1, MAX_TEXT_CHARS)
                .then(|| name.to_owned())
        }
    };
    let size = nullable_text(fields, "size", &body.size);
    let status = match fields.optional_str("status", &body.status) {
        None => None,
        Some(None) => {
            fields.error("status", "The status field must have a value.");
            None
        }
        Some(Some(status)) => {
            let parsed = UnitStatus::ALL.into_iter().find(|s| s.as_str() == status);
            if parsed.is_none() {
                let allowed = UnitStatus::ALL.map(UnitStatus::as_str);
                fields.check_one_of("status", status, &allowed);
            }
            parsed
        }
    };
    UnitPatch {
        crm_unit_id,
        crm_location_id,
        location_name,
        name,
        size,
        status,
    }
}

/// A text field that `null` (or blank) clears.
fn nullable_text(
    fields: &mut Fields<'_>,
    key: &str,
    sent: &Sent<String>,
) -> Option<Option<String>> {
    match fields.optional_str(key, sent)? {
        None => Some(None),
        Some(value) => {
            let value = value.trim();
            fields
                .check_length(key, value, 1, MAX_TEXT_CHARS)
                .then(|| Some(value.to_owned()))
        }
    }
}

/// Page size and position of `GET /units`.
pub struct ListQuery {
    pub crm_location_id: Option<String>,
    pub limit: i64,
    /// The last `crm_unit_id` of the previous page.
    pub after: Option<String>,
}

pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1000;

pub fn parse_list_query(params: &HashMap<String, String>) -> Result<ListQuery> {
    let mut errors = ValidationErrors::new();
    let limit = page_limit(
        params.get("limit").map(String::as_str),
        DEFAULT_PAGE,
        MAX_PAGE,
        &mut errors,
    );
    let after = match params.get("cursor").map(|c| c.trim()) {
        None | Some("") => None,
        Some(raw) => {
            let decoded = decode_cursor(raw);
            if decoded.is_none() {
                errors.add("cursor", "The cursor is invalid.");
            }
            decoded
        }
    };
    let crm_location_id = params
        .get("crm_location_id")
        .filter(|id| !id.is_empty())
        .cloned();
    if crm_location_id.as_ref().is_some_and(|id| id.contains('\0')) {
        errors.add(
            "crm_location_id",
            "The crm location id field must not contain NUL characters.",
        );
    }
    errors.into_result(ListQuery {
        crm_location_id,
        limit,
        after,
    })
}

/// Cursors are opaque to clients: the last id of a page, base64url-encoded.
pub fn encode_cursor(last_crm_unit_id: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last_crm_unit_id)
}

fn decode_cursor(cursor: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes)
        .ok()
        .filter(|id| is_valid_crm_unit_id(id) && !id.contains('\0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Error;
    use serde_json::{Value, json};

    fn bulk(body: Value) -> Result<Vec<UnitPatch>> {
        validate_bulk(&serde_json::from_value(body).unwrap(), 3, None)
    }

    fn errors_of(result: Result<Vec<UnitPatch>>) -> Value {
        match result {
            Err(Error::Validation(errors)) => serde_json::to_value(errors).unwrap(),
            other => panic!(
                "expected a validation error, got {:?}",
                other.map(|u| u.len())
            ),
        }
    }

    #[test]
    fn fields_not_sent_stay_unset_and_null_clears_nullable_ones() {
        let units = bulk(json!({"units": [
            {"crm_unit_id": "A1"},
            {"crm_unit_id": "A2", "size": null, "location_name": "Downtown", "status": "rented", "name": " Big "}
        ]}))
        .unwrap();
        assert_eq!(
            units[0],
            UnitPatch {
                crm_unit_id: "A1".into(),
                crm_location_id: None,
                location_name: None,
                name: None,
                size: None,
                status: None
            }
        );
        assert_eq!(units[1].size, Some(None));
        assert_eq!(units[1].location_name, Some(Some("Downtown".into())));
        assert_eq!(units[1].name.as_deref(), Some("Big"));
        assert_eq!(units[1].status, Some(UnitStatus::Rented));
    }

    #[test]
    fn every_bad_item_is_named_by_its_path() {
        let errors = errors_of(bulk(json!({"units": [
            {"crm_unit_id": "A/1", "status": "lost"},
            "not an object",
            {"crm_unit_id": "B", "name": null, "size": 10}
        ]})));
        assert_eq!(
            errors,
            json!({
                "units.0.crm_unit_id": ["The crm unit id field must not contain \"/\"."],
                "units.0.status": ["The selected status is invalid. Expected one of: available, rented, reserved, unavailable, overlocked."],
                "units.1": ["Each unit must be a JSON object."],
                "units.2.name": ["The name field must have a value."],
                "units.2.size": ["The size field must be a string."],
            })
        );
    }

    #[test]
    fn duplicate_ids_and_list_sizes_are_refused() {
        let errors = errors_of(bulk(
            json!({"units": [{"crm_unit_id": "A"}, {"crm_unit_id": "A"}]}),
        ));
        assert_eq!(
            errors,
            json!({"units.1.crm_unit_id": ["The crm unit id field has a duplicate value."]})
        );
        let too_many = json!({"units": [{"crm_unit_id": "A"}, {"crm_unit_id": "B"}, {"crm_unit_id": "C"}, {"crm_unit_id": "D"}]});
        assert_eq!(
            errors_of(bulk(too_many)),
            json!({"units": ["The units field must not have more than 3 items."]})
        );
        assert_eq!(
            errors_of(bulk(json!({"units": []}))),
            json!({"units": ["The units field must have at least 1 item."]})
        );
        assert_eq!(
            errors_of(bulk(json!({}))),
            json!({"units": ["The units field is required."]})
        );
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let params = HashMap::from([("cursor".to_owned(), encode_cursor("B-17"))]);
        assert_eq!(
            parse_list_query(&params).unwrap().after.as_deref(),
            Some("B-17")
        );
        let params = HashMap::from([("cursor".to_owned(), "%%%".to_owned())]);
        assert!(parse_list_query(&params).is_err());
        let params = HashMap::from([("limit".to_owned(), "1001".to_owned())]);
        assert!(parse_list_query(&params).is_err());
    }
}
