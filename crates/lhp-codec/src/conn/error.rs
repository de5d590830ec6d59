//! Error frames (§7, decisions E1–E2): what they contain, which class a code belongs to, and how
//! a receiver tells the classes apart.

use std::fmt;

use bytes::{BufMut, BytesMut};
use serde_json::Value;

use crate::{DecodeError, Header, Profile, PREFIX_LEN};

/// The class of an error code (E1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Fatal: the sender closes the connection after the error frame. The frame carries
    /// `offset` and never `id`.
    Connection,
    /// A refusal of one request; the connection goes on. The frame carries `id` (if the request
    /// had one) and never `offset`.
    Request,
}

/// The codes of the connection class: the 13 decode codes of §7.1, `timeout` and `busy`.
pub const CONNECTION_CODES: [&str; 15] = [
    "header_len_too_small",
    "header_len_too_large",
    "unexpected_eof",
    "header_not_utf8",
    "header_not_json",
    "header_not_object",
    "duplicate_member",
    "unsupported_version",
    "number_out_of_range",
    "invalid_body_len",
    "invalid_member",
    "body_too_large",
    "digest_mismatch",
    "timeout",
    "busy",
];

/// The codes of the request class (`spec/lhp-app.md`).
pub const REQUEST_CODES: [&str; 9] = [
    "bad_request",
    "bad_name",
    "not_found",
    "exists",
    "in_use",
    "exec_denied",
    "file_digest_mismatch",
    "no_space",
    "internal",
];

/// The registered class of `code`, or `None` for a code this implementation does not know.
pub fn class_of(code: &str) -> Option<ErrorClass> {
    if CONNECTION_CODES.contains(&code) {
        Some(ErrorClass::Connection)
    } else if REQUEST_CODES.contains(&code) {
        Some(ErrorClass::Request)
    } else {
        None
    }
}

/// A received `error` frame, classified by the presence of `offset` (E2).
#[derive(Clone, Debug, PartialEq)]
pub struct PeerError {
    /// The class: [`ErrorClass::Connection`] iff the frame carried `offset`.
    pub class: ErrorClass,
    /// The code as sent. An unknown code is handled as `internal` of its class: see
    /// [`known_code`](Self::known_code).
    pub code: String,
    /// The human-readable text.
    pub message: String,
    /// `offset`, for a connection error.
    pub offset: Option<u64>,
    /// `missing`, for `unexpected_eof`.
    pub missing: Option<u64>,
    /// The `id` member, copied from the request, for a request error.
    pub id: Option<Value>,
}

impl PeerError {
    /// Reads an `error` frame's header; `None` if its `kind` is not `"error"`.
    pub fn from_header(header: &Header) -> Option<PeerError> {
        if header.kind() != Some("error") {
            return None;
        }
        let text = |name: &str| {
            header
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let offset = header.get("offset").and_then(Value::as_u64);
        Some(PeerError {
            class: if header.get("offset").is_some() {
                ErrorClass::Connection
            } else {
                ErrorClass::Request
            },
            code: text("code"),
            message: text("message"),
            offset,
            missing: header.get("missing").and_then(Value::as_u64),
            id: header.get("id").cloned(),
        })
    }

    /// The code, or `internal` when it is not registered (E2: unknown codes MUST NOT trigger
    /// special behaviour).
    pub fn known_code(&self) -> &str {
        match class_of(&self.code) {
            Some(_) => &self.code,
            None => "internal",
        }
    }
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(o) = self.offset {
            write!(f, " (at stream offset {o})")?;
        }
        Ok(())
    }
}

impl std::error::Error for PeerError {}

/// Appends a connection error frame (E2):
/// `{"kind":"error","code":C,"message":M,"offset":N}` (+ `"missing":K` for `unexpected_eof`),
/// empty body, with `profile`'s prefix.
pub fn encode_connection_error(
    profile: Profile,
    code: &str,
    message: &str,
    offset: u64,
    missing: Option<u64>,
    dst: &mut BytesMut,
) {
    encode_error(profile, None, code, message, Some((offset, missing)), dst);
}

/// Appends the connection error frame for a decode error.
pub fn encode_decode_error(profile: Profile, e: &DecodeError, dst: &mut BytesMut) {
    encode_connection_error(
        profile,
        e.code(),
        &e.to_string(),
        e.offset(),
        e.missing(),
        dst,
    );
}

/// Appends a request error frame (E2): `{"kind":"error","id":I,"code":C,"message":M}`, `id`
/// only if the request carried one (copied verbatim), empty body.
pub fn encode_request_error(
    profile: Profile,
    id: Option<&Value>,
    code: &str,
    message: &str,
    dst: &mut BytesMut,
) {
    encode_error(profile, id, code, message, None, dst);
}

fn encode_error(
    profile: Profile,
    id: Option<&Value>,
    code: &str,
    message: &str,
    offset: Option<(u64, Option<u64>)>,
    dst: &mut BytesMut,
) {
    let start = dst.len();
    dst.put_u32(0);
    dst.extend_from_slice(br#"{"kind":"error""#);
    if let Some(id) = id {
        dst.extend_from_slice(br#","id":"#);
        dst.extend_from_slice(id.to_string().as_bytes());
    }
    dst.extend_from_slice(br#","code":"#);
    dst.extend_from_slice(Value::from(code).to_string().as_bytes());
    dst.extend_from_slice(br#","message":"#);
    dst.extend_from_slice(Value::from(message).to_string().as_bytes());
    if let Some((offset, missing)) = offset {
        dst.extend_from_slice(format!(r#","offset":{offset}"#).as_bytes());
        if let Some(k) = missing {
            dst.extend_from_slice(format!(r#","missing":{k}"#).as_bytes());
        }
    }
    dst.put_u8(b'}');
    let h = (dst.len() - start - PREFIX_LEN) as u32;
    put_prefix(profile, h, &mut dst[start..start + PREFIX_LEN]);
}

/// Writes the prefix of a `h`-octet header in `profile` (§3.1, §3.3).
pub(crate) fn put_prefix(profile: Profile, h: u32, dst: &mut [u8]) {
    let p = match profile {
        Profile::Lhp1 => h.to_be_bytes(),
        Profile::SeedCompat => h.to_le_bytes(),
    };
    dst.copy_from_slice(&p);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decoder;

    #[test]
    fn connection_error_members_in_order() {
        let mut out = BytesMut::new();
        encode_connection_error(
            Profile::Lhp1,
            "unexpected_eof",
            "m\"x",
            7,
            Some(3),
            &mut out,
        );
        assert_eq!(
            &out[4..],
            br#"{"kind":"error","code":"unexpected_eof","message":"m\"x","offset":7,"missing":3}"#
        );
        let f = Decoder::new().decode(&mut out).unwrap().unwrap();
        let e = PeerError::from_header(&f.header).unwrap();
        assert_eq!(
            (e.class, e.offset, e.missing),
            (ErrorClass::Connection, Some(7), Some(3))
        );
    }

    #[test]
    fn request_error_copies_id_and_has_no_offset() {
        let mut out = BytesMut::new();
        encode_request_error(
            Profile::SeedCompat,
            Some(&Value::from(9)),
            "not_found",
            "no",
            &mut out,
        );
        assert_eq!(&out[..4], &(out.len() as i32 - 4).to_le_bytes());
        assert_eq!(
            &out[4..],
            br#"{"kind":"error","id":9,"code":"not_found","message":"no"}"#
        );
        let f = Decoder::with(Profile::SeedCompat, Default::default())
            .decode(&mut out)
            .unwrap()
            .unwrap();
        let e = PeerError::from_header(&f.header).unwrap();
        assert_eq!((e.class, e.id), (ErrorClass::Request, Some(Value::from(9))));
    }

    /// The encoders append: frames already in the buffer stay, and each new frame's prefix
    /// counts its own header only.
    #[test]
    fn error_frames_append_after_what_the_buffer_holds() {
        for profile in [Profile::Lhp1, Profile::SeedCompat] {
            let mut out = BytesMut::new();
            encode_connection_error(profile, "timeout", "idle", 19, None, &mut out);
            encode_request_error(profile, None, "bad_name", "no", &mut out);
            encode_connection_error(profile, "busy", "full", 0, None, &mut out);
            let mut d = Decoder::with(profile, Default::default());
            let codes: Vec<String> = std::iter::from_fn(|| d.decode(&mut out).unwrap())
                .map(|f| PeerError::from_header(&f.header).unwrap().code)
                .collect();
            assert_eq!(codes, ["timeout", "bad_name", "busy"]);
            assert!(out.is_empty());
        }
    }

    /// What a client shows for an error frame: code, message and, for a connection error, the
    /// stream offset.
    #[test]
    fn peer_error_displays_code_message_and_offset() {
        let mut h = Header::with_kind("error");
        h.insert("code", "header_not_json")
            .insert("message", "bad")
            .insert("offset", 12);
        let e = PeerError::from_header(&h).unwrap();
        assert_eq!(e.to_string(), "header_not_json: bad (at stream offset 12)");
        let mut h = Header::with_kind("error");
        h.insert("code", "not_found")
            .insert("message", "no such file");
        let e = PeerError::from_header(&h).unwrap();
        assert_eq!(e.to_string(), "not_found: no such file");
    }

    #[test]
    fn every_code_has_one_class_and_unknown_is_internal() {
        for c in CONNECTION_CODES {
            assert_eq!(class_of(c), Some(ErrorClass::Connection));
        }
        for c in REQUEST_CODES {
            assert_eq!(class_of(c), Some(ErrorClass::Request));
        }
        let mut h = Header::with_kind("error");
        h.insert("code", "teapot").insert("message", "");
        let e = PeerError::from_header(&h).unwrap();
        assert_eq!((e.class, e.known_code()), (ErrorClass::Request, "internal"));
    }
}
