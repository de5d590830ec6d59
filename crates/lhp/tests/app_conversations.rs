//! The application conversations (`spec/vectors/conversations/app.json`: put, get, stat, list,
//! exec, refusals, with and without `id`) against the built `lhp serve` on both engines, replayed
//! by the conformance harness's runner (`lhp_conformance::conversation::run_one`), from
//! `cargo test`.
//!
//! To stay fast, conversations that ask for the same server (settings, profile, exec allow-list)
//! share one `lhp serve` per engine: before each one the served root is emptied and filled with
//! the files it sets up, and after it the files it expects are checked, as the harness does with
//! a fresh server. A conversation that fails on the shared server is run once more on a fresh
//! one (and reported on stderr): state left by the one before it is a fault of this test's
//! sharing, not of the server; a failure on the fresh server fails the test.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::lhp;
use lhp_conformance::conversation::{expand, run_one};
use lhp_vectors::conversation::Conversation;

/// A running `lhp serve` over a root; killed when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    /// Starts `lhp serve --engine ENGINE` with the flags `conv` asks for (the harness's own
    /// template expansion: `{root} {allow_exec_flags} {config_flags}`).
    fn start(engine: &str, conv: &Conversation, root: &Path) -> Serve {
        let (cmd, _) = expand("{allow_exec_flags} {config_flags}", conv, root, 1.0);
        let mut child = lhp()
            .args([
                "serve",
                "--engine",
                engine,
                "--addr",
                "127.0.0.1:0",
                "--root",
            ])
            .arg(root)
            .args(cmd.split_whitespace())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lhp serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {line:?}"))
            .parse()
            .expect("an address");
        Serve { child, addr }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Empties `root`, then creates the directories and files `conv` sets up.
fn set_up(conv: &Conversation, root: &Path) {
    for entry in fs::read_dir(root).expect("read root") {
        let path = entry.expect("entry").path();
        if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(&path).expect("remove dir");
        } else {
            fs::remove_file(&path).expect("remove file");
        }
    }
    let Some(app) = &conv.app else { return };
    for d in &app.dirs {
        fs::create_dir_all(root.join(d)).expect("create dir");
    }
    for (name, hex) in &app.files {
        let path = root.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent");
        }
        fs::write(&path, hex::decode(hex).expect("vector hex")).expect("write file");
    }
}

/// What `conv` expects the root to hold afterwards.
fn check_after(conv: &Conversation, root: &Path) -> Result<(), String> {
    let Some(after) = &conv.after else {
        return Ok(());
    };
    for (name, hex) in &after.files {
        let want = hex::decode(hex).map_err(|e| e.to_string())?;
        match fs::read(root.join(name)) {
            Ok(have) if have == want => {}
            Ok(have) => {
                return Err(format!(
                    "afterwards {name} holds {} octets, expected {}",
                    have.len(),
                    want.len()
                ))
            }
            Err(e) => return Err(format!("afterwards {name} should exist: {e}")),
        }
    }
    for name in &after.absent {
        if root.join(name).exists() {
            return Err(format!("afterwards {name} should not exist"));
        }
    }
    Ok(())
}

fn run_in(serve: &Serve, conv: &Conversation, root: &Path) -> Result<(), String> {
    set_up(conv, root);
    run_one(serve.addr, conv, 1.0)?;
    // The connections are closed; the server may still be finishing with them.
    std::thread::sleep(Duration::from_millis(5));
    check_after(conv, root)
}

/// The key of the server a conversation needs.
fn server_key(conv: &Conversation) -> String {
    let allow = conv
        .app
        .as_ref()
        .map(|a| a.allow_exec.join(","))
        .unwrap_or_default();
    format!("{:?}|{}|{allow}", conv.config, conv.profile)
}

fn run_engine(engine: &str) {
    let dir = lhp_vectors::conversation::default_conversation_dir();
    let convs = lhp_conformance::conversation::load(&dir, &["app/".to_owned()])
        .expect("load the conversations");
    assert!(
        convs.len() >= 61,
        "{}: only {} app conversations",
        dir.display(),
        convs.len()
    );
    let mut groups: BTreeMap<String, Vec<&Conversation>> = BTreeMap::new();
    for c in convs.iter().filter(|c| c.role == "server") {
        groups.entry(server_key(c)).or_default().push(c);
    }
    let mut failures = Vec::new();
    let mut ran = 0;
    for group in groups.values() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        fs::create_dir_all(&root).expect("root");
        let mut shared = Serve::start(engine, group[0], &root);
        for conv in group {
            ran += 1;
            let Err(first) = run_in(&shared, conv, &root) else {
                continue;
            };
            eprintln!(
                "{engine}: {}: failed on the shared server ({first}); again on a fresh one",
                conv.id
            );
            drop(shared);
            set_up(conv, &root);
            shared = Serve::start(engine, conv, &root);
            if let Err(e) = run_in(&shared, conv, &root) {
                failures.push(format!("{engine}: {}: {e}", conv.id));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} app conversations failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{engine}: {ran} app conversations passed");
}

#[test]
fn app_conversations_on_the_tokio_engine() {
    run_engine("tokio");
}

#[test]
fn app_conversations_on_the_blocking_engine() {
    run_engine("blocking");
}
