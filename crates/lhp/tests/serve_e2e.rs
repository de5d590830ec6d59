//! `lhp serve` with `lhp put/get/ls/exec` over loopback, as the built binaries.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{lhp, on_both_engines, seed_frame, serve_cmd, sha256_hex, Serve};

fn serve(engine: &str, args: &[&str]) -> Serve {
    let mut cmd = serve_cmd(engine);
    cmd.args(args);
    let s = Serve::start(cmd);
    assert!(s.addr.starts_with("127.0.0.1:"), "{}", s.addr);
    s
}

fn client(s: &Serve, args: &[&str]) -> Output {
    // `--addr` right after the subcommand: after `exec --` it would be part of argv.
    let (sub, rest) = args.split_first().expect("a subcommand");
    let mut cmd: Command = lhp();
    cmd.arg(sub).args(["--addr", &s.addr]).args(rest);
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn visible(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32) as u8
                ^ seed
        })
        .collect()
}

/// Raw LHP/1 frame bytes.
fn frame(header: &str, body: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(body);
    v
}

on_both_engines!(
    put_get_ls_round_trip_and_exists_rule,
    interrupted_upload_leaves_nothing_visible_and_resume_completes_it,
    digest_mismatch_is_rejected_and_stores_nothing,
    traversal_and_symlink_escapes_are_refused,
    exec_is_off_unless_allowed_and_never_uses_a_shell,
    exec_time_limit_kills_the_program,
    concurrent_uploads_of_one_name_never_mix,
    seed_compat_serve_stores_the_seed_upload_safely,
    echo_without_root_and_clean_exit_on_sigterm,
);

fn put_get_ls_round_trip_and_exists_rule(engine: &str) {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let s = serve(engine, &["--root", root.path().to_str().unwrap()]);
    fs::create_dir(root.path().join("sub")).unwrap();
    let src = local.path().join("a.bin");
    let content = data(3 << 20, 1);
    fs::write(&src, &content).unwrap();

    let out = client(&s, &["put", src.to_str().unwrap(), "--as", "sub/澳门.bin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&sha256_hex(&content)));
    assert_eq!(fs::read(root.path().join("sub/澳门.bin")).unwrap(), content);

    // Same name again without --replace: refused, file untouched.
    fs::write(&src, b"other").unwrap();
    let out = client(&s, &["put", src.to_str().unwrap(), "--as", "sub/澳门.bin"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("exists"), "{}", stderr(&out));
    assert_eq!(fs::read(root.path().join("sub/澳门.bin")).unwrap(), content);
    let out = client(
        &s,
        &[
            "put",
            src.to_str().unwrap(),
            "--as",
            "sub/澳门.bin",
            "--replace",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read(root.path().join("sub/澳门.bin")).unwrap(),
        b"other"
    );

    let dst = local.path().join("copy.bin");
    let out = client(&s, &["get", "sub/澳门.bin", "-o", dst.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(&dst).unwrap(), b"other");
    let out = client(&s, &["get", "nope", "-o", dst.to_str().unwrap()]);
    assert!(stderr(&out).contains("not_found"), "{}", stderr(&out));

    let out = client(&s, &["ls"]);
    assert!(out.status.success());
    let ls = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(ls.contains("sub/澳门.bin") && ls.contains("5"), "{ls}");
    assert_eq!(ls.lines().count(), 1, "{ls}");
}

fn interrupted_upload_leaves_nothing_visible_and_resume_completes_it(engine: &str) {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let s = serve(engine, &["--root", root.path().to_str().unwrap()]);
    let content = data(4 << 20, 2);
    let digest = sha256_hex(&content);
    let half = content.len() / 2 + 12345;
    {
        let mut tcp = TcpStream::connect(&s.addr).unwrap();
        let header = format!(
            r#"{{"kind":"put","name":"big.bin","sha256":"{digest}","body_len":{}}}"#,
            content.len()
        );
        let mut wire = frame(&header, &[]);
        wire.extend_from_slice(&content[..half]);
        tcp.write_all(&wire).unwrap();
        // The connection dies mid-body.
    }
    // Nothing visible; the server keeps the hidden partial (wait for it to see the end).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = client(&s, &["ls"]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "",
            "listing after a broken upload"
        );
        assert_eq!(visible(root.path()), Vec::<String>::new());
        let partial: u64 = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".lhp-partial-"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        if partial == half as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partial has {partial} of {half} octets"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let src = local.path().join("big.bin");
    fs::write(&src, &content).unwrap();
    let mut out = client(&s, &["put", src.to_str().unwrap(), "--resume"]);
    // The broken connection's handler may still hold the name for a moment.
    for _ in 0..50 {
        if !stderr(&out).contains("in_use") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        out = client(&s, &["put", src.to_str().unwrap(), "--resume"]);
    }
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(&format!("resumed from {half}")), "{text}");
    assert_eq!(
        sha256_hex(&fs::read(root.path().join("big.bin")).unwrap()),
        digest
    );
    assert_eq!(
        fs::read_dir(root.path()).unwrap().count(),
        1,
        "the partial file is gone"
    );

    // get --resume: a partial download continues from where it stopped.
    let dst = local.path().join("down.bin");
    fs::write(local.path().join(".down.bin.lhp-partial"), &content[..1000]).unwrap();
    let out = client(
        &s,
        &["get", "big.bin", "-o", dst.to_str().unwrap(), "--resume"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("resumed from 1000"));
    assert_eq!(fs::read(&dst).unwrap(), content);
    // A corrupt partial download is caught by the whole-file digest and discarded.
    fs::write(local.path().join(".down2.bin.lhp-partial"), vec![0u8; 1000]).unwrap();
    let out = client(
        &s,
        &[
            "get",
            "big.bin",
            "-o",
            local.path().join("down2.bin").to_str().unwrap(),
            "--resume",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("digest mismatch"), "{}", stderr(&out));
    assert!(!local.path().join("down2.bin").exists());
}

fn digest_mismatch_is_rejected_and_stores_nothing(engine: &str) {
    let root = tempfile::tempdir().unwrap();
    let s = serve(engine, &["--root", root.path().to_str().unwrap()]);
    let body = b"the real body";
    let wrong = sha256_hex(b"something else");
    let mut tcp = TcpStream::connect(&s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(&frame(
        &format!(
            r#"{{"kind":"put","name":"x.txt","sha256":"{wrong}","body_len":{}}}"#,
            body.len()
        ),
        body,
    ))
    .unwrap();
    let mut reply = Vec::new();
    tcp.read_to_end(&mut reply).unwrap();
    let out = common::run(&["decode"], &reply);
    let lines = common::json_lines(&out);
    assert_eq!(lines[0]["header"]["kind"], "error");
    assert_eq!(lines[0]["header"]["code"], "digest_mismatch");
    // Resume form: a wrong file_sha256 is caught by the server itself; connection kept.
    let mut tcp = TcpStream::connect(&s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(&frame(
        &format!(
            r#"{{"kind":"put","name":"x.txt","offset":0,"file_sha256":"{wrong}","body_len":{}}}"#,
            body.len()
        ),
        body,
    ))
    .unwrap();
    let mut head = [0u8; 4];
    tcp.read_exact(&mut head).unwrap();
    let mut h = vec![0u8; u32::from_be_bytes(head) as usize];
    tcp.read_exact(&mut h).unwrap();
    let h: serde_json::Value = serde_json::from_slice(&h).unwrap();
    assert_eq!(h["code"], "file_digest_mismatch", "{h}");
    assert_eq!(
        fs::read_dir(root.path()).unwrap().count(),
        0,
        "nothing stored, no partial kept"
    );
}

fn traversal_and_symlink_escapes_are_refused(engine: &str) {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"secret").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("link")).unwrap();
    let s = serve(engine, &["--root", root.path().to_str().unwrap()]);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("f");
    fs::write(&src, b"payload").unwrap();
    let dst = local.path().join("out");
    for name in [
        "../../etc/passwd",
        "/etc/passwd",
        "escape/secret",
        "link",
        "a//b",
        "escape/../link",
    ] {
        let out = client(&s, &["get", name, "-o", dst.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "get {name}");
        assert!(
            stderr(&out).contains("bad_name"),
            "get {name}: {}",
            stderr(&out)
        );
        let out = client(
            &s,
            &["put", src.to_str().unwrap(), "--as", name, "--replace"],
        );
        assert!(
            stderr(&out).contains("bad_name"),
            "put {name}: {}",
            stderr(&out)
        );
    }
    assert!(!dst.exists());
    assert_eq!(fs::read(outside.path().join("secret")).unwrap(), b"secret");
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
}

fn exec_is_off_unless_allowed_and_never_uses_a_shell(engine: &str) {
    let root = tempfile::tempdir().unwrap();
    let s = serve(engine, &["--root", root.path().to_str().unwrap()]);
    let out = client(&s, &["exec", "--", "echo", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("exec_denied"), "{}", stderr(&out));
    drop(s);

    let s = serve(
        engine,
        &[
            "--root",
            root.path().to_str().unwrap(),
            "--allow-exec",
            "echo",
            "--allow-exec",
            "ls",
        ],
    );
    let out = client(&s, &["exec", "--", "echo", "$(id);ls", "`id`", "a|b>c"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "$(id);ls `id` a|b>c\n"
    );
    assert_eq!(
        fs::read_dir(root.path()).unwrap().count(),
        0,
        "no redirection happened"
    );
    // Not allowed: a shell, or a path to an allowed program.
    for argv in [&["sh", "-c", "id"][..], &["/bin/echo", "x"][..]] {
        let mut args = vec!["exec", "--"];
        args.extend_from_slice(argv);
        let out = client(&s, &args);
        assert!(
            stderr(&out).contains("exec_denied"),
            "{argv:?}: {}",
            stderr(&out)
        );
    }
    // stdout and stderr kept apart; the exit code comes back.
    let out = client(&s, &["exec", "--", "ls", "/nonexistent-lhp-dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("nonexistent-lhp-dir"),
        "{}",
        stderr(&out)
    );
}

fn exec_time_limit_kills_the_program(engine: &str) {
    if common_missing("sleep") {
        return;
    }
    let s = serve(engine, &["--allow-exec", "sleep", "--exec-timeout", "1"]);
    let t = Instant::now();
    let out = client(&s, &["exec", "--", "sleep", "30"]);
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(128 + 9));
    assert!(stderr(&out).contains("time limit"), "{}", stderr(&out));
}

fn common_missing(program: &str) -> bool {
    if lhp::demo::find_program(program).is_none() {
        eprintln!("SKIPPED: no `{program}` on PATH");
        return true;
    }
    false
}

fn concurrent_uploads_of_one_name_never_mix(engine: &str) {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let s = serve(engine, &["--root", root.path().to_str().unwrap()]);
    let a = data(6 << 20, 3);
    let b = data(6 << 20, 4);
    fs::write(local.path().join("a"), &a).unwrap();
    fs::write(local.path().join("b"), &b).unwrap();
    for round in 0..3 {
        let name = format!("same{round}.bin");
        let runs: Vec<_> = ["a", "b"]
            .iter()
            .map(|f| {
                let path = local.path().join(f);
                let addr = s.addr.clone();
                let name = name.clone();
                std::thread::spawn(move || {
                    lhp()
                        .args([
                            "put",
                            path.to_str().unwrap(),
                            "--as",
                            &name,
                            "--replace",
                            "--addr",
                            &addr,
                        ])
                        .output()
                        .unwrap()
                })
            })
            .collect();
        let outs: Vec<Output> = runs.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(
            outs.iter().any(|o| o.status.success()),
            "round {round}: neither upload succeeded"
        );
        for o in outs.iter().filter(|o| !o.status.success()) {
            assert!(stderr(o).contains("in_use"), "round {round}: {}", stderr(o));
        }
        let stored = fs::read(root.path().join(&name)).unwrap();
        assert!(stored == a || stored == b, "round {round}: a mixed file");
    }
}

fn seed_compat_serve_stores_the_seed_upload_safely(engine: &str) {
    let root = tempfile::tempdir().unwrap();
    let s = serve(
        engine,
        &[
            "--root",
            root.path().to_str().unwrap(),
            "--profile",
            "seed-compat",
        ],
    );
    let body = data(300_000, 5);
    for (name, ok) in [("澳门最大线上赌场开业啦.mp4", true), ("../evil.mp4", false)] {
        let header = common::py_dumps(&[
            ("file_name", common::Py::Str(name)),
            ("file_size", common::Py::Int(body.len() as i64)),
        ]);
        let mut tcp = TcpStream::connect(&s.addr).unwrap();
        // The seed client's writes: prefix, header, then the file line by line.
        let wire = seed_frame(&header, &body);
        for piece in wire.chunks(1024) {
            tcp.write_all(piece).unwrap();
        }
        drop(tcp);
        if ok {
            let path = root.path().join(name);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !path.exists() {
                assert!(Instant::now() < deadline, "seed upload not stored");
                std::thread::sleep(Duration::from_millis(20));
            }
            assert_eq!(fs::read(&path).unwrap(), body);
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        visible(root.path()),
        vec!["澳门最大线上赌场开业啦.mp4".to_owned()]
    );
    assert!(!root.path().parent().unwrap().join("evil.mp4").exists());
}

fn echo_without_root_and_clean_exit_on_sigterm(engine: &str) {
    let mut s = serve(engine, &[]);
    let mut tcp = TcpStream::connect(&s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let f = frame(r#"{"kind":"echo","id":7,"x":"澳","body_len":4}"#, b"body");
    tcp.write_all(&f).unwrap();
    let mut back = vec![0u8; f.len()];
    tcp.read_exact(&mut back).unwrap();
    assert_eq!(back, f);
    drop(tcp);
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "lhp serve did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn demo_exits_zero() {
    if common_missing("seq") {
        return;
    }
    let out = lhp().arg("demo").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("every step checked out"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}
