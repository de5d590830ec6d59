//! What a person reads when a peer gets it wrong: one snapshot per error code (spec §7).

use bytes::BytesMut;
use lhp_codec::{Decoder, Limits, Profile};

fn frame(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend_from_slice(body);
    v
}

fn message(profile: Profile, input: &[u8]) -> String {
    let mut dec = Decoder::with(profile, Limits::default());
    let mut buf = BytesMut::from(input);
    let r = loop {
        match dec.decode(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) => break dec.finish(&buf),
            Err(e) => break Err(e),
        }
    };
    match r {
        Ok(()) => "no error".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn error_messages() {
    let lhp = Profile::Lhp1;
    let cases: Vec<(&str, String)> = vec![
        ("header_len_too_small", message(lhp, &[0, 0, 0, 1, b'{'])),
        ("http", message(lhp, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
        ("header_len_zero", message(lhp, &[0, 0, 0, 0])),
        ("http_response", message(lhp, b"HTTP/1.1 200 OK\r\n\r\n")),
        ("http2_preface", message(lhp, b"PRI * HTTP/2.0\r\n\r\n")),
        ("not_tls", message(lhp, &[0x16, 0x01, 0x00, 0x10])),
        ("large_not_seed", message(lhp, &[0x00, 0x10, 0x00, 0x00])),
        ("tls", message(lhp, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])),
        ("ssh", message(lhp, b"SSH-2.0-OpenSSH_9.6\r\n")),
        ("bare_json", message(lhp, b"{\"kind\":\"echo\"}")),
        ("seed_to_lhp1", message(lhp, &[0x1d, 0, 0, 0])),
        ("eof_prefix", message(lhp, &[0, 0])),
        ("eof_header", message(lhp, &[0, 0, 0, 9, b'{'])),
        ("eof_body", message(lhp, &frame(br#"{"body_len":10}"#, b"abc"))),
        ("not_utf8", message(lhp, &frame(b"{\"a\":\"\xff\"}", b""))),
        ("not_json", message(lhp, &frame(b"{\"a\":1,}", b""))),
        ("not_object", message(lhp, &frame(b"[1,2]", b""))),
        ("duplicate", message(lhp, &frame(br#"{"kind":"a","kind":"b"}"#, b""))),
        ("out_of_range", message(lhp, &frame(br#"{"n":9007199254740992}"#, b""))),
        ("invalid_body_len", message(lhp, &frame(br#"{"body_len":"5"}"#, b""))),
        ("invalid_member", message(lhp, &frame(br#"{"id":-1}"#, b""))),
        ("unsupported_version", message(lhp, &frame(br#"{"v":2}"#, b""))),
        ("body_too_large", message(lhp, &frame(br#"{"body_len":9007199254740991}"#, b""))),
        (
            "digest_mismatch",
            message(
                lhp,
                &frame(
                    br#"{"body_len":1,"sha256":"0000000000000000000000000000000000000000000000000000000000000000"}"#,
                    b"x",
                ),
            ),
        ),
        ("seed_negative", message(Profile::SeedCompat, &(-7i32).to_le_bytes())),
        (
            "seed_sizes_disagree",
            message(Profile::SeedCompat, &{
                let h = br#"{"file_size": 3, "total_size": 4}"#;
                let mut v = (h.len() as i32).to_le_bytes().to_vec();
                v.extend_from_slice(h);
                v
            }),
        ),
    ];
    let text: String = cases
        .iter()
        .map(|(name, msg)| format!("{name}:\n  {msg}\n"))
        .collect();
    insta::assert_snapshot!(text);
}
