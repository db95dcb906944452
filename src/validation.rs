//! Field readers for JSON request bodies that record Laravel-style messages under the field's path.

use serde_json::{Map, Value};

use crate::http::error::ValidationErrors;

/// Reads the fields of one JSON object, recording problems under `prefix` + field name.
pub struct Fields<'a, 'e> {
    body: &'a Map<String, Value>,
    prefix: String,
    errors: &'e mut ValidationErrors,
}

impl<'a, 'e> Fields<'a, 'e> {
    pub fn new(body: &'a Map<String, Value>, errors: &'e mut ValidationErrors) -> Self {
        Self::nested(body, String::new(), errors)
    }

    /// Fields of an item inside a list, e.g. prefix `units.3.`.
    pub fn nested(
        body: &'a Map<String, Value>,
        prefix: String,
        errors: &'e mut ValidationErrors,
    ) -> Self {
        Fields {
            body,
            prefix,
            errors,
        }
    }

    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.add(format!("{}{key}", self.prefix), message);
    }

    pub fn has_error(&self, key: &str) -> bool {
        self.errors.has(&format!("{}{key}", self.prefix))
    }

    /// A string that must be present and not blank.
    pub fn required_str(&mut self, key: &str) -> Option<&'a str> {
        if self.has_nul(key) {
            return None;
        }
        match self.body.get(key) {
            None | Some(Value::Null) => {
                self.error(key, format!("The {} field is required.", label(key)));
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.error(key, format!("The {} field is required.", label(key)));
                None
            }
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.error(key, format!("The {} field must be a string.", label(key)));
                None
            }
        }
    }

    /// A string that may be left out. `None`: absent; `Some(None)`: null (or blank); else the value.
    /// A value of another type is recorded as an error and reads as absent.
    pub fn optional_str(&mut self, key: &str) -> Option<Option<&'a str>> {
        if self.has_nul(key) {
            return None;
        }
        match self.body.get(key) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) if s.trim().is_empty() => Some(None),
            Some(Value::String(s)) => Some(Some(s)),
            Some(_) => {
                self.error(key, format!("The {} field must be a string.", label(key)));
                None
            }
        }
    }

    /// Postgres text cannot hold U+0000, so a string with one is refused as a field error.
    fn has_nul(&mut self, key: &str) -> bool {
        let nul = matches!(self.body.get(key), Some(Value::String(s)) if s.contains('\0'));
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
    pub fn required_text(&mut self, key: &str, max: usize) -> Option<String> {
        let value = self.required_str(key)?.trim();
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

/// `phone_number` → `phone number`, as the messages read.
pub fn label(key: &str) -> String {
    key.replace('_', " ")
}

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
        && value.chars().count() <= 254
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn required_strings_report_missing_blank_and_wrong_type() {
        let body = object(json!({"blank": "  ", "number": 3, "ok": "yes"}));
        let mut errors = ValidationErrors::new();
        let mut fields = Fields::new(&body, &mut errors);
        assert_eq!(fields.required_str("ok"), Some("yes"));
        assert_eq!(fields.required_str("phone_number"), None);
        assert_eq!(fields.required_str("blank"), None);
        assert_eq!(fields.required_str("number"), None);
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
    fn nested_fields_are_reported_under_their_path() {
        let body = object(json!({"status": "lost"}));
        let mut errors = ValidationErrors::new();
        let mut fields = Fields::nested(&body, "units.3.".into(), &mut errors);
        let status = fields.required_str("status").unwrap();
        assert!(!fields.check_one_of("status", status, &["available", "rented"]));
        assert!(errors.has("units.3.status"));
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let body = object(json!({}));
        let mut errors = ValidationErrors::new();
        let mut fields = Fields::new(&body, &mut errors);
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
