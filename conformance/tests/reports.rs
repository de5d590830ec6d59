//! The reports are written and parse, and a broken implementation is caught and shrunk.

use lhp_conformance::report::Report;
use lhp_conformance::runner::{self, CaseResult, GroupCase, Options, Status};
use lhp_conformance::testee::{CodecDecode, Job, Run, Testee};
use lhp_vectors::Outcome;

/// Decodes correctly only when each chunk holds whole frames: it drops the decoder state at
/// every chunk boundary (a sticky-packet bug).
struct Forgetful;

impl Testee for Forgetful {
    fn name(&self) -> String {
        "forgetful".into()
    }

    fn run(&mut self, job: &Job<'_>) -> Run {
        let mut out = Outcome::default();
        let mut at = 0;
        for n in job.plan.chunks() {
            let chunk = &job.stream[at..at + n];
            let plan = lhp_conformance::plan::Plan::whole(n);
            let sub = Job {
                stream: chunk,
                plan: &plan,
                skip: job.skip + at as u64,
                ..*job
            };
            at += n;
            match CodecDecode.run(&sub) {
                Run::Outcome(o) => {
                    out.frames.extend(o.frames);
                    if o.error.is_some() {
                        out.error = o.error;
                        break;
                    }
                }
                other => return other,
            }
        }
        Run::Outcome(out)
    }
}

#[test]
fn reports_are_written_and_parse() {
    let cases = lhp_conformance::load_cases(
        &lhp_vectors::default_dir(),
        &["framing/".into(), "digest/".into()],
    )
    .unwrap();
    assert!(cases.len() > 20);
    let opts = Options::default();
    let good = runner::run_all(&mut CodecDecode, &cases, &opts);
    let bad = runner::run_all(&mut Forgetful, &cases, &opts);
    assert_eq!(good.count(Status::is_fail), 0);
    assert!(
        bad.count(Status::is_fail) > 10,
        "the forgetful decoder was not caught"
    );
    // Its failures are split failures, shrunk to a single cut point.
    let f = bad
        .results
        .iter()
        .find(|r| r.id == "framing/minimal-frame-with-body")
        .and_then(|r| r.failure.clone())
        .expect("minimal-frame-with-body fails");
    assert_eq!(f.cuts.len(), 1, "not shrunk: {f:?}");
    assert!(f.shrunk);

    // A conversation result: the groups show up in every report format.
    let mut bad = bad;
    let group = GroupCase {
        id: "behaviour/busy".into(),
        spec: "11.2".into(),
        tier: "required".into(),
        flags: vec!["busy".into(), "error-frame".into()],
        description: "Over max_connections: busy <then> the close & more.".into(),
    };
    bad.groups.push(CaseResult {
        id: group.id.clone(),
        tier: "required".into(),
        status: Status::Fail,
        detail: "step 2 (expect 1 frame(s) on 1): 0 of 1 expected frame(s) arrived in time".into(),
        failure: None,
        plans: 1,
        sampled: false,
        underived: 0,
    });
    let report = Report {
        cases,
        groups: vec![group],
        impls: vec![good, bad],
    };
    let summary = report.summary();
    let last = summary.lines().last().unwrap_or_default();
    let t = report.totals();
    assert_eq!(last, format!("{} passed, {} failed", t.passed, t.failed));

    let dir = tempfile::tempdir().unwrap();
    report.write(dir.path()).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["implementations"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["groups"][0]["flags"][0], "busy");
    assert_eq!(
        json["implementations"][1]["group_results"][0]["status"],
        "fail"
    );
    assert_eq!(json["totals"]["failed"].as_u64(), Some(t.failed as u64));

    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    check_xml(&junit);
    assert_eq!(junit.matches("<failure ").count(), t.failed);
    assert_eq!(junit.matches("<testsuite ").count(), 2);

    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(html.contains("framing/minimal-frame-with-body"));
    assert!(html.contains("Behaviour, application and resource groups"));
    assert!(html.contains("behaviour/busy") && html.contains("busy error-frame"));
    assert!(junit.contains("name=\"behaviour/busy\""));
    assert!(
        html.contains("class=cut"),
        "no marked split in the hex dump"
    );
    assert!(
        !html.contains("src=\"http"),
        "the HTML report must be self-contained"
    );
    assert_eq!(html.matches("<tr").count(), html.matches("</tr>").count());
}

/// A minimal well-formedness check: tags balance, attributes are quoted, no raw `<` or `&`.
fn check_xml(x: &str) {
    let body = x
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .expect("xml declaration");
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find('<') {
        let text = &rest[..i];
        assert!(!text.contains('>'), "raw > in text");
        for (j, _) in text.match_indices('&') {
            let ent = &text[j..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                    .iter()
                    .any(|e| ent.starts_with(e)),
                "bad entity"
            );
        }
        let end = rest[i..].find('>').expect("unterminated tag") + i;
        let tag = &rest[i + 1..end];
        assert!(!tag.contains('<'), "< inside a tag");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "unbalanced </{name}>");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap_or_default().to_owned());
        }
        rest = &rest[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
}
