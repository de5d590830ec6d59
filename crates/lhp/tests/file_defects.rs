//! Issue 16's defects in `lhp get`/`lhp serve`, each as the user met it, on both engines:
//! a refused `get` leaves no partial file; a full disk answers `no_space` and frees what the
//! upload took; stale partial uploads are swept by a retention policy that `--resume` lives
//! within; `get`/`stat` of a FIFO or a directory is `bad_name`.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use common::{lhp, on_both_engines, serve_cmd, sha256_hex, Serve};

fn serve(engine: &str, root: &Path, args: &[&str]) -> Serve {
    let mut cmd = serve_cmd(engine);
    cmd.arg("--root").arg(root).args(args);
    Serve::start(cmd)
}

/// `lhp SUB --addr ADDR REST...` run in `dir`.
fn client_in(s: &Serve, dir: &Path, args: &[&str]) -> Output {
    let (sub, rest) = args.split_first().expect("a subcommand");
    lhp()
        .current_dir(dir)
        .arg(sub)
        .args(["--addr", &s.addr])
        .args(rest)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every entry of `dir`, hidden ones included, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Sends one body-less LHP/1 request and returns the reply's header.
fn request(addr: &str, header: &str) -> serde_json::Value {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut wire = (header.len() as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(header.as_bytes());
    tcp.write_all(&wire).unwrap();
    let mut len = [0u8; 4];
    tcp.read_exact(&mut len).unwrap();
    let mut h = vec![0u8; u32::from_be_bytes(len) as usize];
    tcp.read_exact(&mut h).unwrap();
    serde_json::from_slice(&h).unwrap()
}

/// The hidden name the server keeps a partial upload of `file_name` under.
fn partial_name(file_name: &str) -> String {
    format!(".lhp-partial-{}", &sha256_hex(file_name.as_bytes())[..32])
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

on_both_engines!(
    refused_get_leaves_no_partial_file,
    no_space_answers_no_space_and_frees_the_upload,
    stale_partials_are_swept_and_resume_works_within_the_policy,
    get_and_stat_of_a_fifo_or_directory_is_bad_name,
);

/// Issue 16 defect 1.
fn refused_get_leaves_no_partial_file(engine: &str) {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let s = serve(engine, root.path(), &[]);
    let child = local.path().join("child");
    fs::create_dir(&child).unwrap();

    let out = client_in(&s, &child, &["get", "missing.txt"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not_found"), "{}", stderr(&out));
    assert_eq!(entries(&child), Vec::<String>::new(), "get missing.txt");

    let out = client_in(&s, &child, &["get", "missing.txt", "-o", "out.bin"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(entries(&child), Vec::<String>::new(), "get -o out.bin");

    for name in ["..", "sub/", "."] {
        let out = client_in(&s, &child, &["get", name]);
        assert_ne!(out.status.code(), Some(0), "get {name:?}: {}", stderr(&out));
        assert_eq!(
            entries(&child),
            Vec::<String>::new(),
            "get {name:?} in child"
        );
        assert_eq!(
            entries(local.path()),
            vec!["child".to_owned()],
            "get {name:?} wrote outside the output's directory"
        );
    }

    // An accepted get still works, and leaves only the file.
    fs::write(root.path().join("there.txt"), b"hello").unwrap();
    let out = client_in(&s, &child, &["get", "there.txt"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(entries(&child), vec!["there.txt".to_owned()]);
    assert_eq!(fs::read(child.join("there.txt")).unwrap(), b"hello");
}

/// Whether this machine lets us mount a tmpfs in a private mount namespace.
fn tmpfs_available() -> bool {
    let probe = tempfile::tempdir().unwrap();
    Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs \"$0\""])
        .arg(probe.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Issue 16 defect 2, on a real full file system: a 2 MiB tmpfs mounted over the root in a
/// private mount namespace (`unshare -rm`), so the test sees only what the protocol shows.
fn no_space_answers_no_space_and_frees_the_upload(engine: &str) {
    if !tmpfs_available() {
        eprintln!(
            "SKIP no_space_answers_no_space_and_frees_the_upload: `unshare -rm` + tmpfs mount \
             is not available here"
        );
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-rm",
        "sh",
        "-c",
        "mount -t tmpfs -o size=2m tmpfs \"$0\" && exec \"$1\" serve --engine \"$2\" \
         --addr 127.0.0.1:0 --root \"$0\"",
    ])
    .arg(root.path())
    .arg(env!("CARGO_BIN_EXE_lhp"))
    .arg(engine)
    .stderr(Stdio::null());
    let s = Serve::start(cmd);

    let huge = local.path().join("huge.bin");
    fs::write(&huge, data(3 << 20, 5)).unwrap();
    let out = client_in(&s, local.path(), &["put", huge.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no_space"), "{}", stderr(&out));
    let st = request(&s.addr, r#"{"kind":"stat","name":"huge.bin"}"#);
    assert_eq!(
        st["partial"], 0,
        "the failed upload's partial is freed: {st}"
    );
    assert_eq!(st["size"], serde_json::Value::Null, "{st}");

    // The space is free again: a file that fits is stored.
    let small = local.path().join("small.bin");
    let content = data(1 << 20, 6);
    fs::write(&small, &content).unwrap();
    let out = client_in(&s, local.path(), &["put", small.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let back = local.path().join("back.bin");
    let out = client_in(
        &s,
        local.path(),
        &["get", "small.bin", "-o", back.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(&back).unwrap(), content);
}

/// Issue 16 defect 3: at startup the server deletes partial uploads older than
/// `--partial-max-age`, then the oldest ones beyond `--partial-max-total`; a partial within
/// the policy survives and `put --resume` continues it.
fn stale_partials_are_swept_and_resume_works_within_the_policy(engine: &str) {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let content = data(300_000, 7);
    let now = SystemTime::now();
    let put_partial = |name: &str, len: usize, age: Duration| {
        let p = root.path().join(partial_name(name));
        fs::write(&p, &content[..len]).unwrap();
        let f = fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(now - age).unwrap();
        p
    };
    let stale = put_partial("stale.bin", 1000, Duration::from_secs(3 * 3600));
    let older = put_partial("older.bin", 150_000, Duration::from_secs(600));
    let fresh = put_partial("fresh.bin", 100_000, Duration::from_secs(60));
    let s = serve(
        engine,
        root.path(),
        &["--partial-max-age", "3600", "--partial-max-total", "200000"],
    );
    assert!(!stale.exists(), "older than --partial-max-age: deleted");
    assert!(
        !older.exists(),
        "the oldest beyond --partial-max-total: deleted"
    );
    assert!(fresh.exists(), "within the policy: kept");

    let src = local.path().join("fresh.bin");
    fs::write(&src, &content).unwrap();
    let out = client_in(
        &s,
        local.path(),
        &["put", src.to_str().unwrap(), "--resume"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("resumed from 100000"), "{text}");
    assert_eq!(fs::read(root.path().join("fresh.bin")).unwrap(), content);
    assert_eq!(entries(root.path()), vec!["fresh.bin".to_owned()]);
}

/// Issue 16 defect 4: §10.8 says a non-regular file is `bad_name`, for `get` and `stat` as
/// for `put`.
fn get_and_stat_of_a_fifo_or_directory_is_bad_name(engine: &str) {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("dir")).unwrap();
    let fifo = std::ffi::CString::new(root.path().join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let s = serve(engine, root.path(), &[]);
    for name in ["fifo", "dir"] {
        let out = client_in(&s, local.path(), &["get", name, "-o", "x"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("bad_name"),
            "get {name}: {}",
            stderr(&out)
        );
        let h = request(&s.addr, &format!(r#"{{"kind":"stat","name":"{name}"}}"#));
        assert_eq!(h["code"], "bad_name", "stat {name}: {h}");
        let h = request(&s.addr, &format!(r#"{{"kind":"get","name":"{name}"}}"#));
        assert_eq!(h["code"], "bad_name", "get {name}: {h}");
    }
    assert_eq!(entries(local.path()), Vec::<String>::new());
}

/// Issue 16 defect 3, the rule a sweep must never break: the partial file of an upload in
/// progress stays, however old and whatever the total; once the upload is abandoned, it goes.
#[test]
fn sweep_never_deletes_the_partial_of_an_upload_in_progress() {
    use lhp::files::{FileService, Retention, Route, ServeOptions};

    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let opts = ServeOptions {
        root: Some(root.clone()),
        retention: Retention {
            max_age: Duration::from_secs(60),
            max_total: 0,
        },
        ..ServeOptions::default()
    };
    let service = FileService::new(&opts).unwrap();
    let mut head = lhp_codec::Header::with_kind("put");
    head.set_name("busy.bin");
    head.insert("trailer", "file_sha256");
    head.set_body_len(1000);
    let Ok(Route::Put(plan)) = service.route(&head) else {
        panic!("a put route");
    };
    let mut upload = service.begin_upload(&plan).unwrap();
    upload.write(&[1u8; 500]).unwrap();
    fs::write(root.join(partial_name("gone.bin")), [0u8; 10]).unwrap();

    let later = SystemTime::now() + Duration::from_secs(3600);
    let sweep = service.sweep_partials(later);
    assert_eq!((sweep.removed, sweep.kept), (1, 1), "{sweep:?}");
    assert_eq!(sweep.kept_octets, 500);
    assert!(root.join(partial_name("busy.bin")).exists());
    assert!(!root.join(partial_name("gone.bin")).exists());

    drop(upload);
    let sweep = service.sweep_partials(later);
    assert_eq!(
        (sweep.removed, sweep.freed),
        (1, 500),
        "abandoned now: {sweep:?}"
    );
    assert_eq!(entries(&root), Vec::<String>::new());
}
