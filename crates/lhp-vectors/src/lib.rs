//! Loads the LHP/1 test vectors in `spec/vectors/` (format: `spec/vectors/README.md`) and
//! checks what an implementation produced against them.
//!
//! This crate does not depend on `lhp-codec`: it describes expectations in plain JSON terms so
//! any implementation (the codec, the engines, a process under test) can be judged by it.
//!
//! ```
//! let vectors = lhp_vectors::load_default().unwrap();
//! assert!(vectors.len() >= 60);
//! let v = vectors.iter().find(|v| v.expect.is_valid()).unwrap();
//! assert!(!v.input.is_empty());
//! ```

#![warn(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};

pub mod conversation;
pub mod datagram;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// One test vector.
#[derive(Clone, Debug)]
pub struct Vector {
    /// Unique id, `group/slug`.
    pub id: String,
    /// The spec section it proves.
    pub spec: String,
    /// What it checks.
    pub description: String,
    /// `lhp1` or `seed-compat`.
    pub profile: String,
    /// `required` or `recommended`.
    pub tier: String,
    /// Receiver limits, if not the defaults: (max_header_len, max_body_len).
    pub limits: Option<(Option<u32>, Option<u64>)>,
    /// Octets to skip before decoding (offsets still count them).
    pub skip_bytes: u64,
    /// The whole input stream, materialized.
    pub input: Vec<u8>,
    /// What a conforming receiver produces.
    pub expect: Expect,
}

/// What a conforming receiver produces from a vector's input.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// These frames, then a clean end.
    Valid {
        /// The frames.
        frames: Vec<ExpectedFrame>,
    },
    /// These frames, then this error.
    Invalid {
        /// The frames decoded before the error.
        frames: Vec<ExpectedFrame>,
        /// The error.
        error: ExpectedError,
    },
    /// Any of these (the spec leaves a choice).
    Acceptable(Vec<Expect>),
}

impl Expect {
    /// True for `valid`.
    pub fn is_valid(&self) -> bool {
        matches!(self, Expect::Valid { .. })
    }

    /// The frames of a `valid` or `invalid` expectation (the first alternative's for
    /// `acceptable`).
    pub fn frames(&self) -> &[ExpectedFrame] {
        match self {
            Expect::Valid { frames } | Expect::Invalid { frames, .. } => frames,
            Expect::Acceptable(alts) => alts.first().map_or(&[], |a| a.frames()),
        }
    }
}

/// An expected frame.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedFrame {
    /// The header, member for member.
    pub header: Map<String, Value>,
    /// The body length.
    pub body_len: u64,
    /// The body, or its digest.
    pub body: ExpectedBody,
}

/// An expected body.
#[derive(Clone, Debug, PartialEq)]
pub enum ExpectedBody {
    /// The exact octets.
    Bytes(Vec<u8>),
    /// The sha256 of the octets (large bodies).
    Sha256([u8; 32]),
}

impl ExpectedBody {
    /// Whether `body` matches.
    pub fn matches(&self, body: &[u8]) -> bool {
        match self {
            ExpectedBody::Bytes(b) => b == body,
            ExpectedBody::Sha256(d) => Sha256::digest(body).as_slice() == d,
        }
    }
}

/// An expected error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedError {
    /// The registered code.
    pub code: String,
    /// The absolute offset.
    pub offset: u64,
    /// For `unexpected_eof`: missing octets.
    pub missing: Option<u64>,
}

/// What an implementation produced from a vector's input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// The frames it delivered, in order: header members and body.
    pub frames: Vec<(Map<String, Value>, Vec<u8>)>,
    /// The error that ended the stream, if any.
    pub error: Option<OutcomeError>,
}

/// An error an implementation reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeError {
    /// Its code.
    pub code: String,
    /// Its offset.
    pub offset: u64,
    /// Missing octets (for `unexpected_eof`), if reported.
    pub missing: Option<u64>,
}

/// The verdict on an outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Exactly what the vector expects (or the first alternative of an `acceptable` one).
    Pass,
    /// One of the other alternatives the spec allows.
    NonStrict,
    /// Not what the vector expects.
    Fail(String),
}

/// Judges an outcome against an expectation.
pub fn check(expect: &Expect, outcome: &Outcome) -> Verdict {
    match expect {
        Expect::Acceptable(alts) => {
            let mut reasons = Vec::new();
            for (i, alt) in alts.iter().enumerate() {
                match check(alt, outcome) {
                    Verdict::Fail(r) => reasons.push(format!("alternative {i}: {r}")),
                    _ if i == 0 => return Verdict::Pass,
                    _ => return Verdict::NonStrict,
                }
            }
            Verdict::Fail(reasons.join("; "))
        }
        Expect::Valid { frames } => match check_frames(frames, &outcome.frames) {
            Err(r) => Verdict::Fail(r),
            Ok(()) => match &outcome.error {
                None => Verdict::Pass,
                Some(e) => Verdict::Fail(format!(
                    "expected a clean end after {} frame(s), got error {} at {}",
                    frames.len(),
                    e.code,
                    e.offset
                )),
            },
        },
        Expect::Invalid { frames, error } => match check_frames(frames, &outcome.frames) {
            Err(r) => Verdict::Fail(r),
            Ok(()) => match &outcome.error {
                None => Verdict::Fail(format!(
                    "expected error {} at {}, got a clean end",
                    error.code, error.offset
                )),
                Some(e) if e.code != error.code || e.offset != error.offset => {
                    Verdict::Fail(format!(
                        "expected error {} at {}, got {} at {}",
                        error.code, error.offset, e.code, e.offset
                    ))
                }
                Some(e) => match (error.missing, e.missing) {
                    (Some(want), Some(got)) if want != got => {
                        Verdict::Fail(format!("expected {} missing octet(s), got {}", want, got))
                    }
                    _ => Verdict::Pass,
                },
            },
        },
    }
}

fn check_frames(
    want: &[ExpectedFrame],
    got: &[(Map<String, Value>, Vec<u8>)],
) -> Result<(), String> {
    for (i, (w, (gh, gb))) in want.iter().zip(got).enumerate() {
        if !headers_equal(&w.header, gh) {
            return Err(format!(
                "frame {i}: header {} differs from expected {} (members compared in order, §4.3)",
                Value::Object(gh.clone()),
                Value::Object(w.header.clone())
            ));
        }
        if gb.len() as u64 != w.body_len || !w.body.matches(gb) {
            return Err(format!(
                "frame {i}: body of {} octets differs from the expected {}-octet body",
                gb.len(),
                w.body_len
            ));
        }
    }
    if want.len() != got.len() {
        return Err(format!(
            "expected {} frame(s), got {}",
            want.len(),
            got.len()
        ));
    }
    Ok(())
}

/// JSON equality with numbers compared by value (so `1.0 == 1`) and objects member for
/// member regardless of order.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_u64(), y.as_u64()) {
            (Some(p), Some(q)) => p == q,
            _ => match (x.as_i64(), y.as_i64()) {
                (Some(p), Some(q)) => p == q,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => objects_equal(x, y),
        _ => a == b,
    }
}

/// Header equality as §4.3 requires it of a receiver: the same members **in the same order**,
/// at every depth, with values compared as [`values_equal`] compares scalars (numbers by
/// value). This is what [`check`] uses.
///
/// ```
/// use serde_json::json;
/// let a = json!({"kind": "x", "n": {"p": 1, "q": 2}});
/// let b = json!({"kind": "x", "n": {"q": 2, "p": 1.0}});
/// let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
/// assert!(lhp_vectors::objects_equal(a, b));
/// assert!(!lhp_vectors::headers_equal(a, b));
/// ```
pub fn headers_equal(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && values_equal_ordered(va, vb))
}

fn values_equal_ordered(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal_ordered(p, q))
        }
        (Value::Object(x), Value::Object(y)) => headers_equal(x, y),
        _ => values_equal(a, b),
    }
}

/// Member-for-member object equality, member order ignored (see [`values_equal`]).
pub fn objects_equal(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| values_equal(v, w)))
}

/// Why vectors could not be loaded.
#[derive(Debug)]
pub struct LoadError(pub String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

/// The vectors this crate carries: `vectors/` in the crate's directory.
///
/// In the repository `crates/lhp-vectors/vectors` is a symbolic link to `spec/vectors`;
/// `cargo package` follows it, so the published crate holds a copy of the same files
/// (`tests/packaged.rs` checks both). A program built from this crate (`lhp-conformance`)
/// finds them in its source directory: the clone for `cargo install --path`, cargo's registry
/// cache for `cargo install lhp-conformance`.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// Loads every vector in [`default_dir`].
pub fn load_default() -> Result<Vec<Vector>, LoadError> {
    load_dir(&default_dir())
}

/// Loads every `*.json` vector file in `dir` (files without a `vectors` array, such as the
/// schema, are skipped), sorted by id.
pub fn load_dir(dir: &Path) -> Result<Vec<Vector>, LoadError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| LoadError(format!("cannot read {}: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| LoadError(format!("cannot read {}: {e}", path.display())))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| LoadError(format!("{}: {e}", path.display())))?;
        let Some(list) = doc.get("vectors").and_then(Value::as_array) else {
            continue;
        };
        check_file_header(&doc, list.len())
            .map_err(|e| LoadError(format!("{}: {e}", path.display())))?;
        for v in list {
            out.push(parse_vector(v).map_err(|e| LoadError(format!("{}: {e}", path.display())))?);
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The Wycheproof-style file header (`spec/vectors/README.md`): `schema` `lhp-vectors/1`,
/// `generator`, `spec_version` `LHP/1`, `group`, and `number_of_tests` equal to the number of
/// vectors. Files written before the header existed (no `schema` member, such as recordings
/// made by older tools) are accepted as they are.
fn check_file_header(doc: &Value, count: usize) -> Result<(), String> {
    let Some(schema) = doc.get("schema") else {
        return Ok(());
    };
    if schema != "lhp-vectors/1" {
        return Err(format!("unknown schema {schema}"));
    }
    for k in ["generator", "spec_version", "group"] {
        if !doc.get(k).is_some_and(Value::is_string) {
            return Err(format!("file header needs string `{k}`"));
        }
    }
    match doc.get("number_of_tests").and_then(Value::as_u64) {
        Some(n) if n == count as u64 => Ok(()),
        other => Err(format!(
            "number_of_tests is {other:?} but the file has {count} vectors"
        )),
    }
}

/// Parses one vector object.
pub fn parse_vector(v: &Value) -> Result<Vector, String> {
    let s = |k: &str| -> Result<String, String> {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("vector missing string `{k}`: {v}"))
    };
    let id = s("id")?;
    let ctx = |e: String| format!("{id}: {e}");
    let limits = v.get("limits").map(|l| {
        (
            l.get("max_header_len")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok()),
            l.get("max_body_len").and_then(Value::as_u64),
        )
    });
    Ok(Vector {
        spec: s("spec")?,
        description: s("description").unwrap_or_default(),
        profile: s("profile").unwrap_or_else(|_| "lhp1".into()),
        tier: s("tier").unwrap_or_else(|_| "required".into()),
        limits,
        skip_bytes: v.get("skip_bytes").and_then(Value::as_u64).unwrap_or(0),
        input: parse_input(v.get("input").ok_or("missing input")?).map_err(ctx)?,
        expect: parse_expect(v.get("expect").ok_or("missing expect")?).map_err(ctx)?,
        id,
    })
}

fn parse_input(v: &Value) -> Result<Vec<u8>, String> {
    if let Some(h) = v.get("hex").and_then(Value::as_str) {
        return hex::decode(h).map_err(|e| format!("bad hex: {e}"));
    }
    let parts = v
        .get("recipe")
        .and_then(Value::as_array)
        .ok_or("input needs `hex` or `recipe`")?;
    let mut out = Vec::new();
    for p in parts {
        if let Some(h) = p.get("hex").and_then(Value::as_str) {
            out.extend(hex::decode(h).map_err(|e| format!("bad hex: {e}"))?);
        } else if let Some(t) = p.get("utf8").and_then(Value::as_str) {
            out.extend_from_slice(t.as_bytes());
        } else if let Some(h) = p.get("repeat_hex").and_then(Value::as_str) {
            let unit = hex::decode(h).map_err(|e| format!("bad hex: {e}"))?;
            let count = p
                .get("count")
                .and_then(Value::as_u64)
                .ok_or("repeat needs count")?;
            let count = usize::try_from(count).map_err(|e| e.to_string())?;
            out.reserve(unit.len() * count);
            for _ in 0..count {
                out.extend_from_slice(&unit);
            }
        } else {
            return Err(format!("unknown recipe part {p}"));
        }
    }
    Ok(out)
}

fn parse_expect(v: &Value) -> Result<Expect, String> {
    let result = v
        .get("result")
        .and_then(Value::as_str)
        .ok_or("expect needs result")?;
    let frames = || -> Result<Vec<ExpectedFrame>, String> {
        v.get("frames")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(parse_frame).collect())
            .unwrap_or(Ok(Vec::new()))
    };
    match result {
        "valid" => Ok(Expect::Valid { frames: frames()? }),
        "invalid" => {
            let e = v.get("error").ok_or("invalid needs error")?;
            Ok(Expect::Invalid {
                frames: frames()?,
                error: ExpectedError {
                    code: e
                        .get("code")
                        .and_then(Value::as_str)
                        .ok_or("error needs code")?
                        .to_owned(),
                    offset: e
                        .get("offset")
                        .and_then(Value::as_u64)
                        .ok_or("error needs offset")?,
                    missing: e.get("missing").and_then(Value::as_u64),
                },
            })
        }
        "acceptable" => Ok(Expect::Acceptable(
            v.get("alternatives")
                .and_then(Value::as_array)
                .ok_or("acceptable needs alternatives")?
                .iter()
                .map(parse_expect)
                .collect::<Result<_, _>>()?,
        )),
        other => Err(format!("unknown result {other:?}")),
    }
}

fn parse_frame(v: &Value) -> Result<ExpectedFrame, String> {
    let header = v
        .get("header")
        .and_then(Value::as_object)
        .ok_or("frame needs header object")?
        .clone();
    let body = if let Some(h) = v.get("body_hex").and_then(Value::as_str) {
        ExpectedBody::Bytes(hex::decode(h).map_err(|e| format!("bad body_hex: {e}"))?)
    } else if let Some(h) = v.get("body_sha256").and_then(Value::as_str) {
        let d = hex::decode(h).map_err(|e| format!("bad body_sha256: {e}"))?;
        ExpectedBody::Sha256(d.try_into().map_err(|_| "body_sha256 is not 32 octets")?)
    } else {
        ExpectedBody::Bytes(Vec::new())
    };
    let body_len = match (v.get("body_len").and_then(Value::as_u64), &body) {
        (Some(n), _) => n,
        (None, ExpectedBody::Bytes(b)) => b.len() as u64,
        (None, ExpectedBody::Sha256(_)) => return Err("body_sha256 needs body_len".into()),
    };
    Ok(ExpectedFrame {
        header,
        body_len,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(frames: usize, error: Option<(&str, u64)>) -> Outcome {
        Outcome {
            frames: (0..frames)
                .map(|_| {
                    (
                        json!({"a": 1}).as_object().cloned().unwrap_or_default(),
                        b"x".to_vec(),
                    )
                })
                .collect(),
            error: error.map(|(c, o)| OutcomeError {
                code: c.into(),
                offset: o,
                missing: None,
            }),
        }
    }

    #[test]
    fn header_order_is_checked_at_every_depth() {
        let want = Expect::Valid {
            frames: vec![ExpectedFrame {
                header: json!({"a": 1, "b": {"x": 1, "y": 2}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                body_len: 0,
                body: ExpectedBody::Bytes(Vec::new()),
            }],
        };
        let got = |h: Value| Outcome {
            frames: vec![(h.as_object().cloned().unwrap_or_default(), Vec::new())],
            error: None,
        };
        assert_eq!(
            check(&want, &got(json!({"a": 1.0, "b": {"x": 1, "y": 2}}))),
            Verdict::Pass
        );
        assert!(matches!(
            check(&want, &got(json!({"b": {"x": 1, "y": 2}, "a": 1}))),
            Verdict::Fail(_)
        ));
        assert!(matches!(
            check(&want, &got(json!({"a": 1, "b": {"y": 2, "x": 1}}))),
            Verdict::Fail(_)
        ));
    }

    #[test]
    fn file_header_is_checked() {
        assert!(check_file_header(&json!({"group": "g", "vectors": []}), 0).is_ok());
        let good = json!({"schema": "lhp-vectors/1", "generator": "g", "spec_version": "LHP/1",
                          "group": "g", "number_of_tests": 2});
        assert!(check_file_header(&good, 2).is_ok());
        assert!(check_file_header(&good, 3).is_err());
        let mut bad = good.clone();
        bad["schema"] = json!("lhp-vectors/9");
        assert!(check_file_header(&bad, 2).is_err());
    }

    #[test]
    fn every_file_has_its_header_and_flags() {
        for entry in std::fs::read_dir(default_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "json") || path.ends_with("schema.json") {
                continue;
            }
            let doc: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(doc["schema"], "lhp-vectors/1", "{}", path.display());
            for v in doc["vectors"].as_array().unwrap() {
                let flags = v["flags"].as_array().map_or(0, Vec::len);
                assert!(flags > 0, "{} has no flags", v["id"]);
            }
        }
    }

    #[test]
    fn verdicts() {
        let f = ExpectedFrame {
            header: json!({"a": 1.0}).as_object().cloned().unwrap_or_default(),
            body_len: 1,
            body: ExpectedBody::Bytes(b"x".to_vec()),
        };
        let valid = Expect::Valid {
            frames: vec![f.clone()],
        };
        assert_eq!(check(&valid, &outcome(1, None)), Verdict::Pass);
        assert!(matches!(check(&valid, &outcome(2, None)), Verdict::Fail(_)));
        assert!(matches!(
            check(&valid, &outcome(1, Some(("x", 0)))),
            Verdict::Fail(_)
        ));
        let invalid = Expect::Invalid {
            frames: vec![f],
            error: ExpectedError {
                code: "c".into(),
                offset: 9,
                missing: None,
            },
        };
        assert_eq!(check(&invalid, &outcome(1, Some(("c", 9)))), Verdict::Pass);
        assert!(matches!(
            check(&invalid, &outcome(1, Some(("c", 8)))),
            Verdict::Fail(_)
        ));
        let acc = Expect::Acceptable(vec![valid, invalid]);
        assert_eq!(check(&acc, &outcome(1, Some(("c", 9)))), Verdict::NonStrict);
    }
}
