//! The phone (and code) a login request names, validated as CONTRACT §5 says.

use serde_json::{Map, Value};

use crate::http::error::ValidationErrors;
use crate::http::extract::FromJsonBody;
use crate::phone::PhoneE164;
use crate::validation::Fields;

/// The body of `POST /auth/phone`.
pub struct PhoneLogin {
    pub phone: PhoneE164,
}

impl FromJsonBody for PhoneLogin {
    fn from_json(body: &Map<String, Value>, errors: &mut ValidationErrors) -> Option<Self> {
        let phone = read_phone(&mut Fields::new(body, errors));
        Some(PhoneLogin { phone: phone? })
    }
}

/// The body of `POST /auth/verify-otp`.
pub struct VerifyOtp {
    pub phone: PhoneE164,
    pub otp: String,
    pub tenant_id: Option<String>,
}

impl FromJsonBody for VerifyOtp {
    fn from_json(body: &Map<String, Value>, errors: &mut ValidationErrors) -> Option<Self> {
        let mut fields = Fields::new(body, errors);
        let phone = read_phone(&mut fields);
        let otp = fields.required_str("otp").and_then(|otp| {
            let otp = otp.trim();
            let valid = otp.len() == 6 && otp.bytes().all(|b| b.is_ascii_digit());
            if !valid {
                fields.error("otp", "The otp field must be 6 digits.");
            }
            valid.then(|| otp.to_owned())
        });
        let tenant_id = fields
            .optional_str("tenant_id")
            .flatten()
            .map(|id| id.trim().to_owned());
        Some(VerifyOtp {
            phone: phone?,
            otp: otp?,
            tenant_id,
        })
    }
}

/// The phone a body names, if it names a valid one (for the rate limit's key).
pub fn phone_of(body: &Map<String, Value>) -> Option<PhoneE164> {
    read_phone(&mut Fields::new(body, &mut ValidationErrors::new()))
}

/// `country_code` (1–3 digits, no `+`) and `phone_number` (7–15 digits once spaces, dashes, dots
/// and parentheses are stripped), combined into E.164.
fn read_phone(fields: &mut Fields<'_, '_>) -> Option<PhoneE164> {
    let country_code = fields.required_str("country_code").and_then(|code| {
        let code = code.trim();
        let valid = (1..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit());
        if !valid {
            fields.error(
                "country_code",
                "The country code field must be 1 to 3 digits, without +.",
            );
        }
        valid.then_some(code)
    });
    let number = fields.required_str("phone_number").and_then(|number| {
        let digits: String = number
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let valid = (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        if !valid {
            fields.error(
                "phone_number",
                "The phone number field must be 7 to 15 digits, without the country code.",
            );
        }
        valid.then_some(digits)
    });
    let phone = PhoneE164::from_parts(country_code?, &number?);
    if phone.is_none() {
        fields.error(
            "phone_number",
            "The phone number field is not a valid phone number for that country code.",
        );
    }
    phone
}
