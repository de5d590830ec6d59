//! Reading what a testee reports without trusting it, and naming a wrong decoded value.
//!
//! A testee reports decoded headers as JSON (the `result` reply of the stdio protocol, the
//! JSON lines of a client). A wrong decoder may report a value no valid LHP/1 header can hold:
//! a number beyond 2^53−1 (spec/lhp-1.md §4.2), or `NaN`/`Infinity` (not JSON at all, but what
//! Python's `json.dumps` writes for a float it decoded from `1e400`). Such a report is a
//! verdict about the testee's decoder — `fail`, naming the value — not a broken control
//! channel (`crash`). [`lenient_object`] reads the report, keeping such values as marked
//! strings; [`invalid_value`] names the first one.

use lhp_vectors::Outcome;
use serde_json::{Map, Value};

/// The largest integer an LHP/1 number may have (spec/lhp-1.md §4.2).
pub const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// Strings standing for a reported token that is not a JSON value start with this.
pub const NOT_JSON: &str = "\u{0}not-json:";

/// Parses a JSON object, turning `NaN`, `Infinity`, `-Infinity` and number literals that
/// overflow a double into strings `NOT_JSON + token`, so that the rest of the report can still
/// be judged.
pub fn lenient_object(text: &[u8]) -> Result<Map<String, Value>, String> {
    let parsed = match serde_json::from_slice::<Value>(text) {
        Ok(v) => v,
        Err(first) => {
            let fixed = mark_tokens(text).ok_or_else(|| format!("not JSON: {first}"))?;
            serde_json::from_slice::<Value>(&fixed).map_err(|_| format!("not JSON: {first}"))?
        }
    };
    match parsed {
        Value::Object(m) => Ok(m),
        other => Err(format!("not a JSON object: {other}")),
    }
}

/// Rewrites the non-JSON tokens; `None` when there were none (the text is broken otherwise).
fn mark_tokens(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut i = 0;
    let mut changed = false;
    while let Some(&b) = text.get(i) {
        if b == b'"' {
            // Copy the string through, escapes included.
            out.push(b);
            i += 1;
            while let Some(&c) = text.get(i) {
                out.push(c);
                i += 1;
                if c == b'\\' {
                    if let Some(&d) = text.get(i) {
                        out.push(d);
                        i += 1;
                    }
                } else if c == b'"' {
                    break;
                }
            }
            continue;
        }
        let is_token_start = b == b'-' || b.is_ascii_alphanumeric();
        if !is_token_start {
            out.push(b);
            i += 1;
            continue;
        }
        let start = i;
        while text
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
        {
            i += 1;
        }
        let token = std::str::from_utf8(text.get(start..i)?).ok()?;
        let bad = matches!(token, "NaN" | "Infinity" | "-Infinity" | "-NaN")
            || (token.starts_with(|c: char| c == '-' || c.is_ascii_digit())
                && token.parse::<f64>().is_ok_and(|f| !f.is_finite()));
        if bad {
            changed = true;
            out.extend_from_slice(
                serde_json::to_string(&format!("{NOT_JSON}{token}"))
                    .ok()?
                    .as_bytes(),
            );
        } else {
            out.extend_from_slice(token.as_bytes());
        }
    }
    changed.then_some(out)
}

/// The first value in a reported outcome that no valid LHP/1 header can hold, described with
/// its path: `frame 0 member "n" is 9007199254740992, beyond 2^53−1 (§4.2)`.
pub fn invalid_value(o: &Outcome) -> Option<String> {
    for (i, (header, _)) in o.frames.iter().enumerate() {
        for (name, v) in header {
            if let Some(why) = bad_value(v) {
                return Some(format!(
                    "the testee reported frame {i} with member {name:?} {why}: a decoder \
                     must reject such a header (spec/lhp-1.md §4.2), never deliver it"
                ));
            }
        }
    }
    None
}

fn bad_value(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => {
            let big = match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => u > MAX_SAFE as u64,
                (_, Some(s), _) => s < -(MAX_SAFE as i64),
                (_, _, Some(f)) => f.abs() > MAX_SAFE,
                _ => true,
            };
            big.then(|| format!("= {n}, beyond 2^53−1"))
        }
        Value::String(s) => s
            .strip_prefix(NOT_JSON)
            .map(|t| format!("= {t}, which is not a JSON number")),
        Value::Array(a) => a.iter().find_map(bad_value),
        Value::Object(m) => m.values().find_map(bad_value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_overflow_become_marked_strings() {
        let m =
            lenient_object(br#"{"a":NaN,"b":"NaN \" x","c":-Infinity,"d":1e400,"e":2}"#).unwrap();
        assert_eq!(m["a"], Value::String(format!("{NOT_JSON}NaN")));
        assert_eq!(m["b"], Value::String("NaN \" x".into()));
        assert_eq!(m["c"], Value::String(format!("{NOT_JSON}-Infinity")));
        assert_eq!(m["d"], Value::String(format!("{NOT_JSON}1e400")));
        assert_eq!(m["e"], Value::from(2));
        assert!(lenient_object(b"{\"a\":}").is_err());
        assert!(lenient_object(b"[1]").is_err());
    }

    #[test]
    fn wrong_values_are_named() {
        let mut o = Outcome::default();
        let h = lenient_object(br#"{"kind":"x","n":9007199254740992}"#).unwrap();
        o.frames.push((h, Vec::new()));
        let why = invalid_value(&o).unwrap();
        assert!(why.contains("9007199254740992"), "{why}");
        assert!(why.contains("\"n\""), "{why}");
        let mut o = Outcome::default();
        o.frames
            .push((lenient_object(br#"{"x":[1,{"y":NaN}]}"#).unwrap(), vec![]));
        assert!(invalid_value(&o).unwrap().contains("NaN"));
        let mut ok = Outcome::default();
        ok.frames.push((
            lenient_object(br#"{"n":9007199254740991,"m":-9007199254740991,"f":0.5}"#).unwrap(),
            vec![],
        ));
        assert_eq!(invalid_value(&ok), None);
    }
}
