//! `spec/vectors/datagram.json` through [`DatagramCodec`]: every datagram vector, the received
//! octets cut to `max_datagram_len + 1` as a receive buffer would (`spec/lhp-udp.md` §3.2).

use lhp_codec::datagram::DatagramConfig;
use lhp_codec::{Limits, Profile};
use lhp_vectors::{check, datagram, Outcome, OutcomeError, Verdict};

#[test]
fn datagram_vectors() {
    let vectors = datagram::load_default().expect("spec/vectors/datagram.json");
    assert!(
        vectors.len() > 100,
        "only {} datagram vectors",
        vectors.len()
    );
    let mut failures = Vec::new();
    let mut codes = std::collections::BTreeSet::new();
    for dv in &vectors {
        let v = &dv.vector;
        let profile: Profile = v.profile.parse().unwrap();
        let mut limits = Limits::new();
        if let Some((h, b)) = v.limits {
            limits = limits
                .with_max_header_len(h.unwrap_or(Limits::DEFAULT_MAX_HEADER_LEN))
                .with_max_body_len(b.unwrap_or(Limits::DEFAULT_MAX_BODY_LEN));
        }
        let cfg = DatagramConfig::new()
            .with_profile(profile)
            .with_max_datagram_len(dv.max_datagram_len)
            .with_limits(limits);
        assert_eq!(cfg.max_datagram_len(), dv.max_datagram_len, "{}", v.id);
        let received = &v.input[..v.input.len().min(cfg.recv_buffer_len())];
        let outcome = match cfg.codec().decode(received) {
            Ok(f) => Outcome {
                frames: vec![(f.header.members().clone(), f.body.to_vec())],
                error: None,
            },
            Err(e) => {
                codes.insert(e.code());
                Outcome {
                    frames: Vec::new(),
                    error: Some(OutcomeError {
                        code: e.code().to_owned(),
                        offset: e.offset(),
                        missing: e.missing(),
                    }),
                }
            }
        };
        if let Verdict::Fail(why) = check(&v.expect, &outcome) {
            failures.push(format!("{}: {why}", v.id));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    for code in [
        "trailing_octets",
        "datagram_too_large",
        "unexpected_eof",
        "body_too_large",
    ] {
        assert!(codes.contains(code), "no vector produced {code}");
    }
}
