//! Errors: [`DecodeError`] (the peer broke a rule of LHP/1) and [`EncodeError`] (the caller asked
//! for a frame that LHP/1 cannot carry).
//!
//! Every decode error has a stable snake_case [`code`](DecodeError::code) registered in §7.1 of
//! the spec, the [`section`](DecodeError::section) it enforces, and the absolute byte
//! [`offset`](DecodeError::offset) in the stream where the offending element starts.

use std::fmt;

/// Which part of a frame a truncated stream ended in (§3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// The 4-octet header length prefix.
    Prefix,
    /// The JSON header.
    Header,
    /// The body.
    Body,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Part::Prefix => "length prefix",
            Part::Header => "header",
            Part::Body => "body",
        }
    }
}

/// What the peer did wrong. Variants are in the order of the spec's error registry (§7.1).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// §3.2: the prefix declares fewer than 2 header octets (or, in `seed-compat`, a negative
    /// length).
    HeaderLenTooSmall {
        /// The declared length, sign included.
        len: i64,
    },
    /// §3.2: the prefix declares more header octets than the receiver's limit.
    HeaderLenTooLarge {
        /// The declared length.
        len: u64,
        /// The receiver's `max_header_len`.
        max: u32,
        /// The four prefix octets, kept to say what protocol the peer may be speaking (§7.3).
        first_octets: [u8; 4],
    },
    /// §3.4: the stream ended inside a frame.
    UnexpectedEof {
        /// Octets still needed to complete the element the stream ended in (a lower bound for
        /// the prefix and header: the rest of the frame was not yet known).
        missing: u64,
        /// The element the stream ended in.
        part: Part,
    },
    /// §4.1: the header is not valid UTF-8.
    HeaderNotUtf8 {
        /// Octets of the header that are valid UTF-8 before the first invalid sequence.
        valid_up_to: usize,
    },
    /// §4.1: the header is not one JSON text.
    HeaderNotJson {
        /// The JSON parser's account of the problem (line and column inside the header).
        detail: String,
    },
    /// §4.1: the header's top-level JSON value is not an object.
    HeaderNotObject {
        /// The JSON type found instead (`"array"`, `"string"`, ...).
        found: &'static str,
    },
    /// §4.2: an object in the header has two members with the same name.
    DuplicateMember {
        /// The repeated name, unescaped.
        name: String,
    },
    /// §4.2: a number in the header has magnitude above 2^53−1.
    NumberOutOfRange {
        /// The number as the parser read it.
        number: String,
    },
    /// §4.4: a body length member is not an integer in 0..=2^53−1, or two of them disagree.
    InvalidBodyLen {
        /// The member at fault (`body_len`, `file_size` or `total_size`).
        member: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// §4.4: a registered member has the wrong type or form.
    InvalidMember {
        /// The registered member's name.
        member: &'static str,
        /// What the spec requires it to be.
        expected: &'static str,
    },
    /// §4.4, §4.5 rank 5: `v` is an integer literal other than 1 (a version this receiver
    /// does not speak).
    UnsupportedVersion {
        /// The version the peer sent, as it spelled it (it may be negative or beyond 2^64).
        version: String,
    },
    /// §5: the body is longer than the receiver's `max_body_len`.
    BodyTooLarge {
        /// The declared body length.
        len: u64,
        /// The receiver's limit.
        max: u64,
    },
    /// §6: the body does not match the digest in the header.
    DigestMismatch {
        /// `sha256`, or `md5` in the `seed-compat` profile.
        algorithm: &'static str,
        /// The digest the header declared (lowercase hex).
        expected: String,
        /// The digest of the octets received (lowercase hex).
        actual: String,
    },
}

/// A violation of LHP/1 by the peer. The stream is over: a decoder that returned one returns
/// the same error for every later call.
///
/// ```
/// use bytes::BytesMut;
/// use lhp_codec::Decoder;
///
/// let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
/// let err = Decoder::new().decode(&mut buf).unwrap_err();
/// assert_eq!(err.code(), "header_len_too_large");
/// assert_eq!(err.offset(), 0);
/// assert!(err.to_string().contains("HTTP"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    offset: u64,
    kind: DecodeErrorKind,
}

impl DecodeError {
    pub(crate) fn new(offset: u64, kind: DecodeErrorKind) -> Self {
        DecodeError { offset, kind }
    }

    /// The stable snake_case code registered in §7.1 (also sent in `error` frames).
    pub fn code(&self) -> &'static str {
        use DecodeErrorKind::*;
        match self.kind {
            HeaderLenTooSmall { .. } => "header_len_too_small",
            HeaderLenTooLarge { .. } => "header_len_too_large",
            UnexpectedEof { .. } => "unexpected_eof",
            HeaderNotUtf8 { .. } => "header_not_utf8",
            HeaderNotJson { .. } => "header_not_json",
            HeaderNotObject { .. } => "header_not_object",
            DuplicateMember { .. } => "duplicate_member",
            NumberOutOfRange { .. } => "number_out_of_range",
            InvalidBodyLen { .. } => "invalid_body_len",
            InvalidMember { .. } => "invalid_member",
            UnsupportedVersion { .. } => "unsupported_version",
            BodyTooLarge { .. } => "body_too_large",
            DigestMismatch { .. } => "digest_mismatch",
        }
    }

    /// The section of `spec/lhp-1.md` whose rule was broken.
    pub fn section(&self) -> &'static str {
        use DecodeErrorKind::*;
        match self.kind {
            HeaderLenTooSmall { .. } | HeaderLenTooLarge { .. } => "3.2",
            UnexpectedEof { .. } => "3.4",
            HeaderNotUtf8 { .. } | HeaderNotJson { .. } | HeaderNotObject { .. } => "4.1",
            DuplicateMember { .. } | NumberOutOfRange { .. } => "4.2",
            InvalidBodyLen { .. } | InvalidMember { .. } | UnsupportedVersion { .. } => "4.4",
            BodyTooLarge { .. } => "5",
            DigestMismatch { .. } => "6",
        }
    }

    /// The absolute stream offset of the element at fault (§7.1 gives the rule per code).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The details.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }

    /// For `unexpected_eof`: how many octets were missing.
    pub fn missing(&self) -> Option<u64> {
        match self.kind {
            DecodeErrorKind::UnexpectedEof { missing, .. } => Some(missing),
            _ => None,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {} (LHP/1 §{}): ",
            self.code(),
            self.offset,
            self.section()
        )?;
        use DecodeErrorKind::*;
        match &self.kind {
            HeaderLenTooSmall { len } if *len < 0 => write!(
                f,
                "the length prefix is negative ({len}); a header is at least 2 octets"
            ),
            HeaderLenTooSmall { len } => write!(
                f,
                "the length prefix declares a {len}-octet header; the shortest header, `{{}}`, \
                 is 2 octets"
            ),
            HeaderLenTooLarge {
                len,
                max,
                first_octets,
            } => {
                write!(
                    f,
                    "the length prefix declares a {len}-octet header, over this receiver's \
                     limit of {max}; "
                )?;
                describe_first_octets(f, first_octets)
            }
            UnexpectedEof { missing, part } => {
                let bound = if *part == Part::Body { "" } else { "at least " };
                write!(
                    f,
                    "the stream ended inside a frame's {}, {bound}{missing} octet(s) short",
                    part.as_str()
                )
            }
            HeaderNotUtf8 { valid_up_to } => write!(
                f,
                "the header is not valid UTF-8 (invalid sequence at header octet {valid_up_to})"
            ),
            HeaderNotJson { detail } => write!(f, "the header is not a JSON text: {detail}"),
            HeaderNotObject { found } => write!(
                f,
                "the header's top-level JSON value is {found}, but it must be an object"
            ),
            DuplicateMember { name } => write!(
                f,
                "the header has two members named {name:?}; I-JSON forbids duplicate names"
            ),
            NumberOutOfRange { number } => write!(
                f,
                "the header contains the number {number}, outside ±(2^53−1) as I-JSON requires"
            ),
            InvalidBodyLen { member, reason } => {
                write!(f, "the header's `{member}` member {reason}")
            }
            InvalidMember { member, expected } => {
                write!(f, "the registered member `{member}` must be {expected}")
            }
            UnsupportedVersion { version } => write!(
                f,
                "the header asks for protocol version {version}; this receiver speaks version 1"
            ),
            BodyTooLarge { len, max } => write!(
                f,
                "the header declares a {len}-octet body, over this receiver's limit of {max}"
            ),
            DigestMismatch {
                algorithm,
                expected,
                actual,
            } => write!(
                f,
                "the body's {algorithm} is {actual}, but the header declared {expected}"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Names what a peer that sent these four octets instead of a length prefix is probably
/// speaking (§7.3).
fn describe_first_octets(f: &mut fmt::Formatter<'_>, p: &[u8; 4]) -> fmt::Result {
    let printable: String = p
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    let hex = format!("{:02x} {:02x} {:02x} {:02x}", p[0], p[1], p[2], p[3]);
    const HTTP: [&[u8; 4]; 9] = [
        b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC",
    ];
    if HTTP.contains(&p) || p == b"HTTP" || p == b"PRI " {
        write!(
            f,
            "the first octets {hex} (\"{printable}\") look like an HTTP message: is the peer \
             speaking HTTP instead of LHP?"
        )
    } else if p[0] == 0x16 && p[1] == 0x03 {
        write!(
            f,
            "the first octets {hex} look like a TLS handshake record (ClientHello): is the peer \
             speaking TLS instead of LHP?"
        )
    } else if p == b"SSH-" {
        write!(
            f,
            "the first octets {hex} (\"SSH-\") look like an SSH banner: is the peer speaking SSH?"
        )
    } else if p[0] == b'{' {
        write!(
            f,
            "the first octets {hex} (\"{printable}\") look like bare JSON without a length \
             prefix"
        )
    } else if p[3] == 0 && p[0] != 0 {
        write!(
            f,
            "the first octets are {hex} (\"{printable}\"); read as little-endian they would be \
             {}: is the peer using the seed-compat profile?",
            u32::from_le_bytes(*p)
        )
    } else {
        write!(f, "the first octets are {hex} (\"{printable}\")")
    }
}

/// The caller asked the encoder for something LHP/1 cannot carry. Nothing was written.
#[derive(Debug)]
#[non_exhaustive]
pub enum EncodeError {
    /// The header's JSON text is longer than the encoder's `max_header_len`.
    HeaderTooLarge {
        /// Octets the header would take.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// The header declares a body length other than the body's.
    BodyLenMismatch {
        /// What the header says.
        declared: u64,
        /// What the body has.
        actual: u64,
    },
    /// The header would be rejected by a receiver (the wrapped error says why; its offset is
    /// meaningless here).
    InvalidHeader(DecodeError),
    /// A user type could not be serialized to a JSON object.
    Serialize(serde_json::Error),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::HeaderTooLarge { len, max } => write!(
                f,
                "the header would be {len} octets, over the encoder's limit of {max}"
            ),
            EncodeError::BodyLenMismatch { declared, actual } => write!(
                f,
                "the header declares a {declared}-octet body but the body has {actual} octets"
            ),
            EncodeError::InvalidHeader(e) => {
                write!(
                    f,
                    "a receiver would reject this header: {}",
                    e.kind_message()
                )
            }
            EncodeError::Serialize(e) => write!(f, "cannot serialize the header: {e}"),
        }
    }
}

impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EncodeError::Serialize(e) => Some(e),
            _ => None,
        }
    }
}

impl DecodeError {
    /// The message without the code/offset prefix.
    fn kind_message(&self) -> String {
        let full = self.to_string();
        match full.split_once("): ") {
            Some((_, rest)) => format!("{} ({})", rest, self.code()),
            None => full,
        }
    }
}
