//! Number and Markdown text helpers shared by the report and its plots.

/// `v` with at most `sig` significant digits, trailing zeros dropped: fixed-point between
/// 1e-3 and 1e6 (`0.0123`, `1234.5`), scientific outside (`1.23e-5`, `4.5e7`).
pub(crate) fn number(v: f64, sig: usize) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let sig = sig.max(1);
    let magnitude = v.abs().log10().floor() as i32;
    if (-3..6).contains(&magnitude) {
        let decimals = (sig as i32 - 1 - magnitude).max(0) as usize;
        let text = format!("{v:.decimals$}");
        let text = trim_zeros(&text);
        // Rounding can land exactly on 1e6 (`999999.7` → `1000000`): that is still right.
        return if text == "-0" { "0".into() } else { text };
    }
    let text = format!("{v:.prec$e}", prec = sig - 1);
    match text.split_once('e') {
        Some((mantissa, exp)) => format!("{}e{exp}", trim_zeros(mantissa)),
        None => text,
    }
}

/// `1.2300` → `1.23`, `5.000` → `5`, `120` → `120`.
fn trim_zeros(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text.to_string()
    }
}

/// An integer-valued statistic without decimals (`180`), other values as [`number`].
#[cfg(feature = "report")]
pub(crate) fn stat(v: f64, integer: bool) -> String {
    if integer && v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        number(v, 6)
    }
}

/// Text as an inline code span, with a fence longer than any backtick run inside it.
pub(crate) fn code(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// Text safe inside a Markdown table cell (pipes escaped, line breaks flattened).
pub(crate) fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A relative link target with spaces and parentheses percent-encoded.
pub(crate) fn link_target(path: &str) -> String {
    path.replace('%', "%25")
        .replace(' ', "%20")
        .replace('(', "%28")
        .replace(')', "%29")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_six_significant_digits() {
        assert_eq!(number(0.078123456, 6), "0.0781235");
        assert_eq!(number(1234.5, 6), "1234.5");
        assert_eq!(number(2.0, 6), "2");
        assert_eq!(number(-0.5, 6), "-0.5");
        assert_eq!(number(0.000012345678, 6), "1.23457e-5");
        assert_eq!(number(45_000_000.0, 6), "4.5e7");
        assert_eq!(number(f64::NAN, 6), "NaN");
        assert_eq!(number(f64::NEG_INFINITY, 6), "-inf");
        assert_eq!(number(0.0, 6), "0");
        #[cfg(feature = "report")]
        assert_eq!(stat(180.0, true), "180");
        #[cfg(feature = "report")]
        assert_eq!(stat(180.5, true), "180.5");
    }

    #[test]
    fn markdown_escapes() {
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("plain"), "`plain`");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(link_target("plots/a b.png"), "plots/a%20b.png");
    }
}
