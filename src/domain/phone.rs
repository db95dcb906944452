//! Phone numbers in E.164, the form every comparison uses.

use std::fmt;

use phonenumber::Mode;

/// A phone number in E.164 form (`+15551234567`). Checked for syntax and length only, not for
/// whether the number is allocated, so test numbers such as `+1 555 123 4567` are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneE164(String);

impl PhoneE164 {
    /// Parses an international number such as `+1 (555) 123-4567`. A national trunk prefix after
    /// the country code is dropped where the country's numbering plan has one (`+33 06…` → `+336…`).
    pub fn parse(input: &str) -> Option<Self> {
        let cleaned: String = input
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let digits = cleaned.strip_prefix('+')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let number = phonenumber::parse(None, &cleaned).ok()?;
        let e164 = number.format().mode(Mode::E164).to_string();
        is_e164(&e164).then_some(PhoneE164(e164))
    }

    /// Builds the number from a country calling code (`1`) and a national number (`5551234567`).
    pub fn from_parts(country_code: &str, national_number: &str) -> Option<Self> {
        Self::parse(&format!("+{country_code} {national_number}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ISO 3166-1 alpha-2 region the numbering plan places the number in. A number the plan
    /// cannot place (such as the test range `+1 555…`) belongs to its calling code's main region,
    /// the one that country code is billed as.
    pub fn region(&self) -> Option<String> {
        let number = phonenumber::parse(None, &self.0).ok()?;
        if let Some(id) = number.country().id() {
            return Some(id.as_ref().to_owned());
        }
        let regions = phonenumber::metadata::DATABASE.region(&number.code().value())?;
        regions
            .first()
            .filter(|region| **region != "001")
            .map(|region| (*region).to_owned())
    }

    /// The last four digits, the most of a phone that logs and audit records show.
    pub fn last_four(&self) -> &str {
        &self.0[self.0.len().saturating_sub(4)..]
    }
}

impl fmt::Display for PhoneE164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `+`, a country code not starting with 0, and 7 to 15 digits in all.
fn is_e164(value: &str) -> bool {
    let Some(digits) = value.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::PhoneE164;

    fn e164(input: &str) -> Option<String> {
        PhoneE164::parse(input).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn formatting_is_removed_and_test_numbers_are_accepted() {
        assert_eq!(e164("+1 555 123 4567").as_deref(), Some("+15551234567"));
        assert_eq!(e164("+1 (555) 123-4567").as_deref(), Some("+15551234567"));
        assert_eq!(e164("+15551234567").as_deref(), Some("+15551234567"));
    }

    #[test]
    fn a_national_trunk_prefix_is_dropped_where_the_plan_has_one() {
        assert_eq!(e164("+33 06 12 34 56 78").as_deref(), Some("+33612345678"));
        assert_eq!(e164("+49 030 123456").as_deref(), Some("+4930123456"));
        // Italy has no trunk prefix: the 0 belongs to the number.
        assert_eq!(e164("+39 06 1234 5678").as_deref(), Some("+390612345678"));
    }

    #[test]
    fn numbers_without_a_country_code_or_with_bad_characters_are_refused() {
        for bad in [
            "5551234567",
            "+",
            "+1 555 CALL NOW",
            "+999 1234567",
            "+12",
            "",
            "+1 555 123 4567 890 1234",
        ] {
            assert_eq!(e164(bad), None, "{bad}");
        }
    }

    #[test]
    fn regions_come_from_the_numbering_plan() {
        let region = |input: &str| PhoneE164::parse(input).unwrap().region();
        assert_eq!(region("+1 613 782 7274").as_deref(), Some("CA"));
        assert_eq!(region("+1 520 878 2491").as_deref(), Some("US"));
        assert_eq!(region("+1 876 927 1234").as_deref(), Some("JM"));
        assert_eq!(region("+44 7700 900123").as_deref(), Some("GB"));
        assert_eq!(region("+33 6 12 34 56 78").as_deref(), Some("FR"));
        // Unplaceable: the calling code's main region.
        assert_eq!(region("+1 555 123 4567").as_deref(), Some("US"));
        assert_eq!(
            PhoneE164::parse("+15551234567").unwrap().last_four(),
            "4567"
        );
    }

    #[test]
    fn parts_combine_into_the_same_number() {
        assert_eq!(
            PhoneE164::from_parts("1", "555-123-4567"),
            PhoneE164::parse("+15551234567")
        );
        assert_eq!(
            PhoneE164::from_parts("33", "0612345678")
                .map(|p| p.to_string())
                .as_deref(),
            Some("+33612345678")
        );
    }
}
