//! Parsers for the plain text fields every slice takes at its edge.

/// An e-mail address, lower-cased: one `@`, a local part without leading,
/// trailing or doubled dots, a domain with a dot that does not start or end
/// with one, no white space or control characters, at most 254 bytes.
pub fn email(s: &str) -> Result<String, String> {
    let s = s.trim().to_lowercase();
    let valid = s.len() <= 254
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !local.starts_with('.')
                && !local.ends_with('.')
                && !local.contains("..")
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        })
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(s)
    } else {
        Err("must be an e-mail address".into())
    }
}

pub fn slug(s: &str) -> Result<String, String> {
    let ok = (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(
            "must be 3 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
                .into(),
        )
    }
}

/// A trimmed, non-empty name of at most `max` characters.
pub fn name(s: &str, max: usize) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        Err("must not be empty".into())
    } else if t.chars().count() > max {
        Err(format!("must be at most {max} characters"))
    } else if t.chars().any(|c| c.is_control()) {
        Err("must not contain control characters".into())
    } else {
        Ok(t.to_string())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_emails_and_names_are_checked_at_the_edge() {
        assert!(super::slug("demo-org").is_ok());
        assert!(super::slug("-x-").is_err());
        assert!(super::slug("UPPER").is_err());
        assert_eq!(super::email(" A@B.co ").unwrap(), "a@b.co");
        assert!(super::email("nope").is_err());
        for bad in [
            "a@b@c.d", "a..b@c.d", ".a@b.co", "a.@b.co", "a@.b.co", "a@b..co", "a b@c.d",
        ] {
            assert!(super::email(bad).is_err(), "{bad}");
        }
        assert!(super::name("  ", 5).is_err());
        assert!(super::name("abcdef", 5).is_err());
    }
}
