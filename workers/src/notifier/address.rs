//! Contact address checks: an address that fails them can never be delivered to, so the
//! notification fails permanently instead of being retried against the provider.

/// E.164: `+`, a country code not starting with 0, 8 to 15 digits in all.
pub fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// A deliverable-looking email address: `local@domain` with a dotted domain of letters,
/// digits and hyphens, a local part of the characters mail systems accept unquoted,
/// and the lengths of RFC 5321.
pub fn is_email(address: &str) -> bool {
    if address.len() > 254 {
        return false;
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.len())
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers() {
        for good in [
            "+12025550143",
            "+442071838750",
            "+5215512345678",
            "+8613800138000",
        ] {
            assert!(is_e164(good), "{good}");
        }
        for bad in [
            "12025550143",
            "+1 202 555 0143",
            "+1-202-555-0143",
            "+0123456789",
            "+1234567",
            "+1234567890123456",
            "+",
            "",
            "+1202555014x",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn email_addresses() {
        for good in [
            "patient@example.org",
            "first.last+tag@mail.example.co.uk",
            "o'brien@example.ie",
            "x@a-b.io",
        ] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "plain",
            "@example.org",
            "a@",
            "a@localhost",
            "a@@example.org",
            "a b@example.org",
            ".a@example.org",
            "a..b@example.org",
            "a@-x.org",
            "a@example.c0m",
            "a@exa mple.org",
            "\u{202e}a@example.org",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        assert!(!is_email(&format!("{}@example.org", "a".repeat(65))));
    }
}
