//! Cases: vectors prepared for replay, with their frame boundaries and the expectations the
//! harness derives from them (truncations, the coalesced streams).

use lhp_codec::{Limits, Profile};
use lhp_vectors::{Expect, ExpectedBody, ExpectedError, ExpectedFrame, Vector};
use serde_json::Value;

/// A vector ready to be replayed.
#[derive(Clone, Debug)]
pub struct Case {
    /// The vector.
    pub vector: Vector,
    /// Its profile, parsed.
    pub profile: Profile,
    /// Its limits (defaults filled in).
    pub limits: Limits,
    /// The absolute end offsets of the expected frames, starting with the stream start
    /// (`skip_bytes`): `[skip, end of frame 0, end of frame 1, ...]`, relative to `input`.
    /// `None` when the input does not have the layout the expectation implies.
    pub layout: Option<Layout>,
}

/// Where the frames of a stream lie (offsets into the whole input, skipped octets included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Frame starts and ends: `bounds[i]` is where frame i begins; the last entry is where the
    /// last expected frame ends.
    pub bounds: Vec<u64>,
    /// The header length of each expected frame.
    pub header_lens: Vec<u64>,
}

impl Case {
    /// Prepares a vector; `None` if its profile is unknown.
    pub fn new(vector: Vector) -> Option<Case> {
        let profile: Profile = vector.profile.parse().ok()?;
        let mut limits = Limits::default();
        if let Some((h, b)) = vector.limits {
            if let Some(h) = h {
                limits = limits.with_max_header_len(h);
            }
            if let Some(b) = b {
                limits = limits.with_max_body_len(b);
            }
        }
        let layout = layout(
            &vector.input,
            vector.skip_bytes,
            profile,
            vector.expect.frames(),
        );
        Some(Case {
            vector,
            profile,
            limits,
            layout,
        })
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.vector.id
    }

    /// The octets the decoder sees (after `skip_bytes`).
    pub fn stream(&self) -> &[u8] {
        let skip = usize::try_from(self.vector.skip_bytes).unwrap_or(usize::MAX);
        self.vector.input.get(skip..).unwrap_or(&[])
    }

    /// `skip_bytes`.
    pub fn skip(&self) -> u64 {
        self.vector.skip_bytes
    }

    /// Frame boundaries relative to [`stream`](Self::stream), for sampling cut points.
    pub fn stream_boundaries(&self) -> Vec<usize> {
        let skip = self.skip();
        self.layout
            .as_ref()
            .map(|l| {
                l.bounds
                    .iter()
                    .filter_map(|&b| usize::try_from(b.checked_sub(skip)?).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The expectation when the stream is cut off after `t` octets of [`stream`](Self::stream)
    /// (`t` < its length). `None` if it cannot be derived from the vector.
    pub fn truncated(&self, t: usize) -> Option<Expect> {
        truncate_expect(self, &self.vector.expect, self.skip() + t as u64)
    }

    /// The body octets of expected frame `i`, taken from the input.
    pub fn body_of(&self, i: usize) -> Option<&[u8]> {
        let l = self.layout.as_ref()?;
        let start = l.bounds.get(i)? + 4 + l.header_lens.get(i)?;
        let end = *l.bounds.get(i + 1)?;
        self.vector
            .input
            .get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
    }
}

/// Reads a frame's declared header length at `at`.
fn header_len_at(input: &[u8], at: u64, profile: Profile) -> Option<u64> {
    let at = usize::try_from(at).ok()?;
    let p: [u8; 4] = input.get(at..at.checked_add(4)?)?.try_into().ok()?;
    match profile {
        Profile::SeedCompat => u64::try_from(i32::from_le_bytes(p)).ok(),
        _ => Some(u64::from(u32::from_be_bytes(p))),
    }
}

fn layout(input: &[u8], skip: u64, profile: Profile, frames: &[ExpectedFrame]) -> Option<Layout> {
    let mut bounds = vec![skip];
    let mut header_lens = Vec::new();
    let mut at = skip;
    for f in frames {
        let h = header_len_at(input, at, profile)?;
        at = at.checked_add(4)?.checked_add(h)?.checked_add(f.body_len)?;
        if at > input.len() as u64 {
            return None;
        }
        bounds.push(at);
        header_lens.push(h);
    }
    Some(Layout {
        bounds,
        header_lens,
    })
}

/// The body length a header declares (for digest-mismatch truncations).
fn declared_body_len(header: &[u8], profile: Profile) -> Option<u64> {
    let v: Value = serde_json::from_slice(header).ok()?;
    let names: &[&str] = match profile {
        Profile::SeedCompat => &["body_len", "file_size", "total_size"],
        _ => &["body_len"],
    };
    names
        .iter()
        .find_map(|n| v.get(*n))
        .map_or(Some(0), Value::as_u64)
}

fn truncate_expect(case: &Case, expect: &Expect, t: u64) -> Option<Expect> {
    let input = &case.vector.input;
    match expect {
        Expect::Acceptable(alts) => {
            let mut out: Vec<Expect> = Vec::new();
            for a in alts {
                let e = truncate_expect(case, a, t)?;
                if !out.contains(&e) {
                    out.push(e);
                }
            }
            if out.len() == 1 {
                out.pop()
            } else {
                Some(Expect::Acceptable(out))
            }
        }
        Expect::Valid { frames } | Expect::Invalid { frames, .. } => {
            let l = layout(input, case.skip(), case.profile, frames)?;
            // Frames wholly before t survive.
            let k = l.bounds.iter().skip(1).filter(|&&b| b <= t).count();
            let kept: Vec<ExpectedFrame> = frames.iter().take(k).cloned().collect();
            let start = *l.bounds.get(k)?;
            if let (Expect::Invalid { error, .. }, true) = (expect, k == frames.len()) {
                // t is inside the failing frame. Check the vector has the layout we assume.
                let h = header_len_at(input, start, case.profile);
                let model = match error.code.as_str() {
                    "header_len_too_small" | "header_len_too_large" => Some(start),
                    "unexpected_eof" => Some(input.len() as u64),
                    "digest_mismatch" => h.map(|h| start + 4 + h),
                    _ => Some(start + 4),
                };
                if model != Some(error.offset) {
                    return None;
                }
                // Is its error already detectable from the first t octets?
                let detectable_at = match error.code.as_str() {
                    "header_len_too_small" | "header_len_too_large" => Some(start + 4),
                    "unexpected_eof" => None,
                    "digest_mismatch" => {
                        let h = header_len_at(input, start, case.profile)?;
                        let hs = usize::try_from(start + 4).ok()?;
                        let he = usize::try_from(start + 4 + h).ok()?;
                        let b = declared_body_len(input.get(hs..he)?, case.profile)?;
                        Some(start + 4 + h + b)
                    }
                    _ => Some(start + 4 + header_len_at(input, start, case.profile)?),
                };
                if detectable_at.is_some_and(|d| t >= d) {
                    return Some(expect.clone());
                }
                if t == start {
                    return Some(Expect::Valid { frames: kept });
                }
                let missing = eof_missing(case, start, t, error);
                return Some(Expect::Invalid {
                    frames: kept,
                    error: ExpectedError {
                        code: "unexpected_eof".into(),
                        offset: t,
                        missing,
                    },
                });
            }
            if t == start {
                return Some(Expect::Valid { frames: kept });
            }
            // t is inside expected frame k.
            let h = *l.header_lens.get(k)?;
            let end = *l.bounds.get(k + 1)?;
            let missing = if t < start + 4 {
                start + 4 - t
            } else if t < start + 4 + h {
                start + 4 + h - t
            } else {
                end - t
            };
            Some(Expect::Invalid {
                frames: kept,
                error: ExpectedError {
                    code: "unexpected_eof".into(),
                    offset: t,
                    missing: Some(missing),
                },
            })
        }
    }
}

/// `missing` for a truncation inside the frame where the vector itself fails.
fn eof_missing(case: &Case, start: u64, t: u64, error: &ExpectedError) -> Option<u64> {
    if t < start + 4 {
        return Some(start + 4 - t);
    }
    let h = header_len_at(&case.vector.input, start, case.profile)?;
    if t < start + 4 + h {
        return Some(start + 4 + h - t);
    }
    // In the body: the vector's own missing count grows by what was cut.
    let len = case.vector.input.len() as u64;
    match error.code.as_str() {
        "unexpected_eof" if len >= start + 4 + h => error.missing.map(|m| m + (len - t)),
        _ => None,
    }
}

/// The `coalesced/PROFILE` case: every valid required vector of `profile` with default limits
/// and no skipped octets, back to back, expecting all their frames in order.
pub fn coalesced(cases: &[Case], profile: Profile) -> Option<Case> {
    let mut input = Vec::new();
    let mut frames = Vec::new();
    let mut ids = Vec::new();
    for c in cases {
        let v = &c.vector;
        if c.profile != profile || v.limits.is_some() || v.skip_bytes != 0 || v.tier != "required" {
            continue;
        }
        let Expect::Valid { frames: f } = &v.expect else {
            continue;
        };
        if f.is_empty() {
            continue;
        }
        input.extend_from_slice(&v.input);
        frames.extend(f.iter().cloned());
        ids.push(v.id.clone());
    }
    if ids.is_empty() {
        return None;
    }
    let vector = Vector {
        id: format!("coalesced/{}", profile.name()),
        spec: "3".into(),
        description: format!(
            "All {} valid required {} vectors with default limits, back to back in one \
             stream: {}",
            ids.len(),
            profile.name(),
            ids.join(", ")
        ),
        profile: profile.name().into(),
        tier: "required".into(),
        limits: None,
        skip_bytes: 0,
        input,
        expect: Expect::Valid { frames },
    };
    Case::new(vector)
}

/// A short description of an expectation, for reports.
pub fn describe(expect: &Expect) -> String {
    match expect {
        Expect::Valid { frames } => format!("valid: {} frame(s), clean end", frames.len()),
        Expect::Invalid { frames, error } => format!(
            "invalid: {} frame(s), then {} at {}{}",
            frames.len(),
            error.code,
            error.offset,
            error
                .missing
                .map(|m| format!(" ({m} missing)"))
                .unwrap_or_default()
        ),
        Expect::Acceptable(alts) => format!(
            "acceptable: {}",
            alts.iter().map(describe).collect::<Vec<_>>().join(" | ")
        ),
    }
}

/// The expected body of a frame when only its digest is given is checked by digest; this
/// returns the octets when the vector lists them.
pub fn expected_bytes(f: &ExpectedFrame) -> Option<&[u8]> {
    match &f.body {
        ExpectedBody::Bytes(b) => Some(b),
        ExpectedBody::Sha256(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case_of(hex: &str, expect: Expect) -> Case {
        let v = Vector {
            id: "t/x".into(),
            spec: "3".into(),
            description: String::new(),
            profile: "lhp1".into(),
            tier: "required".into(),
            limits: None,
            skip_bytes: 0,
            input: hex::decode(hex).unwrap_or_default(),
            expect,
        };
        Case::new(v).expect("lhp1 is a known profile")
    }

    #[test]
    fn truncation_of_a_valid_frame() {
        // {"body_len":1} + "a"
        let frame = ExpectedFrame {
            header: serde_json::json!({"body_len":1})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            body_len: 1,
            body: ExpectedBody::Bytes(b"a".to_vec()),
        };
        let c = case_of(
            "0000000e7b22626f64795f6c656e223a317d61",
            Expect::Valid {
                frames: vec![frame],
            },
        );
        assert_eq!(c.truncated(0), Some(Expect::Valid { frames: vec![] }));
        let eof = |t: u64, m: u64| {
            Some(Expect::Invalid {
                frames: vec![],
                error: ExpectedError {
                    code: "unexpected_eof".into(),
                    offset: t,
                    missing: Some(m),
                },
            })
        };
        assert_eq!(c.truncated(1), eof(1, 3));
        assert_eq!(c.truncated(4), eof(4, 14));
        assert_eq!(c.truncated(18), eof(18, 1));
        assert_eq!(c.body_of(0), Some(&b"a"[..]));
    }

    #[test]
    fn truncation_after_a_detectable_error_keeps_it() {
        let err = ExpectedError {
            code: "header_len_too_small".into(),
            offset: 0,
            missing: None,
        };
        let e = Expect::Invalid {
            frames: vec![],
            error: err,
        };
        let c = case_of("00000001200000", e.clone());
        assert_eq!(c.truncated(5), Some(e.clone()));
        assert_eq!(c.truncated(4), Some(e));
        assert!(
            matches!(c.truncated(3), Some(Expect::Invalid { error, .. }) if error.code == "unexpected_eof")
        );
    }
}
