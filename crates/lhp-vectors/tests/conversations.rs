//! The conversation vectors in `spec/vectors/conversations/` load and are well formed.

use lhp_vectors::conversation::{default_conversation_dir, load_conversations, Step};

#[test]
fn app_conversations_load_and_cover_every_message() {
    let all = load_conversations(&default_conversation_dir()).expect("conversation files load");
    let app: Vec<_> = all.iter().filter(|c| c.id.starts_with("app/")).collect();
    assert!(app.len() >= 20, "only {} app conversations", app.len());
    for kind in ["put", "get", "stat", "list", "exec"] {
        let needle = format!("\"kind\":\"{kind}\"");
        let hits = app.iter().any(|c| {
            c.steps.iter().any(|s| match s {
                Step::Send { hex, .. } => hex::decode(hex)
                    .map(|b| String::from_utf8_lossy(&b).contains(&needle))
                    .unwrap_or(false),
                _ => false,
            })
        });
        assert!(hits, "no app conversation sends a {kind} request");
    }
    for c in &app {
        assert!(!c.flags.is_empty(), "{} has no flags", c.id);
        assert!(
            c.steps.iter().any(|s| matches!(s, Step::Expect { .. })),
            "{} expects nothing",
            c.id
        );
        assert!(c.app.is_some(), "{} sets up no served root", c.id);
    }
}
