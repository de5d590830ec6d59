//! The conversation runner and the `resources` group against real servers: the reference
//! echo server and the Python app server pass everything; each negative control fails its own
//! class of cases — by the conversations' `flags` — and nothing else (`spec/conformance.md`
//! §8). The assertion is driven by the files it runs: the harness's fixtures
//! (`tests/fixtures/conversations/`) always, and `spec/vectors/conversations/` when present.

use std::path::PathBuf;
use std::process::Command;

use lhp_conformance::conversation::{self, ConvOptions};
use lhp_conformance::runner::{GroupCase, ImplReport, Status};
use lhp_conformance::server::ServerOptions;
use lhp_conformance::suite::{run_server_suite, ServerSpec, Suite, SuiteOptions};
use lhp_vectors::conversation::{Conversation, Step};

fn python3() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: python3 is not available; the behaviour controls were not run");
    }
    ok
}

/// The tests here run servers with deadlines of a few hundred milliseconds on a machine that
/// may be busy: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    here().join("tests/fixtures/conversations")
}

/// The conversation sets to check: the fixtures, and the real files once they exist.
fn conversation_sets() -> Vec<(PathBuf, Vec<Conversation>)> {
    let mut sets = vec![(
        fixtures(),
        conversation::load(&fixtures(), &[]).expect("fixtures load"),
    )];
    let real = lhp_vectors::conversation::default_conversation_dir();
    let convs = conversation::load(&real, &[]).expect("spec/vectors/conversations loads");
    if !convs.is_empty() {
        sets.push((real, convs));
    }
    sets
}

fn reference(extra: &str) -> String {
    let script = here().join("controls/echo_reference.py");
    format!("python3 {} {{config_flags}} {extra}", script.display())
}

fn run(
    spec: &str,
    app: bool,
    convs: &[Conversation],
    resources: bool,
) -> (ImplReport, Vec<GroupCase>) {
    run_with_jobs(spec, app, convs, resources, ConvOptions::default().jobs)
}

/// [`run`] with `jobs` conversations at once.
fn run_with_jobs(
    spec: &str,
    app: bool,
    convs: &[Conversation],
    resources: bool,
    jobs: usize,
) -> (ImplReport, Vec<GroupCase>) {
    let suite = Suite {
        cases: Vec::new(),
        conversations: convs.to_vec(),
    };
    let opts = SuiteOptions {
        server: ServerOptions::default(),
        conv: ConvOptions {
            start_timeout: std::time::Duration::from_secs(30),
            jobs,
            ..ConvOptions::default()
        },
        resources,
    };
    let r = run_server_suite(&ServerSpec::Command(spec.into()), app, &suite, &opts)
        .expect("the server starts");
    (r, suite.group_cases())
}

fn failures(r: &ImplReport) -> Vec<String> {
    r.groups
        .iter()
        .filter(|g| g.status.is_fail())
        .map(|g| format!("{} {}: {}", g.status.name(), g.id, g.detail))
        .collect()
}

fn matches_class(flag: &str, class: &str) -> bool {
    match class.strip_suffix('*') {
        Some(prefix) => flag.starts_with(prefix),
        None => flag == class,
    }
}

#[test]
fn the_reference_echo_server_passes_every_conversation_and_the_resources() {
    if !python3() {
        return;
    }
    let _one_at_a_time = serial();
    for (dir, convs) in conversation_sets() {
        let (r, _) = run(&reference(""), false, &convs, true);
        assert_eq!(
            failures(&r),
            Vec::<String>::new(),
            "{}: the reference echo server must pass",
            dir.display()
        );
        let ran = r.groups.iter().filter(|g| g.status == Status::Pass).count();
        assert!(ran >= 7, "{}: only {ran} cases ran", dir.display());
    }
}

#[test]
fn the_python_app_server_passes_the_app_and_behaviour_groups() {
    if !python3() {
        return;
    }
    let _one_at_a_time = serial();
    let script = here().join("python/app_server.py");
    let cmd = format!(
        "python3 {} --root {{root}} {{allow_exec_flags}} {{config_flags}}",
        script.display()
    );
    for (dir, convs) in conversation_sets() {
        let (r, _) = run(&cmd, true, &convs, false);
        assert_eq!(failures(&r), Vec::<String>::new(), "{}", dir.display());
        assert!(
            r.groups
                .iter()
                .any(|g| g.id.starts_with("app/") && g.status == Status::Pass),
            "{}: no app conversation ran",
            dir.display()
        );
    }
}

/// Each control, the class of flags it must fail (a trailing `*` is a prefix).
const CONTROLS: [(&str, &str); 6] = [
    ("no-limit", "busy"),
    ("no-timeouts", "timeout-*"),
    ("preallocate", "memory"),
    ("no-error-frame", "error-frame"),
    ("keep-reading", "close-after-error"),
    ("reorder", "pipelining"),
];

/// Runs every control against `convs`, all at once with two conversations each: a
/// conversation spends nearly all its time waiting on the deadlines it tests, so running them
/// side by side cuts the wall time (this test was most of CI's) without crowding the two cores. Only the control whose class is
/// `memory` runs the `resources` group: the others cannot allocate differently from the
/// reference, and the group alone takes longer than their whole conversation set.
fn run_controls(
    convs: &[Conversation],
) -> Vec<(&'static str, &'static str, ImplReport, Vec<GroupCase>)> {
    let mut out = Vec::new();
    for chunk in CONTROLS.chunks(6) {
        std::thread::scope(|s| {
            let running: Vec<_> = chunk
                .iter()
                .map(|&(control, class)| {
                    s.spawn(move || {
                        // A server that keeps reading fails every close-after-error case by
                        // running out the wait, 5 s each by default: 2 s is enough to see it
                        // (the reference closes within its 250 ms linger) and keeps the test
                        // from spending minutes on waits.
                        let convs: Vec<Conversation> = if control == "keep-reading" {
                            convs.iter().cloned().map(shorter_end_waits).collect()
                        } else {
                            convs.to_vec()
                        };
                        let (r, cases) = run_with_jobs(
                            &reference(&format!("--break {control}")),
                            false,
                            &convs,
                            class == "memory",
                            // Its conversations spend their time waiting for an end that
                            // never comes, not on the CPU.
                            if control == "keep-reading" { 6 } else { 2 },
                        );
                        (control, class, r, cases)
                    })
                })
                .collect();
            for h in running {
                out.push(h.join().expect("a control run panicked"));
            }
        });
    }
    out
}

/// `c` with every `expect_end` that has no `within_ms` of its own given 2000 ms.
fn shorter_end_waits(mut c: Conversation) -> Conversation {
    for step in &mut c.steps {
        if let Step::ExpectEnd { within_ms, .. } = step {
            within_ms.get_or_insert(2000);
        }
    }
    c
}

#[test]
fn each_negative_control_fails_exactly_its_class() {
    if !python3() {
        return;
    }
    let _one_at_a_time = serial();
    // The spec's conversations when present, else the harness's fixtures: the controls are
    // the slowest test in CI, and the fixtures still run against the reference servers in the
    // tests above (their flags are checked here only when the spec's files are missing).
    let sets = conversation_sets();
    let Some((dir, convs)) = sets.last() else {
        panic!("no conversation set: the fixtures are always there");
    };
    for (control, class, r, cases) in run_controls(convs) {
        let flags_of = |id: &str| -> Vec<String> {
            cases
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.flags.clone())
                .unwrap_or_default()
        };
        let failed: Vec<_> = r.groups.iter().filter(|g| g.status.is_fail()).collect();
        assert!(
            !failed.is_empty(),
            "{}: control {control} failed nothing; it must fail the {class} cases",
            dir.display()
        );
        for g in &failed {
            let flags = flags_of(&g.id);
            assert!(
                flags.iter().any(|f| matches_class(f, class)),
                "{}: control {control} failed {} (flags {flags:?}), outside its class \
                 {class}: {}",
                dir.display(),
                g.id,
                g.detail
            );
        }
    }
}

/// A server that keeps reading after a fatal error and whose own idle timeout equals the
/// conversation's `within_ms` must still fail: the bound comes from the case's configuration.
#[test]
fn the_close_bound_cannot_be_met_by_the_servers_own_idle_timeout() {
    if !python3() {
        return;
    }
    let _one_at_a_time = serial();
    let c: Conversation = serde_json::from_str(
        r#"{"id":"behaviour/x","spec":"7.2","flags":["close-after-error"],"description":"d",
            "config":{"idle_timeout_ms":1000},
            "steps":[{"send":0,"hex":"0001000100"},
                     {"expect":0,"frames":[{"header":{"kind":"error","code":"header_len_too_large",
                        "message":{"$any":"string"},"offset":0}}]},
                     {"expect_end":0,"within_ms":1000}]}"#,
    )
    .unwrap();
    let (good, _) = run(&reference(""), false, std::slice::from_ref(&c), false);
    assert_eq!(failures(&good), Vec::<String>::new());
    let (bad, _) = run(
        &reference("--break keep-reading"),
        false,
        std::slice::from_ref(&c),
        false,
    );
    let f = failures(&bad);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].contains("keeps reading"), "{f:?}");
}

/// `--server-cmd` runs `sh -c COMMAND`: a compound command works, and one that exits says so.
#[test]
fn server_commands_are_shell_command_lines() {
    if !python3() {
        return;
    }
    let _one_at_a_time = serial();
    let controls = here().join("controls");
    let cmd = format!(
        "cd {} && python3 echo_reference.py {{config_flags}}",
        controls.display()
    );
    let convs = conversation::load(&fixtures(), &["behaviour/echo-verbatim".into()]).unwrap();
    let (r, _) = run(&cmd, false, &convs, false);
    assert_eq!(failures(&r), Vec::<String>::new());
    assert_eq!(r.groups.len(), 1);
    let suite = Suite {
        cases: lhp_conformance::load_cases(&lhp_vectors::default_dir(), &["framing/h-2".into()])
            .unwrap(),
        conversations: Vec::new(),
    };
    let e = run_server_suite(
        &ServerSpec::Command(format!(
            "cd {} && python3 no_such_server.py",
            controls.display()
        )),
        false,
        &suite,
        &SuiteOptions::default(),
    )
    .unwrap_err();
    assert!(e.contains("the server exited (exit status: 2)"), "{e}");
}

#[test]
fn fixtures_are_what_gen_py_writes() {
    if !python3() {
        return;
    }
    let _one_at_a_time = serial();
    let tmp = tempfile::tempdir().unwrap();
    let gen = fixtures().join("gen.py");
    let copy = tmp.path().join("gen.py");
    std::fs::copy(&gen, &copy).unwrap();
    let ok = Command::new("python3").arg(&copy).status().unwrap();
    assert!(ok.success());
    for f in ["behaviour.json", "app.json"] {
        let want = std::fs::read_to_string(fixtures().join(f)).unwrap();
        let got = std::fs::read_to_string(tmp.path().join(f)).unwrap();
        assert!(
            want.replace("\r\n", "\n") == got,
            "{f} is stale: run python3 conformance/tests/fixtures/conversations/gen.py"
        );
    }
}

/// `stop_reading`: a server must give up a write that makes no progress for `write_timeout`
/// (and close), and one without that deadline fails. The echo is 16 MiB so that it cannot fit
/// in the socket buffers of a harness that stopped reading (4 KiB receive buffer).
#[test]
fn a_client_that_stops_reading_meets_the_write_timeout() {
    if !python3() {
        return;
    }
    let _one_at_a_time = serial();
    let len = 16usize << 20;
    let header = format!(r#"{{"kind":"echo","body_len":{len}}}"#);
    let mut frame = (header.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(header.as_bytes());
    frame.resize(frame.len() + len, 0x61);
    let c: Conversation = serde_json::from_value(serde_json::json!({
        "id": "behaviour/write-timeout", "spec": "11.2", "flags": ["timeout-write"],
        "description": "the harness stops reading a 16 MiB echo",
        "config": {"write_timeout_ms": 300, "read_timeout_ms": 5000},
        "steps": [{"stop_reading": 0}, {"send": 0, "hex": hex::encode(&frame)},
                  {"wait_ms": 2000}, {"expect_end": 0, "within_ms": 2000}]
    }))
    .unwrap();
    let (good, _) = run(&reference(""), false, std::slice::from_ref(&c), false);
    assert_eq!(failures(&good), Vec::<String>::new());
    let (bad, _) = run(
        &reference("--break no-timeouts"),
        false,
        std::slice::from_ref(&c),
        false,
    );
    let f = failures(&bad);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].contains("still open"), "{f:?}");
}

/// `--server ADDR`: a server the harness did not start runs the conversations that need no
/// settings; the others are skipped with the reason.
#[test]
fn a_running_server_gets_the_conversations_that_need_no_settings() {
    if !python3() {
        return;
    }
    let _one_at_a_time = serial();
    let convs = conversation::load(&fixtures(), &["behaviour/".into()]).unwrap();
    let server = lhp_conformance::process::ServerProcess::start(
        &reference("").replace("{config_flags}", ""),
        &[],
        std::time::Duration::from_secs(30),
    )
    .unwrap();
    let suite = Suite {
        cases: Vec::new(),
        conversations: convs.clone(),
    };
    let r = run_server_suite(
        &ServerSpec::Addr(server.addr),
        false,
        &suite,
        &SuiteOptions::default(),
    )
    .unwrap();
    assert_eq!(failures(&r), Vec::<String>::new());
    for c in &convs {
        let got = r.group_result(&c.id).unwrap();
        let needs = c.config != Default::default();
        let want = if needs { Status::Skipped } else { Status::Pass };
        assert_eq!(got.status, want, "{}: {}", c.id, got.detail);
    }
    assert!(r.groups.iter().any(|g| g.status == Status::Pass));
    assert!(r.groups.iter().any(|g| g.status == Status::Skipped));
}
