//! Every vector in spec/vectors/, decoded by the built `lhp decode` binary.

mod common;

use common::{json_lines, run, sha256_hex};
use lhp_vectors::{objects_equal, Expect, ExpectedBody, ExpectedFrame};
use serde_json::Value;

/// What one `lhp decode` run produced: per frame (header, body_len, body_sha256), then the error
/// object from stderr if the exit status was 1.
struct Run {
    frames: Vec<Value>,
    error: Option<Value>,
}

fn judge(expect: &Expect, got: &Run) -> Result<(), String> {
    let (frames, error) = match expect {
        Expect::Acceptable(alts) => {
            let mut why = Vec::new();
            for alt in alts {
                match judge(alt, got) {
                    Ok(()) => return Ok(()),
                    Err(e) => why.push(e),
                }
            }
            return Err(why.join(" / "));
        }
        Expect::Valid { frames } => (frames, None),
        Expect::Invalid { frames, error } => (frames, Some(error)),
    };
    if frames.len() != got.frames.len() {
        return Err(format!(
            "{} frames, expected {}",
            got.frames.len(),
            frames.len()
        ));
    }
    for (i, (want, line)) in frames.iter().zip(&got.frames).enumerate() {
        frame_matches(want, line).map_err(|e| format!("frame {i}: {e}"))?;
    }
    match (error, &got.error) {
        (None, None) => Ok(()),
        (Some(w), Some(g)) => {
            let same = g["error"] == w.code.as_str()
                && g["offset"] == w.offset
                && w.missing.is_none_or(|m| g["missing"] == m);
            if same {
                Ok(())
            } else {
                Err(format!("error {g}, expected {w:?}"))
            }
        }
        (w, g) => Err(format!("error {g:?}, expected {w:?}")),
    }
}

fn frame_matches(want: &ExpectedFrame, line: &Value) -> Result<(), String> {
    let header = line["header"].as_object().ok_or("no header object")?;
    if !objects_equal(header, &want.header) {
        return Err(format!("header {header:?}, expected {:?}", want.header));
    }
    if line["body_len"] != want.body_len {
        return Err(format!(
            "body_len {}, expected {}",
            line["body_len"], want.body_len
        ));
    }
    let digest = match &want.body {
        ExpectedBody::Bytes(b) => sha256_hex(b),
        ExpectedBody::Sha256(d) => hex::encode(d),
    };
    if line["body_sha256"] != digest.as_str() {
        return Err("body digest differs".into());
    }
    Ok(())
}

#[test]
fn every_vector_through_the_binary() {
    let vectors = lhp_vectors::load_default().expect("load spec/vectors");
    assert!(!vectors.is_empty(), "no vectors found");
    let mut failures = Vec::new();
    for v in &vectors {
        let (max_header, max_body) = v.limits.unwrap_or((None, None));
        let args: Vec<String> = vec![
            "decode".into(),
            "--profile".into(),
            v.profile.clone(),
            "--skip-bytes".into(),
            v.skip_bytes.to_string(),
            "--max-header".into(),
            max_header.unwrap_or(64 << 10).to_string(),
            // Vectors assume the spec's default receiver (64 MiB bodies) unless they say so.
            "--max-body".into(),
            max_body.unwrap_or(64 << 20).to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args, &v.input);
        let error = match out.status.code() {
            Some(0) => None,
            Some(1) => Some(serde_json::from_slice(&out.stderr).unwrap_or(Value::Null)),
            other => {
                failures.push(format!(
                    "{}: exit {other:?}: {}",
                    v.id,
                    String::from_utf8_lossy(&out.stderr)
                ));
                continue;
            }
        };
        let got = Run {
            frames: json_lines(&out),
            error,
        };
        if let Err(e) = judge(&v.expect, &got) {
            failures.push(format!("{}: {e}", v.id));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
    eprintln!("{} vectors passed through lhp decode", vectors.len());
}
