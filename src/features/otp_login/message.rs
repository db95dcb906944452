//! The text of the SMS that carries a code.

use chrono::TimeDelta;

/// `Your <app> verification code is NNNNNN. It expires in N minutes.`, and when an autofill
/// domain is set, a last line `@<domain> #NNNNNN`: the origin-bound one-time-code format that iOS
/// and Android read to offer the code on that web origin (and its app) only.
pub fn sms_text(
    app_name: Option<&str>,
    autofill_domain: Option<&str>,
    code: &str,
    ttl: TimeDelta,
) -> String {
    let minutes = ttl.num_minutes().max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    let subject = match app_name {
        Some(name) => format!("Your {name} verification code"),
        None => "Your verification code".to_owned(),
    };
    let mut text = format!("{subject} is {code}. It expires in {minutes} {unit}.");
    if let Some(domain) = autofill_domain {
        text.push_str(&format!("\n\n@{domain} #{code}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_the_app_and_ends_with_the_autofill_line() {
        let five = TimeDelta::minutes(5);
        assert_eq!(
            sms_text(None, None, "042917", five),
            "Your verification code is 042917. It expires in 5 minutes."
        );
        assert_eq!(
            sms_text(Some("Acme Storage"), None, "042917", five),
            "Your Acme Storage verification code is 042917. It expires in 5 minutes."
        );
        assert_eq!(
            sms_text(
                Some("Acme"),
                Some("app.acme.example"),
                "042917",
                TimeDelta::seconds(60)
            ),
            "Your Acme verification code is 042917. It expires in 1 minute.\n\n@app.acme.example #042917"
        );
    }
}
