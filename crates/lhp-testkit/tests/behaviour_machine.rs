//! The behaviour table (`spec/vectors/conversations/behaviour.json`) against the sans-IO
//! connection machine in virtual time: every deadline is tested without sleeping.

use lhp_codec::conn::Role;
use lhp_testkit::conversations::{conversation_dir, load_group, run_virtual};

#[test]
fn behaviour_table_on_the_machine() {
    let dir = conversation_dir();
    let convs = load_group(&dir, "behaviour.json").expect("behaviour.json is missing");
    assert!(convs.len() >= 40, "only {} conversations", convs.len());
    let mut failures = Vec::new();
    for conv in &convs {
        if let Err(e) = run_virtual(conv, Role::EchoServer) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        convs.len(),
        failures.join("\n")
    );
}

#[test]
fn a_wrong_expectation_fails() {
    // The runner can fail: the echo case with its reply's last octet changed.
    let dir = conversation_dir();
    let mut convs = load_group(&dir, "behaviour.json").expect("behaviour.json is missing");
    let conv = convs
        .iter_mut()
        .find(|c| c.id == "behaviour/echo")
        .expect("behaviour/echo");
    if let Some(lhp_vectors::conversation::Step::Expect { frames, .. }) = conv.steps.get_mut(1) {
        if let Some(lhp_vectors::conversation::FramePattern::Exact { hex }) = frames.get_mut(0) {
            hex.pop();
            hex.push('0');
        }
    }
    assert!(run_virtual(conv, Role::EchoServer).is_err());
}
