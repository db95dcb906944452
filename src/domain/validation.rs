//! Client input, parsed once and then validated with Laravel-style messages under each field's path.
//!
//! A body is deserialized straight into a "raw" struct whose fields are [`Sent`] values: every JSON
//! value is accepted there and classified (absent, `null`, the expected type, another type), so the
//! parse never fails on a field and validation can name every problem at once. [`Validate`] then
//! turns the raw struct into the domain's input type, or records why not.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::{Result, ValidationErrors};

/// A domain input built from its raw, leniently parsed body.
pub trait Validate: Sized {
    type Raw: DeserializeOwned + Send + 'static;

    /// The input, or `None` with at least one error recorded.
    fn validate(raw: &Self::Raw, errors: &mut ValidationErrors) -> Option<Self>;

    /// Validates `raw`: the input, or the 422 naming every problem.
    fn from_raw(raw: &Self::Raw) -> Result<Self> {
        let mut errors = ValidationErrors::new();
        let value = Self::validate(raw, &mut errors);
        match value {
            Some(value) if errors.is_empty() => Ok(value),
            _ if errors.is_empty() => Err(anyhow::anyhow!(
                "a validator returned nothing without recording an error"
            )
            .into()),
            _ => Err(errors.into()),
        }
    }
}

/// One field of a JSON body as the client sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Sent<T> {
    #[default]
    Missing,
    Null,
    Value(T),
    /// A JSON value of another type than expected (read and dropped).
    WrongType,
}

impl<T> Sent<T> {
    pub fn value(&self) -> Option<&T> {
        match self {
            Sent::Value(value) => Some(value),
            _ => None,
        }
    }
}

/// A JSON object inside a list (`units: [{…}, …]`); anything else in the list is `WrongType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<T>(pub T);

/// The JSON types a [`Sent`] field can expect; every other type is read and dropped.
pub trait JsonKind: Sized {
    fn from_str(_value: &str) -> Option<Self> {
        None
    }
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl JsonKind for String {
    fn from_str(value: &str) -> Option<Self> {
        Some(value.to_owned())
    }
}

impl<T: DeserializeOwned> JsonKind for Vec<T> {
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        // The body limit bounds the length; the size hint is not trusted beyond a small start.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<T>()? {
            items.push(item);
        }
        Ok(Some(items))
    }
}

impl<T: DeserializeOwned> JsonKind for Object<T> {
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|value| Some(Object(value)))
    }
}

impl<'de, T: JsonKind> de::Deserialize<'de> for Sent<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SentVisitor(PhantomData))
    }
}

struct SentVisitor<T>(PhantomData<T>);

impl<'de, T: JsonKind> Visitor<'de> for SentVisitor<T> {
    type Value = Sent<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Sent<T>, E> {
        Ok(Sent::Null)
    }
    fn visit_none<E>(self) -> Result<Sent<T>, E> {
        Ok(Sent::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Sent<T>, E> {
        Ok(Sent::WrongType)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Sent<T>, E> {
        Ok(Sent::WrongType)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Sent<T>, E> {
        Ok(Sent::WrongType)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Sent<T>, E> {
        Ok(Sent::WrongType)
    }
    fn visit_str<E>(self, value: &str) -> Result<Sent<T>, E> {
        Ok(T::from_str(value).map_or(Sent::WrongType, Sent::Value))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Sent<T>, A::Error> {
        Ok(T::from_seq(seq)?.map_or(Sent::WrongType, Sent::Value))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Sent<T>, A::Error> {
        Ok(T::from_map(map)?.map_or(Sent::WrongType, Sent::Value))
    }
}

/// Checks the fields of one object, recording problems under `prefix` + field name.
pub struct Fields<'e> {
    prefix: Prefix,
    errors: &'e mut ValidationErrors,
}

/// Where an object's fields sit: at the top, or in item N of a list (`units.3.`). The path is
/// only written out when there is an error to record.
#[derive(Clone, Copy)]
enum Prefix {
    Top,
    Item(&'static str, usize),
}

impl<'e> Fields<'e> {
    pub fn new(errors: &'e mut ValidationErrors) -> Self {
        Fields {
            prefix: Prefix::Top,
            errors,
        }
    }

    /// Fields of item `index` of the list `list`: errors read `list.index.field`.
    pub fn item(list: &'static str, index: usize, errors: &'e mut ValidationErrors) -> Self {
        Fields {
            prefix: Prefix::Item(list, index),
            errors,
        }
    }

    fn path(&self, key: &str) -> String {
        match self.prefix {
            Prefix::Top => key.to_owned(),
            Prefix::Item(list, index) => format!("{list}.{index}.{key}"),
        }
    }

    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        let path = self.path(key);
        self.errors.add(path, message);
    }

    /// A string that must be present and not blank.
    pub fn required_str<'a>(&mut self, key: &str, sent: &'a Sent<String>) -> Option<&'a str> {
        match sent {
            Sent::Missing | Sent::Null => {
                self.error(key, format!("The {} field is required.", label(key)));
                None
            }
            Sent::Value(s) if self.has_nul(key, s) => None,
            Sent::Value(s) if s.trim().is_empty() => {
                self.error(key, format!("The {} field is required.", label(key)));
                None
            }
            Sent::Value(s) => Some(s),
            Sent::WrongType => {
                self.error(key, format!("The {} field must be a string.", label(key)));
                None
            }
        }
    }

    /// A string that may be left out. `None`: absent; `Some(None)`: null (or blank); else the value.
    /// A value of another type is recorded as an error and reads as absent.
    pub fn optional_str<'a>(
        &mut self,
        key: &str,
        sent: &'a Sent<String>,
    ) -> Option<Option<&'a str>> {
        match sent {
            Sent::Missing => None,
            Sent::Null => Some(None),
            Sent::Value(s) if self.has_nul(key, s) => None,
            Sent::Value(s) if s.trim().is_empty() => Some(None),
            Sent::Value(s) => Some(Some(s)),
            Sent::WrongType => {
                self.error(key, format!("The {} field must be a string.", label(key)));
                None
            }
        }
    }

    /// Postgres text cannot hold U+0000, so a string with one is refused as a field error.
    fn has_nul(&mut self, key: &str, value: &str) -> bool {
        let nul = value.contains('\0');
        if nul {
            self.error(
                key,
                format!("The {} field must not contain NUL characters.", label(key)),
            );
        }
        nul
    }

    /// Records an error unless `value` has `min..=max` characters.
    pub fn check_length(&mut self, key: &str, value: &str, min: usize, max: usize) -> bool {
        let chars = value.chars().count();
        if (min..=max).contains(&chars) {
            return true;
        }
        let message = if chars > max {
            format!(
                "The {} field must not be greater than {max} characters.",
                label(key)
            )
        } else {
            format!(
                "The {} field must be at least {min} characters.",
                label(key)
            )
        };
        self.error(key, message);
        false
    }

    /// A required string with a length range, trimmed of surrounding white space.
    pub fn required_text(&mut self, key: &str, sent: &Sent<String>, max: usize) -> Option<String> {
        let value = self.required_str(key, sent)?.trim();
        self.check_length(key, value, 1, max)
            .then(|| value.to_owned())
    }

    /// Records an error unless `value` is one of `allowed`.
    pub fn check_one_of(&mut self, key: &str, value: &str, allowed: &[&str]) -> bool {
        if allowed.contains(&value) {
            return true;
        }
        self.error(
            key,
            format!(
                "The selected {} is invalid. Expected one of: {}.",
                label(key),
                allowed.join(", ")
            ),
        );
        false
    }
}

/// A page size from a query string's `limit` (blank counts as not given): 1 to `max`, `default`
/// when not given; anything else is recorded as an error on `limit`.
pub fn page_limit(
    given: Option<&str>,
    default: i64,
    max: i64,
    errors: &mut ValidationErrors,
) -> i64 {
    let Some(raw) = given.map(str::trim).filter(|raw| !raw.is_empty()) else {
        return default;
    };
    match raw.parse::<i64>() {
        Ok(limit) if (1..=max).contains(&limit) => limit,
        _ => {
            errors.add(
                "limit",
                format!("The limit field must be an integer between 1 and {max}."),
            );
            default
        }
    }
}

/// The longest free text (names, sizes) a field may hold, in characters.
pub const MAX_TEXT_CHARS: usize = 191;

/// `phone_number` → `phone number`, as the messages read.
pub fn label(key: &str) -> String {
    key.replace('_', " ")
}

/// The longest e-mail address accepted anywhere (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// A plausible e-mail address: one `@`, something on both sides, a dot in the domain, no spaces.
pub fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && value.chars().count() <= MAX_EMAIL_CHARS
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Raw {
        ok: Sent<String>,
        phone_number: Sent<String>,
        blank: Sent<String>,
        number: Sent<String>,
        items: Sent<Vec<Sent<Object<Raw>>>>,
    }

    fn raw(value: serde_json::Value) -> Raw {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn every_json_value_is_classified_without_failing_the_parse() {
        let body =
            raw(json!({"ok": "yes", "blank": null, "number": 3, "items": [{"ok": "x"}, 7, [1]]}));
        assert_eq!(body.ok, Sent::Value("yes".to_owned()));
        assert_eq!(body.phone_number, Sent::Missing);
        assert_eq!(body.blank, Sent::Null);
        assert_eq!(body.number, Sent::WrongType);
        let items = body.items.value().unwrap();
        assert_eq!(items.len(), 3);
        assert!(
            matches!(&items[0], Sent::Value(Object(item)) if item.ok == Sent::Value("x".into()))
        );
        assert!(matches!(items[1], Sent::WrongType));
        assert!(matches!(items[2], Sent::WrongType));
    }

    #[test]
    fn required_strings_report_missing_blank_and_wrong_type() {
        let body = raw(json!({"blank": "  ", "number": 3, "ok": "yes"}));
        let mut errors = ValidationErrors::new();
        let mut fields = Fields::new(&mut errors);
        assert_eq!(fields.required_str("ok", &body.ok), Some("yes"));
        assert_eq!(
            fields.required_str("phone_number", &body.phone_number),
            None
        );
        assert_eq!(fields.required_str("blank", &body.blank), None);
        assert_eq!(fields.required_str("number", &body.number), None);
        let rendered = serde_json::to_value(&errors).unwrap();
        assert_eq!(
            rendered,
            json!({
                "phone_number": ["The phone number field is required."],
                "blank": ["The blank field is required."],
                "number": ["The number field must be a string."],
            })
        );
    }

    #[test]
    fn item_fields_are_reported_under_their_path() {
        let mut errors = ValidationErrors::new();
        let mut fields = Fields::item("units", 3, &mut errors);
        assert!(!fields.check_one_of("status", "lost", &["available", "rented"]));
        let rendered = serde_json::to_value(&errors).unwrap();
        assert!(rendered.get("units.3.status").is_some(), "{rendered}");
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let mut errors = ValidationErrors::new();
        let mut fields = Fields::new(&mut errors);
        assert!(fields.check_length("name", "ééé", 1, 3));
        assert!(!fields.check_length("name", "éééé", 1, 3));
        assert!(!fields.check_length("name", "", 1, 3));
    }

    #[test]
    fn email_shapes() {
        assert!(is_email("ops@example.com"));
        assert!(!is_email("ops@example"));
        assert!(!is_email("ops example.com"));
        assert!(!is_email("@example.com"));
        assert!(!is_email("a b@example.com"));
    }
}
