//! Amounts of money: integer minor units of an ISO 4217 currency, shown
//! with that currency's own number of decimals (JPY has none, BHD three).
//! Nothing here divides by 100.

/// How many decimals the currency's minor unit has (ISO 4217; 2 for any
/// currency not listed otherwise).
pub fn exponent(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// The amount as a decimal number in the currency's unit: `150.00`,
/// `1500` (JPY), `1.500` (BHD), `-2.50`.
pub fn amount(minor: i64, currency: &str) -> String {
    let e = exponent(currency);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if e == 0 {
        return format!("{sign}{abs}");
    }
    let unit = 10u64.pow(e);
    format!(
        "{sign}{}.{:0width$}",
        abs / unit,
        abs % unit,
        width = e as usize
    )
}

/// The amount with its currency: `ZAR 150.00`, `JPY 1500`.
pub fn format(minor: i64, currency: &str) -> String {
    format!("{currency} {}", amount(minor, currency))
}

/// Parses a decimal amount typed in the currency's unit ("150", "150.5",
/// "150.50") into minor units; `None` for anything else (more decimals
/// than the currency has, signs, letters, too large).
pub fn parse(text: &str, currency: &str) -> Option<i64> {
    let e = exponent(currency) as usize;
    let text = text.trim();
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if whole.is_empty()
        || whole.len() > 12
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > e
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (e == 0 && text.contains('.'))
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<e$}").parse().ok()?
    };
    whole.checked_mul(10i64.pow(e as u32))?.checked_add(frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_currency_keeps_its_own_decimals() {
        assert_eq!(format(15000, "ZAR"), "ZAR 150.00");
        assert_eq!(format(1500, "JPY"), "JPY 1500");
        assert_eq!(format(1500, "BHD"), "BHD 1.500");
        assert_eq!(amount(5, "EUR"), "0.05");
        assert_eq!(amount(-250, "EUR"), "-2.50");
        assert_eq!(amount(-5, "JPY"), "-5");
    }

    #[test]
    fn typed_amounts_parse_in_the_currencys_unit() {
        assert_eq!(parse("150", "ZAR"), Some(15000));
        assert_eq!(parse("150.5", "ZAR"), Some(15050));
        assert_eq!(parse("0.05", "ZAR"), Some(5));
        assert_eq!(parse("1500", "JPY"), Some(1500));
        assert_eq!(parse("15.5", "JPY"), None);
        assert_eq!(parse("1.234", "ZAR"), None);
        assert_eq!(parse("1.234", "BHD"), Some(1234));
        assert_eq!(parse("-1", "ZAR"), None);
        assert_eq!(parse("1e3", "ZAR"), None);
        assert_eq!(parse("", "ZAR"), None);
        assert_eq!(parse("9999999999999", "ZAR"), None);
    }

    proptest::proptest! {
        #[test]
        fn shown_amounts_parse_back(minor in 0i64..1_000_000_000_000, cur in proptest::sample::select(vec!["ZAR", "JPY", "BHD", "USD", "CLF"])) {
            proptest::prop_assert_eq!(parse(&amount(minor, cur), cur), Some(minor));
        }
    }
}
