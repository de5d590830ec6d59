//! The parser caps of §4.2 and the version-invariant `v` check of §4.5 rank 5.
//!
//! Runs once over a header text that the JSON parser has already accepted, so it only has to
//! tell tokens apart, never to judge syntax. One linear pass, no allocation:
//!
//! - nesting depth (objects and arrays; scalars add nothing) at most [`MAX_DEPTH`];
//! - members of any one object at most [`MAX_MEMBERS`];
//! - every number token at most [`MAX_NUMBER_LEN`] octets;
//! - the text of the top-level `v` member's number token, if `v` is a number, because whether
//!   it is an *integer literal* (§2) is a property of its spelling, which the parsed value has
//!   lost (`2` and `2.0`, or a 40-digit integer and `1e39`, parse alike).
//!
//! Spec §4.2: "A receiver MUST reject, with `header_not_json`, a header whose nesting depth
//! exceeds 64, an object with more than 1024 members, or a number token longer than 64
//! octets."

use serde_json::Value;

use crate::members::MemberRef;

/// §4.2: the deepest nesting a header may have (the top-level object is depth 1).
pub const MAX_DEPTH: usize = 64;
/// §4.2: the most members one object may have.
pub const MAX_MEMBERS: usize = 1024;
/// §4.2: the longest number token, in octets (sign, digits, fraction and exponent).
pub const MAX_NUMBER_LEN: usize = 64;

/// Which cap a header broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cap {
    /// Nesting deeper than [`MAX_DEPTH`].
    Depth,
    /// An object with more than [`MAX_MEMBERS`] members.
    Members,
    /// A number token longer than [`MAX_NUMBER_LEN`] octets.
    NumberLen,
}

impl Cap {
    /// The reason, for `header_not_json`'s detail.
    pub(crate) fn detail(self) -> String {
        match self {
            Cap::Depth => format!("nesting deeper than {MAX_DEPTH} (§4.2)"),
            Cap::Members => format!("an object with more than {MAX_MEMBERS} members (§4.2)"),
            Cap::NumberLen => format!("a number longer than {MAX_NUMBER_LEN} octets (§4.2)"),
        }
    }
}

/// Checks the caps of a syntactically valid JSON text; returns the top-level `v` member's
/// number token, if there is one.
pub(crate) fn scan(text: &str) -> Result<Option<&str>, Cap> {
    let b = text.as_bytes();
    // Member counts of the enclosing containers (arrays count nothing); index = depth − 1.
    let mut counts = [0usize; MAX_DEPTH];
    let mut depth = 0usize;
    // In the top-level object: the last member name was `v`, and its value comes next.
    let mut name_is_v = false;
    let mut version = None;
    let mut i = 0usize;
    while let Some(&c) = b.get(i) {
        match c {
            b'{' | b'[' => {
                if depth == MAX_DEPTH {
                    return Err(Cap::Depth);
                }
                if let Some(n) = counts.get_mut(depth) {
                    *n = 0;
                }
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                while let Some(&s) = b.get(i) {
                    i += 1;
                    match s {
                        b'\\' => i += 1,
                        b'"' => break,
                        _ => {}
                    }
                }
                // A string directly followed (after whitespace) by `:` is a member name.
                let mut j = i;
                while matches!(b.get(j), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                    j += 1;
                }
                if b.get(j) == Some(&b':') {
                    let top = depth == 1;
                    if let Some(n) = depth.checked_sub(1).and_then(|d| counts.get_mut(d)) {
                        *n += 1;
                        if *n > MAX_MEMBERS {
                            return Err(Cap::Members);
                        }
                    }
                    name_is_v = top && is_v(text.get(start..i).unwrap_or(""));
                    i = j + 1;
                    continue;
                }
                name_is_v = false;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while matches!(
                    b.get(i),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    i += 1;
                }
                if i - start > MAX_NUMBER_LEN {
                    return Err(Cap::NumberLen);
                }
                if name_is_v && depth == 1 {
                    version = text.get(start..i);
                }
                name_is_v = false;
            }
            b',' => {
                name_is_v = false;
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(version)
}

/// Checks the caps for the members of a header given by the application, in order (§9: an
/// encoder MUST refuse a header a receiver would reject). The same caps, found in the same
/// order, as [`scan`] over the text the encoder would write: a member past the 1024th, a
/// container opened at depth 64, a number token longer than 64 octets.
pub(crate) fn check_members<'a>(values: impl Iterator<Item = MemberRef<'a>>) -> Result<(), Cap> {
    for (i, v) in values.enumerate() {
        if i >= MAX_MEMBERS {
            return Err(Cap::Members);
        }
        if let MemberRef::Value(v) = v {
            check_value(v, 1)?;
        }
    }
    Ok(())
}

/// [`check_members`] for one value inside a container at `depth`.
fn check_value(v: &Value, depth: usize) -> Result<(), Cap> {
    match v {
        Value::Array(items) => {
            if depth == MAX_DEPTH {
                return Err(Cap::Depth);
            }
            items
                .iter()
                .try_for_each(|item| check_value(item, depth + 1))
        }
        Value::Object(members) => {
            if depth == MAX_DEPTH {
                return Err(Cap::Depth);
            }
            for (i, item) in members.values().enumerate() {
                if i >= MAX_MEMBERS {
                    return Err(Cap::Members);
                }
                check_value(item, depth + 1)?;
            }
            Ok(())
        }
        // Integers have at most 20 octets; only a fraction or exponent can be longer.
        Value::Number(n) if n.is_f64() && n.to_string().len() > MAX_NUMBER_LEN => {
            Err(Cap::NumberLen)
        }
        _ => Ok(()),
    }
}

/// Whether a member-name token (with its quotes) names `v`, escapes decoded (`"\u0076"`).
fn is_v(token: &str) -> bool {
    if token == "\"v\"" {
        return true;
    }
    token.contains('\\') && serde_json::from_str::<String>(token).is_ok_and(|s| s == "v")
}

/// Whether a number token is an integer literal (§2): no fraction, no exponent.
pub(crate) fn is_integer_literal(token: &str) -> bool {
    !token.contains(['.', 'e', 'E'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nest(depth: usize) -> String {
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    }

    #[test]
    fn depth_counts_containers_only() {
        assert_eq!(scan(&nest(64)), Ok(None));
        assert_eq!(scan(&nest(65)), Err(Cap::Depth));
        let arrays = format!("{{\"a\":{}1{}}}", "[".repeat(63), "]".repeat(63));
        assert_eq!(scan(&arrays), Ok(None));
        let arrays = format!("{{\"a\":{}1{}}}", "[".repeat(64), "]".repeat(64));
        assert_eq!(scan(&arrays), Err(Cap::Depth));
    }

    #[test]
    fn members_per_object() {
        let obj = |n: usize| {
            let m: Vec<String> = (0..n).map(|i| format!("\"m{i}\":[{{}},\"x:\"]")).collect();
            format!("{{\"o\":{{{}}}}}", m.join(","))
        };
        assert_eq!(scan(&obj(1024)), Ok(None));
        assert_eq!(scan(&obj(1025)), Err(Cap::Members));
    }

    #[test]
    fn number_length_and_version_token() {
        let n64 = format!("{{\"n\":0.{}}}", "1".repeat(62));
        assert_eq!(scan(&n64), Ok(None));
        let n65 = format!("{{\"n\":0.{}}}", "1".repeat(63));
        assert_eq!(scan(&n65), Err(Cap::NumberLen));
        assert_eq!(scan(r#"{"x":{"v":3},"v":-1}"#), Ok(Some("-1")));
        assert_eq!(scan(r#"{"\u0076" : 2.0}"#), Ok(Some("2.0")));
        assert_eq!(scan(r#"{"v":"2","w":[2]}"#), Ok(None));
        assert_eq!(scan(r#"{"a":"v","b":7}"#), Ok(None));
        assert!(is_integer_literal("-0") && !is_integer_literal("1e0"));
    }
    /// What a string holds is text, whatever it looks like: brackets, colons, quoted names
    /// and numbers after an escaped quote or backslash are neither nesting, members nor `v`.
    #[test]
    fn string_contents_past_an_escape_are_not_tokens() {
        let brackets = format!(r#"{{"s":"\"{}"}}"#, "[".repeat(70));
        assert_eq!(scan(&brackets), Ok(None));
        let brackets = format!(r#"{{"s":"\\\"{}"}}"#, "{".repeat(70));
        assert_eq!(scan(&brackets), Ok(None));
        assert_eq!(scan(r#"{"s":"\",\"v\":2,\"","v":1}"#), Ok(Some("1")));
        let long = format!(r#"{{"s":"\"{}"}}"#, "1".repeat(80));
        assert_eq!(scan(&long), Ok(None));
        // The same headers through the whole receiver: accepted.
        for text in [brackets, long] {
            let frame = [&(text.len() as u32).to_be_bytes()[..], text.as_bytes()].concat();
            let got = crate::Decoder::new().decode(&mut bytes::BytesMut::from(&frame[..]));
            assert!(matches!(got, Ok(Some(_))), "{text}: {got:?}");
        }
    }
}
