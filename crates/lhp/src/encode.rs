//! `lhp encode`: one frame from a JSON header and an optional body.
//!
//! The header text is checked exactly as a receiver checks it (the codec decodes it: I-JSON,
//! no duplicate members, registered member types, §4), then `body_len` (or, in `seed-compat`,
//! whichever length member is present) is set to the body's real length. The body is copied
//! from its reader to the output, never held in memory.

use std::io::{self, Read, Write};

use bytes::BytesMut;
use lhp_codec::{
    DecodeError, Decoder, EncodeError, Encoder, Event, Header, Limits, Profile, MAX_SAFE_INTEGER,
};

/// How `lhp encode` encodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodeOptions {
    /// The wire dialect of the prefix and the length member.
    pub profile: Profile,
    /// If set, the header's `sha256` member is set to this digest of the body.
    pub sha256: Option<[u8; 32]>,
}

/// Why a frame could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeFrameError {
    /// The `--header` text is not a valid LHP header (the codec's error, offset within it).
    #[error("invalid --header: {0}")]
    Header(DecodeError),
    /// The codec refused the header (e.g. longer than a receiver's maximum).
    #[error("cannot encode: {0}")]
    Encode(#[from] EncodeError),
    /// The body reader ended before `expected` octets.
    #[error("the body ended after {got} of {expected} octets (did the file change?)")]
    BodyShort {
        /// Octets announced in the header.
        expected: u64,
        /// Octets the body reader gave.
        got: u64,
    },
    /// Reading the body or writing the frame failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Parses and validates header text as a receiver under `profile` would (§4).
///
/// ```
/// use lhp_codec::Profile;
///
/// let h = lhp::encode::parse_header(r#"{"kind":"put","name":"\u6fb3.txt"}"#, Profile::Lhp1).unwrap();
/// assert_eq!(h.name(), Some("澳.txt"));
/// let e = lhp::encode::parse_header(r#"{"a":1,"a":2}"#, Profile::Lhp1).unwrap_err();
/// assert!(e.to_string().contains("duplicate_member"));
/// ```
pub fn parse_header(json: &str, profile: Profile) -> Result<Header, EncodeFrameError> {
    let len = u32::try_from(json.len())
        .ok()
        .filter(|&l| l <= i32::MAX as u32)
        .ok_or(EncodeFrameError::Encode(EncodeError::HeaderTooLarge {
            len: json.len(),
            max: i32::MAX as u32,
        }))?;
    let mut wire = BytesMut::with_capacity(json.len() + 4);
    wire.extend_from_slice(&match profile {
        Profile::SeedCompat => len.to_le_bytes(),
        _ => len.to_be_bytes(),
    });
    wire.extend_from_slice(json.as_bytes());
    let limits = Limits::new()
        .with_max_header_len(len.max(2))
        .with_max_body_len(MAX_SAFE_INTEGER);
    let mut dec = Decoder::with(profile, limits);
    match dec.decode_event(&mut wire) {
        Ok(Some(Event::Head(h))) => Ok(h),
        // A complete header either yields its head or fails; `finish` names any shortfall.
        Ok(_) => Err(match dec.finish(&wire) {
            Err(e) => EncodeFrameError::Header(e),
            Ok(()) => EncodeFrameError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "the header text did not decode to a header",
            )),
        }),
        Err(e) => Err(EncodeFrameError::Header(e)),
    }
}

/// Writes one frame: the header from `header_json` with its length member set to
/// `body_len`, then `body_len` octets copied from `body`.
pub fn encode_frame<R: Read, W: Write>(
    header_json: &str,
    body: R,
    body_len: u64,
    opts: &EncodeOptions,
    out: &mut W,
) -> Result<(), EncodeFrameError> {
    let header = parse_header(header_json, opts.profile)?;
    write_frame(header, body, body_len, opts, out)
}

/// Writes one frame with `header` (its length member set to `body_len`, and `sha256` if
/// `opts` carries one), then `body_len` octets copied from `body`.
pub fn write_frame<R: Read, W: Write>(
    mut header: Header,
    body: R,
    body_len: u64,
    opts: &EncodeOptions,
    out: &mut W,
) -> Result<(), EncodeFrameError> {
    header.set_body_len_for(opts.profile, body_len);
    if let Some(d) = &opts.sha256 {
        header.set_sha256(d);
    }
    let mut head = BytesMut::new();
    let mut enc = Encoder::with_profile(opts.profile);
    enc.set_max_header_len(u32::MAX);
    enc.encode_head(&header, body_len, &mut head)?;
    out.write_all(&head)?;
    let got = io::copy(&mut body.take(body_len), out)?;
    if got < body_len {
        return Err(EncodeFrameError::BodyShort {
            expected: body_len,
            got,
        });
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_len_is_filled_in_and_decodes_back() {
        let mut out = Vec::new();
        encode_frame(
            r#"{"kind":"x","body_len":99}"#,
            &b"abc"[..],
            3,
            &EncodeOptions::default(),
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[4..], br#"{"kind":"x","body_len":3}abc"#);
        assert_eq!(out[..4], 25u32.to_be_bytes());
    }

    #[test]
    fn seed_compat_sets_file_size() {
        let opts = EncodeOptions {
            profile: Profile::SeedCompat,
            sha256: None,
        };
        let mut out = Vec::new();
        encode_frame(
            r#"{"file_name":"a","file_size":0}"#,
            &b"ab"[..],
            2,
            &opts,
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[4..], br#"{"file_name":"a","file_size":2}ab"#);
        assert_eq!(out[..4], 31i32.to_le_bytes());
    }

    #[test]
    fn short_body_and_bad_headers_are_errors() {
        let e = encode_frame(
            "{}",
            &b"ab"[..],
            3,
            &EncodeOptions::default(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(matches!(
            e,
            EncodeFrameError::BodyShort {
                expected: 3,
                got: 2
            }
        ));
        for bad in ["[1]", "{", r#"{"kind":1}"#, ""] {
            let e = parse_header(bad, Profile::Lhp1).unwrap_err();
            assert!(matches!(e, EncodeFrameError::Header(_)), "{bad}: {e}");
        }
    }
}
