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
    use crate::{Decoder, Limits, Value};

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

    /// The same header, refused by the encoder exactly when a default receiver rejects it
    /// (§4.2 caps; §9: "an encoder MUST refuse" such a header).
    fn encoder_and_receiver_agree(h: &Header) -> Result<(), &'static str> {
        let mut out = BytesMut::from(&b"keep"[..]);
        let encoded = Encoder::new().encode_head(h, 0, &mut out);
        // What a receiver makes of the text serde_json writes for the same members.
        let text = serde_json::to_string(h.members()).unwrap();
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&(text.len() as u32).to_be_bytes());
        wire.extend_from_slice(text.as_bytes());
        let received = Decoder::new()
            .decode(&mut wire)
            .map(|_| ())
            .map_err(|e| e.code());
        match encoded {
            Ok(()) => {
                assert_eq!(&out[4 + 4..], text.as_bytes());
            }
            Err(EncodeError::InvalidHeader(e)) => {
                assert_eq!(&out[..], b"keep", "nothing written");
                assert_eq!(received, Err(e.code()), "encoder and receiver disagree");
                return Err(e.code());
            }
            Err(e) => panic!("{e}"),
        }
        assert_eq!(received, Ok(()));
        Ok(())
    }

    #[test]
    fn refuses_headers_over_the_parser_caps() {
        use serde_json::json;
        let nest = |depth: usize, arrays: bool| {
            // `depth` containers inside the header object: total depth `depth + 1`.
            let mut v = json!(1);
            for _ in 0..depth {
                v = if arrays {
                    json!([0, v])
                } else {
                    json!({ "a": v })
                };
            }
            v
        };
        for arrays in [false, true] {
            for (depth, want) in [(63, Ok(())), (64, Err("header_not_json"))] {
                let mut h = Header::with_kind("deep");
                h.insert("n", nest(depth, arrays));
                let what = format!("depth {} (arrays: {arrays})", depth + 1);
                assert_eq!(encoder_and_receiver_agree(&h), want, "{what}");
                let e = Header::from_members(h.members().clone(), Profile::Lhp1);
                assert_eq!(e.is_ok(), want.is_ok(), "{what}");
            }
        }
        let wide = |n: usize, nested: bool| {
            let mut h = Header::new();
            if nested {
                let m: serde_json::Map<_, _> =
                    (0..n).map(|i| (format!("m{i}"), json!(i))).collect();
                h.insert("o", Value::Object(m));
            } else {
                h.set_kind("wide").set_id(1);
                for i in 2..n {
                    h.insert(format!("m{i}"), i);
                }
            }
            h
        };
        for nested in [false, true] {
            assert_eq!(encoder_and_receiver_agree(&wide(1024, nested)), Ok(()));
            assert_eq!(
                encoder_and_receiver_agree(&wide(1025, nested)),
                Err("header_not_json"),
                "1025 members (nested: {nested})"
            );
        }
        // The count is the header's, however its members are split between registered ones
        // (typed fields) and extensions.
        use sha2::Digest;
        for registered in 1..=6 {
            for (n, want) in [(1024, Ok(())), (1025, Err("header_not_json"))] {
                let mut h = Header::with_kind("wide");
                let mut given = 1;
                if registered >= 2 {
                    h.set_id(1);
                }
                if registered >= 3 {
                    h.set_name("n");
                }
                if registered >= 4 {
                    h.set_version(1);
                }
                if registered >= 5 {
                    // (`set_body_len(0)` adds nothing: a member of value 0 it must be.)
                    h.insert("body_len", 0);
                }
                if registered >= 6 {
                    // The digest of the empty body the frame carries.
                    h.set_sha256(&sha2::Sha256::digest(b"").into());
                }
                given += registered - 1;
                for i in given..n {
                    h.insert(format!("m{i}"), i);
                }
                assert_eq!(h.members().len(), n, "{registered} registered");
                assert_eq!(
                    encoder_and_receiver_agree(&h),
                    want,
                    "{n} members, {registered} registered"
                );
            }
        }
        // A registered member given a value of another type still goes through the caps
        // before the member rules, as a receiver checks them.
        let mut h = wide(1025, false);
        h.insert("kind", 5);
        assert_eq!(encoder_and_receiver_agree(&h), Err("header_not_json"));
        // The typed error names the rule.
        let mut h = Header::new();
        h.insert("n", nest(64, false));
        let e = Encoder::new()
            .encode_head(&h, 0, &mut BytesMut::new())
            .unwrap_err();
        assert!(
            e.to_string().contains("header_not_json") && e.to_string().contains("§4.2"),
            "{e}"
        );
    }

    /// §4.5 rank 5: any integer `v` other than 1, whatever its sign or size, is
    /// `unsupported_version` for the encoder as for a receiver; `v` of another type is an
    /// invalid member.
    #[test]
    fn refuses_every_other_version_as_a_receiver_does() {
        use serde_json::json;
        for (v, want) in [
            (json!(1), Ok(())),
            (json!(2), Err("unsupported_version")),
            (json!(-1), Err("unsupported_version")),
            (json!(u64::MAX), Err("unsupported_version")),
            (json!(i64::MIN), Err("unsupported_version")),
            (json!("1"), Err("invalid_member")),
            (json!(1.5), Err("invalid_member")),
        ] {
            let mut h = Header::with_kind("x");
            h.insert("v", v.clone());
            assert_eq!(encoder_and_receiver_agree(&h), want, "v = {v}");
        }
    }

    /// §4.2: a number outside ±(2^53−1) is refused wherever it sits, in an array or an
    /// object nested in an extension as at the top.
    #[test]
    fn refuses_numbers_out_of_range_at_any_depth() {
        use serde_json::json;
        let big = 1u64 << 53;
        for v in [
            json!(big),
            json!([0, [big]]),
            json!({"a": {"b": big}}),
            json!([{"c": -(big as i64)}]),
        ] {
            let mut h = Header::with_kind("x");
            h.insert("e", v.clone());
            assert_eq!(
                encoder_and_receiver_agree(&h),
                Err("number_out_of_range"),
                "{v}"
            );
        }
        let mut h = Header::with_kind("x");
        h.insert("e", json!([0, {"a": big - 1}]));
        assert_eq!(encoder_and_receiver_agree(&h), Ok(()));
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
