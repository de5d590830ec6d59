//! The application messages of `spec/lhp-app.md` (§10): requests `put`, `get`, `stat`,
//! `list`, `exec`; replies `ok`, `file`, `listing`, `output`, `exit`, `error`.
//!
//! Every message is an ordinary LHP/1 frame; `kind` names it, `id` (when the client sets one)
//! is copied into every reply to it. This module builds and reads their headers; the
//! server side is [`crate::files`] and [`crate::exec`], the client side [`crate::client`].
//!
//! ```
//! use lhp::app::{self, ErrorCode};
//!
//! let h = app::put("photos/a.jpg", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", None);
//! assert_eq!(h.kind(), Some("put"));
//! assert_eq!(h.body_len(), 3);
//! assert_eq!(ErrorCode::BadName.as_str(), "bad_name");
//! assert_eq!("exec_denied".parse::<ErrorCode>(), Ok(ErrorCode::ExecDenied));
//! ```

use std::fmt;
use std::str::FromStr;

use lhp_codec::{Header, Value};

/// Kind of a `put` request: upload a file.
pub const PUT: &str = "put";
/// Kind of a `get` request: download a file.
pub const GET: &str = "get";
/// Kind of a `stat` request: what the server holds of a name (complete and partial).
pub const STAT: &str = "stat";
/// Kind of a `list` request: the files under the root.
pub const LIST: &str = "list";
/// Kind of an `exec` request: run an allowed program.
pub const EXEC: &str = "exec";
/// Kind of an `echo` request (spec §8).
pub const ECHO: &str = "echo";
/// Kind of the success reply to `put` and `stat`.
pub const OK: &str = "ok";
/// Kind of the reply to `get`: the file's octets as the body.
pub const FILE: &str = "file";
/// Kind of the reply to `list`: a JSON array in the body.
pub const LISTING: &str = "listing";
/// Kind of one chunk of a program's output (`stream` is `stdout` or `stderr`).
pub const OUTPUT: &str = "output";
/// Kind of the last reply to `exec`: how the program ended.
pub const EXIT: &str = "exit";
/// Kind of an error reply (spec §7, application codes in §10.8).
pub const ERROR: &str = "error";

/// The prefix of the hidden names under which partial uploads are kept (never listed, never
/// a valid name).
pub const PARTIAL_PREFIX: &str = ".lhp-partial-";

/// The application error codes (§10.8). Codes from the codec's registry (§7) travel as
/// strings; these are the ones a file server sends. `busy` and `timeout` are connection
/// errors (the connection closes); the others refuse one request (decisions E1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The server is at its connection limit (a connection error).
    Busy,
    /// A deadline passed (a connection error).
    Timeout,
    /// The request is malformed or unknown.
    BadRequest,
    /// The name breaks a name rule (§10.2), leads outside the root, or is not a regular file.
    BadName,
    /// No such file (or its directory does not exist).
    NotFound,
    /// A file of that name exists and the request did not ask to replace it.
    Exists,
    /// The name is being uploaded by another client.
    InUse,
    /// Exec is off, or this program is not allowed.
    ExecDenied,
    /// The whole file does not have the declared digest (`file_sha256` or the trailer).
    FileDigestMismatch,
    /// The server ran out of space storing a `put`; what the upload took is freed.
    NoSpace,
    /// The server failed (an IO error).
    Internal,
}

impl ErrorCode {
    /// Every code: the connection codes, then the request codes in decisions E1's order.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::Busy,
        ErrorCode::Timeout,
        ErrorCode::BadRequest,
        ErrorCode::BadName,
        ErrorCode::NotFound,
        ErrorCode::Exists,
        ErrorCode::InUse,
        ErrorCode::ExecDenied,
        ErrorCode::FileDigestMismatch,
        ErrorCode::NoSpace,
        ErrorCode::Internal,
    ];

    /// The stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Busy => "busy",
            ErrorCode::Timeout => "timeout",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::BadName => "bad_name",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Exists => "exists",
            ErrorCode::InUse => "in_use",
            ErrorCode::ExecDenied => "exec_denied",
            ErrorCode::FileDigestMismatch => "file_digest_mismatch",
            ErrorCode::NoSpace => "no_space",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorCode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown application error code {s:?}"))
    }
}

/// A `put` header: upload `body_len` octets as `name`. With `offset` (resume), the body is
/// the file from that octet on and `file_sha256` is the digest of the whole file; without it
/// the body is the whole file and `sha256` (verified by the codec, §6) is its digest.
pub fn put(name: &str, body_len: u64, file_sha256: &str, offset: Option<u64>) -> Header {
    let mut h = Header::with_kind(PUT);
    h.set_name(name.to_owned());
    match offset {
        Some(off) => {
            h.insert("offset", off);
            h.insert("file_sha256", file_sha256);
        }
        None => {
            h.insert("sha256", file_sha256);
        }
    }
    h.set_body_len(body_len);
    h
}

/// A `get` header, from `offset` if given.
pub fn get(name: &str, offset: Option<u64>) -> Header {
    let mut h = Header::with_kind(GET);
    h.set_name(name.to_owned());
    if let Some(off) = offset {
        h.insert("offset", off);
    }
    h
}

/// A `stat` header.
pub fn stat(name: &str) -> Header {
    let mut h = Header::with_kind(STAT);
    h.set_name(name.to_owned());
    h
}

/// A `list` header.
pub fn list() -> Header {
    Header::with_kind(LIST)
}

/// An `exec` header: `argv[0]` is the program (no shell), the rest its arguments.
pub fn exec<S: AsRef<str>>(argv: &[S]) -> Header {
    let mut h = Header::with_kind(EXEC);
    h.insert(
        "argv",
        Value::Array(argv.iter().map(|a| Value::from(a.as_ref())).collect()),
    );
    h
}

/// An `error` reply header.
pub fn error(code: &str, message: &str) -> Header {
    let mut h = Header::with_kind(ERROR);
    h.insert("code", code).insert("message", message);
    h
}

/// A string member, if present and a string.
pub fn str_member<'a>(h: &'a Header, name: &str) -> Option<&'a str> {
    h.get(name).and_then(Value::as_str)
}

/// A non-negative integer member: `Ok(None)` if absent, `Err` if present with another type.
pub fn u64_member(h: &Header, name: &str) -> Result<Option<u64>, String> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{name} must be a non-negative integer, not {v}")),
    }
}

/// A boolean member, false when absent.
pub fn bool_member(h: &Header, name: &str) -> bool {
    h.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Copies the request's `id` (if any) into a reply header (§10.1).
pub fn reply_to(request: &Header, mut reply: Header) -> Header {
    if let Some(id) = request.id() {
        reply.set_id(id);
    }
    reply
}

/// Whether `s` is a 64-digit lowercase hex digest.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for c in ErrorCode::ALL {
            assert_eq!(c.as_str().parse::<ErrorCode>(), Ok(c));
        }
        assert!("nope".parse::<ErrorCode>().is_err());
    }

    #[test]
    fn resume_put_carries_file_digest_not_body_digest() {
        let d = "a".repeat(64);
        let h = put("x", 5, &d, Some(10));
        assert_eq!(h.sha256(), None);
        assert_eq!(str_member(&h, "file_sha256"), Some(d.as_str()));
        assert_eq!(u64_member(&h, "offset"), Ok(Some(10)));
        let h = put("x", 5, &d, None);
        assert_eq!(h.sha256(), Some(d.as_str()));
        assert!(u64_member(&h, "name").is_err());
    }
}
