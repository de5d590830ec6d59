//! Conversation vectors: scripted exchanges with a peer (`spec/vectors/conversations/*.json`).
//!
//! Decode vectors say what a receiver makes of a stream. Conversations say how a peer
//! *behaves*: what it sends back, in which order, and how the connection ends. They cover the
//! connection rules (§7.2 error frames and close, §8 echo, §11.2 deadlines, `busy`, half-close,
//! pipelining) and the application messages of `spec/lhp-app.md` (request → reply).
//!
//! One file holds one group:
//!
//! ```text
//! { "schema": "lhp-conversations/1", "generator": "...", "spec_version": "LHP/1",
//!   "group": "behaviour", "number_of_tests": 2,
//!   "conversations": [ { "id": "behaviour/echo", "spec": "8", "flags": ["echo"],
//!       "description": "...", "role": "server", "profile": "lhp1",
//!       "config": { "read_timeout_ms": 400 },          // optional overrides of the defaults
//!       "app": { "files": { "a.txt": "616263" }, "dirs": ["sub"], "allow_exec": ["echo"] },
//!       "steps": [ { "send": 0, "hex": "..." },
//!                  { "expect": 0, "frames": [ { "header": {...}, "body_hex": "" } ] },
//!                  { "half_close": 0 },
//!                  { "expect_end": 0, "within_ms": 1000 } ],
//!       "after": { "files": { "a.txt": "616263" }, "absent": ["b.txt"] } } ] }
//! ```
//!
//! Steps run in order. Connection `c` is opened by the first step that names it. A `wait_ms`
//! step advances time: a sans-IO runner moves its virtual clock, a socket runner sleeps.
//! Expected header values may be `{"$any":"string"}` (also `"integer"`, `"number"`, `"bool"`,
//! `"array"`, `"object"`, `"value"`): the member must be present with a value of that type,
//! which is how non-normative text such as `message` is matched. Members are compared in order
//! and the member set is exact.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

/// A file of conversations: one group.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationFile {
    /// `lhp-conversations/1`.
    pub schema: String,
    /// What produced the file.
    pub generator: String,
    /// The spec version the file tests.
    pub spec_version: String,
    /// The group name (the part of each id before `/`).
    pub group: String,
    /// `conversations.len()`, checked on load.
    pub number_of_tests: usize,
    /// The conversations.
    pub conversations: Vec<Conversation>,
}

/// One scripted exchange.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    /// Unique id, `group/slug`.
    pub id: String,
    /// The spec section it proves (`7.2`, `10.3`, ...).
    pub spec: String,
    /// Bug classes it catches (glossary in `spec/vectors/README.md`).
    #[serde(default)]
    pub flags: Vec<String>,
    /// What it checks.
    pub description: String,
    /// The role the implementation under test plays: `server` or `client`.
    #[serde(default = "default_role")]
    pub role: String,
    /// `lhp1` or `seed-compat`.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// `required` or `recommended`.
    #[serde(default = "default_tier")]
    pub tier: String,
    /// Settings the implementation must be started with (defaults: spec §11.2).
    #[serde(default)]
    pub config: PeerConfig,
    /// Application server state before the conversation (`spec/lhp-app.md`).
    #[serde(default)]
    pub app: Option<AppSetup>,
    /// The script.
    pub steps: Vec<Step>,
    /// Application server state afterwards.
    #[serde(default)]
    pub after: Option<AppState>,
}

fn default_role() -> String {
    "server".into()
}
fn default_profile() -> String {
    "lhp1".into()
}
fn default_tier() -> String {
    "required".into()
}

/// Settings a conversation needs; `None` means the spec's default.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// `idle_timeout`, milliseconds.
    pub idle_timeout_ms: Option<u64>,
    /// `read_timeout`, milliseconds.
    pub read_timeout_ms: Option<u64>,
    /// `min_body_rate`, octets per second.
    pub min_body_rate: Option<u64>,
    /// `write_timeout`, milliseconds.
    pub write_timeout_ms: Option<u64>,
    /// `max_connections`.
    pub max_connections: Option<u64>,
    /// `max_header_len`.
    pub max_header_len: Option<u32>,
    /// `max_body_len`.
    pub max_body_len: Option<u64>,
}

/// Files, directories and exec allow-list an application server starts with.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSetup {
    /// name → contents as hex.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Directories to create (relative to the served root).
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Programs `exec` may run (`argv[0]`); empty means exec is off.
    #[serde(default)]
    pub allow_exec: Vec<String>,
}

/// What the served root must hold afterwards.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppState {
    /// name → contents as hex (these must exist, with exactly these contents).
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Names that must not exist.
    #[serde(default)]
    pub absent: Vec<String>,
}

/// One step of a conversation. Exactly one of the verbs is set.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Step {
    /// Send these octets on connection `send`.
    Send {
        /// The connection.
        send: usize,
        /// The octets, as hex.
        hex: String,
        /// What they are, for reports.
        #[serde(default)]
        note: Option<String>,
    },
    /// Read until these frames have arrived on connection `expect`, then compare.
    Expect {
        /// The connection.
        expect: usize,
        /// The frames, in order.
        frames: Vec<FramePattern>,
        /// How long to wait for them (default 5000 ms; virtual time in a sans-IO runner).
        #[serde(default)]
        within_ms: Option<u64>,
    },
    /// Shut down the sending direction of connection `half_close`.
    HalfClose {
        /// The connection.
        half_close: usize,
    },
    /// The peer must end connection `expect_end` with no further octets (EOF or reset).
    ExpectEnd {
        /// The connection.
        expect_end: usize,
        /// Deadline for the end (default 5000 ms).
        #[serde(default)]
        within_ms: Option<u64>,
    },
    /// The peer must send nothing on connection `expect_silence` for `for_ms`, and not close.
    ExpectSilence {
        /// The connection.
        expect_silence: usize,
        /// How long.
        for_ms: u64,
    },
    /// Let time pass.
    Wait {
        /// Milliseconds.
        wait_ms: u64,
    },
    /// Stop reading connection `stop_reading` (the peer's writes will block).
    StopReading {
        /// The connection.
        stop_reading: usize,
    },
}

/// An expected frame: exact octets, or a header pattern and a body.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum FramePattern {
    /// The frame's octets exactly (prefix, header text, body).
    Exact {
        /// As hex.
        hex: String,
    },
    /// Members in order (values may be `{"$any": TYPE}`), and the body.
    Members {
        /// The header pattern.
        header: Map<String, Value>,
        /// The body as hex (default empty), or omitted when `body_sha256` is given.
        #[serde(default)]
        body_hex: Option<String>,
        /// The body's sha256 as hex, for large bodies.
        #[serde(default)]
        body_sha256: Option<String>,
    },
}

/// A frame as a runner received it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedFrame {
    /// All its octets.
    pub raw: Vec<u8>,
    /// Its header, parsed.
    pub header: Map<String, Value>,
    /// Its body.
    pub body: Vec<u8>,
}

impl FramePattern {
    /// Whether `got` matches; the error says how it differs.
    pub fn check(&self, got: &ReceivedFrame) -> Result<(), String> {
        match self {
            FramePattern::Exact { hex } => {
                let want = hex::decode(hex).map_err(|e| format!("bad hex in vector: {e}"))?;
                if want == got.raw {
                    Ok(())
                } else {
                    Err(format!(
                        "expected the octets {hex}, got {}",
                        hex::encode(&got.raw)
                    ))
                }
            }
            FramePattern::Members {
                header,
                body_hex,
                body_sha256,
            } => {
                check_members(header, &got.header)?;
                if let Some(d) = body_sha256 {
                    use sha2::{Digest, Sha256};
                    let have = hex::encode(Sha256::digest(&got.body));
                    if &have != d {
                        return Err(format!("body sha256 {have}, expected {d}"));
                    }
                } else {
                    let want = hex::decode(body_hex.as_deref().unwrap_or(""))
                        .map_err(|e| format!("bad hex in vector: {e}"))?;
                    if want != got.body {
                        return Err(format!(
                            "body {} ({} octets), expected {} ({} octets)",
                            preview(&got.body),
                            got.body.len(),
                            preview(&want),
                            want.len()
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

fn preview(b: &[u8]) -> String {
    let n = b.len().min(32);
    let mut s = hex::encode(&b[..n]);
    if b.len() > n {
        s.push('…');
    }
    s
}

/// Compares a header with a pattern: same members, same order, values equal or of the type a
/// `{"$any": TYPE}` pattern names.
pub fn check_members(pattern: &Map<String, Value>, got: &Map<String, Value>) -> Result<(), String> {
    let want: Vec<&String> = pattern.keys().collect();
    let have: Vec<&String> = got.keys().collect();
    if want != have {
        return Err(format!(
            "header members {:?}, expected {:?} (in this order): {}",
            have,
            want,
            Value::Object(got.clone())
        ));
    }
    for (name, p) in pattern {
        let v = &got[name];
        if !value_matches(p, v) {
            return Err(format!("member {name:?} is {v}, expected {p}"));
        }
    }
    Ok(())
}

fn value_matches(pattern: &Value, v: &Value) -> bool {
    if let Some(Value::String(ty)) =
        pattern
            .as_object()
            .and_then(|o| if o.len() == 1 { o.get("$any") } else { None })
    {
        return match ty.as_str() {
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            "bool" => v.is_boolean(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            "value" => true,
            _ => false,
        };
    }
    crate::values_equal(pattern, v)
}

/// Splits octets a peer sent into LHP/1 frames (`lhp1` prefix when `seed_compat` is false,
/// the signed little-endian one otherwise; body length from `body_len`, or in `seed-compat`
/// `file_size`/`total_size`). Returns the complete frames and the number of octets they
/// took; a trailing incomplete frame is left. An octet sequence that is not a frame at all is
/// an error describing it. This is a test tool's reader: bounded, never panics, trusts nothing.
pub fn split_frames(data: &[u8], seed_compat: bool) -> Result<(Vec<ReceivedFrame>, usize), String> {
    let mut frames = Vec::new();
    let mut at = 0usize;
    loop {
        let rest = &data[at..];
        let Some(prefix) = rest.get(..4) else {
            return Ok((frames, at));
        };
        let p = [prefix[0], prefix[1], prefix[2], prefix[3]];
        let h = if seed_compat {
            let n = i32::from_le_bytes(p);
            if n < 2 {
                return Err(format!(
                    "at octet {at}: prefix {} is not a header length",
                    n
                ));
            }
            n as u64
        } else {
            u32::from_be_bytes(p) as u64
        };
        if !(2..=16 << 20).contains(&h) {
            return Err(format!(
                "at octet {at}: prefix {} declares a {h}-octet header: not an LHP/1 frame",
                hex::encode(p)
            ));
        }
        let h = h as usize;
        let Some(text) = rest.get(4..4 + h) else {
            return Ok((frames, at));
        };
        let header: Map<String, Value> = match serde_json::from_slice(text) {
            Ok(Value::Object(m)) => m,
            Ok(other) => return Err(format!("at octet {at}: header is {other}, not an object")),
            Err(e) => return Err(format!("at octet {at}: header is not JSON: {e}")),
        };
        let mut b = None;
        for name in ["body_len", "file_size", "total_size"] {
            if name != "body_len" && !seed_compat {
                continue;
            }
            if let Some(v) = header.get(name) {
                b = Some(v.as_u64().ok_or_else(|| {
                    format!("at octet {at}: {name} is {v}, not a non-negative integer")
                })?);
                break;
            }
        }
        let b = b.unwrap_or(0);
        let total = (4 + h as u64).saturating_add(b);
        if total > rest.len() as u64 {
            return Ok((frames, at));
        }
        let total = total as usize;
        frames.push(ReceivedFrame {
            raw: rest[..total].to_vec(),
            header,
            body: rest[4 + h..total].to_vec(),
        });
        at += total;
    }
}

/// Why a conversation file could not be loaded.
#[derive(Debug)]
pub struct ConversationError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConversationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for ConversationError {}

/// The directory of conversation files: `conversations` in [`crate::default_dir`]
/// (`spec/vectors/conversations` in the repository).
pub fn default_conversation_dir() -> PathBuf {
    crate::default_dir().join("conversations")
}

/// Loads every `*.json` file in `dir` (sorted by name) and checks ids and counts.
pub fn load_conversations(dir: &Path) -> Result<Vec<Conversation>, ConversationError> {
    let err = |path: &Path, reason: String| ConversationError {
        path: path.to_path_buf(),
        reason,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| err(dir, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut all = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
        let file: ConversationFile =
            serde_json::from_str(&text).map_err(|e| err(&path, e.to_string()))?;
        if file.schema != "lhp-conversations/1" {
            return Err(err(&path, format!("unknown schema {:?}", file.schema)));
        }
        if file.number_of_tests != file.conversations.len() {
            return Err(err(
                &path,
                format!(
                    "number_of_tests is {} but the file has {} conversations",
                    file.number_of_tests,
                    file.conversations.len()
                ),
            ));
        }
        for c in file.conversations {
            if !c.id.starts_with(&format!("{}/", file.group)) {
                return Err(err(
                    &path,
                    format!("id {:?} is not in group {}", c.id, file.group),
                ));
            }
            if !seen.insert(c.id.clone()) {
                return Err(err(&path, format!("duplicate id {:?}", c.id)));
            }
            all.push(c);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(text: &str, body: &[u8]) -> Vec<u8> {
        let mut v = (text.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(text.as_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn splits_frames_and_leaves_a_partial_one() {
        let mut data = frame(r#"{"kind":"echo","body_len":2}"#, b"hi");
        data.extend(frame(
            r#"{"kind":"error","code":"timeout","message":"x","offset":3}"#,
            b"",
        ));
        data.extend_from_slice(&[0, 0, 0]);
        let (frames, used) = split_frames(&data, false).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(used, data.len() - 3);
        assert_eq!(frames[0].body, b"hi");
        let pat: FramePattern = serde_json::from_str(
            r#"{"header":{"kind":"error","code":"timeout","message":{"$any":"string"},"offset":3}}"#,
        )
        .unwrap();
        pat.check(&frames[1]).unwrap();
        let wrong: FramePattern = serde_json::from_str(
            r#"{"header":{"kind":"error","code":"timeout","offset":3,"message":{"$any":"string"}}}"#,
        )
        .unwrap();
        assert!(wrong
            .check(&frames[1])
            .unwrap_err()
            .contains("in this order"));
        let exact = FramePattern::Exact {
            hex: hex::encode(&frames[0].raw),
        };
        exact.check(&frames[0]).unwrap();
        assert!(exact.check(&frames[1]).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(split_frames(b"GET / HTTP/1.1\r\n", false).is_err());
        assert!(split_frames(&frame("[1]", b""), false).is_err());
        assert!(split_frames(&frame(r#"{"body_len":-1}"#, b""), false).is_err());
        let (f, used) =
            split_frames(&frame(r#"{"body_len":9007199254740991}"#, b"ab"), false).unwrap();
        assert_eq!((f.len(), used), (0, 0));
    }

    #[test]
    fn steps_parse_by_verb() {
        let steps: Vec<Step> = serde_json::from_str(
            r#"[{"send":0,"hex":"00"},{"half_close":0},{"wait_ms":5},{"expect_end":1},
                {"expect":0,"frames":[{"hex":"00"}]},{"expect_silence":0,"for_ms":9},{"stop_reading":2}]"#,
        )
        .unwrap();
        assert!(matches!(steps[0], Step::Send { send: 0, .. }));
        assert!(matches!(steps[1], Step::HalfClose { half_close: 0 }));
        assert!(matches!(steps[2], Step::Wait { wait_ms: 5 }));
        assert!(matches!(steps[3], Step::ExpectEnd { expect_end: 1, .. }));
        assert!(matches!(steps[4], Step::Expect { expect: 0, .. }));
        assert!(matches!(steps[5], Step::ExpectSilence { for_ms: 9, .. }));
        assert!(matches!(steps[6], Step::StopReading { stop_reading: 2 }));
    }
}
