//! The phone (and code) a login request names, validated as docs/api.md ("Tenant login") says.

use std::net::IpAddr;

use serde::Deserialize;

use crate::domain::ValidationErrors;
use crate::domain::phone::PhoneE164;
use crate::domain::validation::{Fields, Sent, Validate};
use crate::http::rate_limit::LimitedBody;
use crate::services::rate_limit::Scope;

/// The body of `POST /auth/phone`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct PhoneBody {
    /// 1–3 digits, without `+`.
    #[schema(value_type = String, required = true, example = "1", pattern = r"^[1-9][0-9]{0,2}$")]
    #[serde(default)]
    country_code: Sent<String>,
    /// 7–15 digits without the country code (spaces, dashes, dots and parentheses are stripped).
    #[schema(value_type = String, required = true, example = "5551234567", pattern = r"^[0-9 ().-]{7,30}$")]
    #[serde(default)]
    phone_number: Sent<String>,
}

/// A request for a code.
pub struct PhoneLogin {
    pub phone: PhoneE164,
}

impl Validate for PhoneLogin {
    type Raw = PhoneBody;

    fn validate(raw: &PhoneBody, errors: &mut ValidationErrors) -> Option<Self> {
        let phone = read_phone(&mut Fields::new(errors), raw);
        Some(PhoneLogin { phone: phone? })
    }
}

/// Sending is limited per client IP whatever the body says, and per phone (a minute and a day)
/// in E.164, so that every spelling of one number shares its limits.
impl LimitedBody for PhoneLogin {
    fn rate_limit_keys(raw: &PhoneBody, ip: Option<IpAddr>) -> Vec<(Scope, String)> {
        limit_keys(
            raw,
            ip,
            Scope::OtpSendIp,
            &[Scope::OtpSend, Scope::OtpSendDaily],
        )
    }
}

/// The body of `POST /auth/verify-otp`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct VerifyOtpBody {
    #[serde(flatten)]
    #[schema(inline)]
    phone: PhoneBody,
    #[schema(value_type = String, required = true, example = "482910", pattern = r"^\s*[0-9]{6}\s*$")]
    #[serde(default)]
    otp: Sent<String>,
    /// Required on the second call when several accounts were offered.
    #[schema(value_type = Option<String>, example = "01JD3F6Q0S8W1Y2Z3A4B5C6D7E")]
    #[serde(default)]
    tenant_id: Sent<String>,
}

/// A code to check, for one of the phone's accounts.
pub struct VerifyOtp {
    pub phone: PhoneE164,
    pub otp: String,
    pub tenant_id: Option<String>,
}

impl Validate for VerifyOtp {
    type Raw = VerifyOtpBody;

    fn validate(raw: &VerifyOtpBody, errors: &mut ValidationErrors) -> Option<Self> {
        let mut fields = Fields::new(errors);
        let phone = read_phone(&mut fields, &raw.phone);
        let otp = fields.required_str("otp", &raw.otp).and_then(|otp| {
            let otp = otp.trim();
            let valid = otp.len() == 6 && otp.bytes().all(|b| b.is_ascii_digit());
            if !valid {
                fields.error("otp", "The otp field must be 6 digits.");
            }
            valid.then(|| otp.to_owned())
        });
        let tenant_id = fields
            .optional_str("tenant_id", &raw.tenant_id)
            .flatten()
            .map(|id| id.trim().to_owned());
        Some(VerifyOtp {
            phone: phone?,
            otp: otp?,
            tenant_id,
        })
    }
}

/// Verifying is limited per client IP and per phone; a request that will check a code (its whole
/// body is valid) also reserves one of the phone's wrong codes of the day, which the handler gives
/// back unless the code was wrong. A malformed code never reaches a check, so it reserves nothing.
impl LimitedBody for VerifyOtp {
    fn rate_limit_keys(raw: &VerifyOtpBody, ip: Option<IpAddr>) -> Vec<(Scope, String)> {
        let mut keys = limit_keys(&raw.phone, ip, Scope::OtpVerifyIp, &[Scope::OtpVerify]);
        if let Ok(request) = VerifyOtp::from_raw(raw) {
            keys.push((Scope::OtpFailedDaily, request.phone.to_string()));
        }
        keys
    }
}

/// The client IP under `ip_scope`, and the phone a body names, if it names a valid one, under
/// each of `phone_scopes`.
fn limit_keys(
    raw: &PhoneBody,
    ip: Option<IpAddr>,
    ip_scope: Scope,
    phone_scopes: &[Scope],
) -> Vec<(Scope, String)> {
    let ip_key = ip.map(|ip| (ip_scope, ip.to_string()));
    let phone = read_phone(&mut Fields::new(&mut ValidationErrors::new()), raw);
    let phone_keys = phone.into_iter().flat_map(|phone| {
        phone_scopes
            .iter()
            .map(move |scope| (*scope, phone.to_string()))
    });
    ip_key.into_iter().chain(phone_keys).collect()
}

/// `country_code` (1–3 digits, no `+`) and `phone_number` (7–15 digits once spaces, dashes, dots
/// and parentheses are stripped), combined into E.164.
fn read_phone(fields: &mut Fields<'_>, raw: &PhoneBody) -> Option<PhoneE164> {
    let country_code = fields
        .required_str("country_code", &raw.country_code)
        .and_then(|code| {
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
    let number = fields
        .required_str("phone_number", &raw.phone_number)
        .and_then(|number| {
            let digits: String = number
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
                .collect();
            let valid =
                (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
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
