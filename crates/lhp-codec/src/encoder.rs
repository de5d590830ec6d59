//! The encoder (§9): writes the prefix and the canonical header into a buffer and leaves the
//! body as its own [`Bytes`], so a writer can send all three with one vectored write.

use bytes::{BufMut, BytesMut};

use crate::decoder::PREFIX_LEN;
use crate::error::EncodeError;
use crate::{Frame, Header, Profile};

/// Encodes frames for one profile.
///
/// ```
/// use bytes::BytesMut;
/// use lhp_codec::{Encoder, Header};
///
/// let mut head = BytesMut::new();
/// let mut h = Header::with_kind("echo");
/// h.set_body_len(3);
/// Encoder::new().encode_head(&h, 3, &mut head).unwrap();
/// assert_eq!(&head[..], b"\0\0\0\x1c{\"kind\":\"echo\",\"body_len\":3}");
/// // ... then write `head` and the 3 body octets with one vectored write.
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Encoder {
    profile: Profile,
    max_header_len: u32,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    /// An `lhp1` encoder whose headers fit a default receiver (at most 65,536 octets).
    pub fn new() -> Self {
        Encoder::with_profile(Profile::Lhp1)
    }

    /// An encoder for `profile`.
    pub fn with_profile(profile: Profile) -> Self {
        Encoder {
            profile,
            max_header_len: crate::Limits::DEFAULT_MAX_HEADER_LEN,
        }
    }

    /// Sets the largest header this encoder writes (at most `i32::MAX` in `seed-compat`).
    pub fn set_max_header_len(&mut self, max: u32) -> &mut Self {
        self.max_header_len = match self.profile {
            Profile::Lhp1 => max,
            Profile::SeedCompat => max.min(i32::MAX as u32),
        };
        self
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The largest header this encoder writes.
    pub fn max_header_len(&self) -> u32 {
        self.max_header_len
    }

    /// Appends the prefix and header of a frame whose body will be `body_len` octets.
    /// The header is checked as a receiver would check it (§4.4), and must declare `body_len`.
    pub fn encode_head(
        &self,
        header: &Header,
        body_len: u64,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let (json, declared) = header.encoding(self.profile)?;
        if declared != body_len {
            return Err(EncodeError::BodyLenMismatch {
                declared,
                actual: body_len,
            });
        }
        let start = dst.len();
        dst.reserve(PREFIX_LEN + 128);
        dst.put_u32(0);
        // §9: the canonical text, written straight into `dst`.
        if let Err(e) = json.write(dst) {
            dst.truncate(start);
            return Err(EncodeError::Serialize(e));
        }
        if let Err(e) = self.write_prefix(start, dst) {
            dst.truncate(start);
            return Err(e);
        }
        Ok(())
    }

    /// Appends a whole frame, body copied (for sinks such as `tokio_util`'s `Framed` that want
    /// one buffer). Writers that can do vectored IO use [`encode_head`](Self::encode_head) and
    /// send the body `Bytes` as it is.
    pub fn encode(&self, frame: &Frame, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode_head(&frame.header, frame.body.len() as u64, dst)?;
        dst.extend_from_slice(&frame.body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decoder, Limits};

    #[test]
    fn seed_compat_prefix_is_little_endian_signed() {
        let mut h = Header::new();
        h.insert("file_name", "a.txt").insert("file_size", 2);
        let mut out = BytesMut::new();
        Encoder::with_profile(Profile::SeedCompat)
            .encode(
                &Frame::with_profile(Profile::SeedCompat, h.clone(), "ab".into()),
                &mut out,
            )
            .unwrap();
        let json = br#"{"file_name":"a.txt","file_size":2}"#;
        assert_eq!(out[..4], (json.len() as i32).to_le_bytes());
        let mut dec = Decoder::with(Profile::SeedCompat, Limits::default());
        let f = dec.decode(&mut out).unwrap().unwrap();
        assert_eq!(f.header, h);
        assert_eq!(&f.body[..], b"ab");
    }

    #[test]
    fn refuses_what_a_receiver_would_reject() {
        let mut h = Header::new();
        h.insert("kind", 5);
        let e = Encoder::new()
            .encode_head(&h, 0, &mut BytesMut::new())
            .unwrap_err();
        assert!(e.to_string().contains("invalid_member"), "{e}");
        let h = Header::with_kind("x");
        let e = Encoder::new()
            .encode_head(&h, 1, &mut BytesMut::new())
            .unwrap_err();
        assert!(matches!(
            e,
            EncodeError::BodyLenMismatch {
                declared: 0,
                actual: 1
            }
        ));
        let mut h = Header::new();
        h.insert("big", "x".repeat(70_000));
        let mut out = BytesMut::from(&b"keep"[..]);
        let e = Encoder::new().encode_head(&h, 0, &mut out).unwrap_err();
        assert!(matches!(e, EncodeError::HeaderTooLarge { .. }));
        assert_eq!(&out[..], b"keep");
    }
}
