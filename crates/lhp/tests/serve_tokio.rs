//! The tokio engine's file service in process (`lhp::tokio_serve`): streamed `exec` output,
//! `get` from an offset, `stat`, and request-level errors that keep the connection open.
//! The CLI scenarios run on both engines in `serve_e2e.rs`.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use lhp::app;
use lhp::files::ServeOptions;
use lhp_codec::{Frame, Header};
use lhp_tokio::{CancellationToken, FrameReader, FrameWriter};
use sha2::{Digest, Sha256};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

struct Running {
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
    reader: FrameReader<OwnedReadHalf>,
    writer: FrameWriter<OwnedWriteHalf>,
}

impl Running {
    async fn start(root: Option<&Path>, allow_exec: &[&str]) -> Running {
        let opts = ServeOptions {
            root: root.map(Path::to_path_buf),
            allow_exec: allow_exec.iter().map(|s| (*s).to_owned()).collect(),
            exec_timeout: Duration::from_secs(10),
            ..ServeOptions::default()
        };
        let server =
            lhp::tokio_serve::bind("127.0.0.1:0", &opts, lhp::serve::default_config(&opts))
                .expect("bind");
        let (addr, stop) = (server.local_addr(), server.shutdown_token());
        let task = tokio::spawn(server.run());
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let (rd, wr) = tcp.into_split();
        Running {
            stop,
            task,
            reader: FrameReader::new(rd),
            writer: FrameWriter::new(wr),
        }
    }

    async fn send(&mut self, header: Header, body: &[u8]) {
        let frame = Frame::new(header, Bytes::copy_from_slice(body));
        self.writer.write_frame(&frame).await.expect("send");
    }

    async fn recv(&mut self) -> Frame {
        timeout(LIMIT, self.reader.read_frame())
            .await
            .expect("a reply in time")
            .expect("a valid frame")
            .expect("not the end of the stream")
    }

    async fn stop(self) {
        self.stop.cancel();
        timeout(LIMIT, self.task)
            .await
            .expect("the server stops")
            .expect("join")
            .expect("run");
    }
}

fn str_of<'a>(f: &'a Frame, member: &str) -> Option<&'a str> {
    f.header.get(member).and_then(|v| v.as_str())
}

fn u64_of(f: &Frame, member: &str) -> Option<u64> {
    f.header.get(member).and_then(|v| v.as_u64())
}

#[tokio::test]
async fn exec_streams_large_output_in_chunks_and_keeps_stderr_apart() {
    let (Some(_), Some(_)) = (
        lhp::demo::find_program("seq"),
        lhp::demo::find_program("ls"),
    ) else {
        eprintln!("SKIPPED: `seq` or `ls` is not on PATH");
        return;
    };
    let mut s = Running::start(None, &["seq", "ls"]).await;

    // About 2.3 MB of output: many `output` frames, none larger than the chunk size.
    let mut h = app::exec(&["seq", "1", "350000"]);
    h.set_id(5);
    s.send(h, b"").await;
    let mut stdout = Vec::new();
    let mut frames = 0;
    let exit = loop {
        let f = s.recv().await;
        assert_eq!(f.header.id(), Some(5));
        match f.header.kind() {
            Some(app::OUTPUT) => {
                assert_eq!(str_of(&f, "stream"), Some("stdout"));
                assert!(f.body.len() <= lhp::exec::OUTPUT_CHUNK);
                stdout.extend_from_slice(&f.body);
                frames += 1;
            }
            Some(app::EXIT) => break f,
            other => panic!("unexpected reply {other:?}: {:?}", f.header),
        }
    };
    let expected: String = (1..=350_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(stdout.len(), expected.len());
    assert!(stdout == expected.as_bytes(), "the output differs");
    assert!(frames >= 2, "{frames} output frames for 2.3 MB");
    assert_eq!(u64_of(&exit, "code"), Some(0));
    assert_eq!(
        exit.header.get("timed_out").and_then(|v| v.as_bool()),
        Some(false)
    );

    // A failing program: its complaint arrives on stderr, its status in `exit`.
    s.send(app::exec(&["ls", "/nonexistent-lhp-test-path"]), b"")
        .await;
    let mut stderr = Vec::new();
    let exit = loop {
        let f = s.recv().await;
        match f.header.kind() {
            Some(app::OUTPUT) => {
                assert_eq!(str_of(&f, "stream"), Some("stderr"), "{:?}", f.header);
                stderr.extend_from_slice(&f.body);
            }
            Some(app::EXIT) => break f,
            other => panic!("unexpected reply {other:?}: {:?}", f.header),
        }
    };
    assert!(!stderr.is_empty());
    assert_ne!(u64_of(&exit, "code"), Some(0));
    s.stop().await;
}

#[tokio::test]
async fn get_from_an_offset_streams_the_tail_with_the_whole_files_digest() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut s = Running::start(Some(root.path()), &[]).await;
    let content: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let digest = hex::encode(Sha256::digest(&content));

    let mut h = app::put("d/x.bin", content.len() as u64, &digest, None);
    h.set_id(1);
    s.send(h, &content).await;
    let f = s.recv().await;
    // `d` does not exist: a request error (§7.2), with the request's id and no `offset`
    // (an `offset` would mark a connection error).
    assert_eq!(f.header.kind(), Some(app::ERROR), "{:?}", f.header);
    assert_eq!(f.header.id(), Some(1));
    assert_eq!(str_of(&f, "code"), Some("not_found"));
    assert_eq!(f.header.get("offset"), None);

    std::fs::create_dir(root.path().join("d")).expect("mkdir");
    s.send(
        app::put("d/x.bin", content.len() as u64, &digest, None),
        &content,
    )
    .await;
    let f = s.recv().await;
    assert_eq!(f.header.kind(), Some(app::OK), "{:?}", f.header);
    assert_eq!(str_of(&f, "file_sha256"), Some(digest.as_str()));
    assert_eq!(
        std::fs::read(root.path().join("d/x.bin")).expect("stored"),
        content
    );

    s.send(app::stat("d/x.bin"), b"").await;
    let f = s.recv().await;
    assert_eq!(u64_of(&f, "size"), Some(content.len() as u64));
    assert_eq!(u64_of(&f, "partial"), Some(0));

    let offset = 123_457usize;
    s.send(app::get("d/x.bin", Some(offset as u64)), b"").await;
    let f = s.recv().await;
    assert_eq!(f.header.kind(), Some(app::FILE), "{:?}", f.header);
    assert_eq!(u64_of(&f, "offset"), Some(offset as u64));
    assert_eq!(str_of(&f, "file_sha256"), Some(digest.as_str()));
    assert!(&f.body[..] == content.get(offset..).expect("tail"));

    // A traversal on the same connection: refused, and the connection still answers.
    s.send(app::get("../etc/passwd", None), b"").await;
    let f = s.recv().await;
    assert_eq!(str_of(&f, "code"), Some("bad_name"), "{:?}", f.header);
    s.send(app::get("d/x.bin", None), b"").await;
    let f = s.recv().await;
    assert_eq!(f.body.len(), content.len());
    assert!(
        f.header.sha256().is_some(),
        "a whole-file get carries sha256"
    );
    s.stop().await;
}

/// Whether process `pid` is still running (a zombie waiting to be reaped is not).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: `pid (comm) S ...`.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn shutdown_during_exec_kills_the_whole_process_group() {
    let (Some(_), Some(_)) = (
        lhp::demo::find_program("sh"),
        lhp::demo::find_program("sleep"),
    ) else {
        eprintln!("SKIPPED: `sh` or `sleep` is not on PATH");
        return;
    };
    let mut s = Running::start(None, &["sh"]).await;
    // The shell starts a grandchild in its process group, says its pid, and waits for it.
    let mut h = app::exec(&["sh", "-c", "sleep 300 & echo $!; wait"]);
    h.set_id(9);
    s.send(h, b"").await;
    let f = s.recv().await;
    assert_eq!(f.header.kind(), Some(app::OUTPUT), "{:?}", f.header);
    let pid: u32 = std::str::from_utf8(&f.body)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("a pid, not {:?}", f.body));
    assert!(
        running(pid),
        "the grandchild {pid} runs while the exec does"
    );
    // The exec outlives the 5 s shutdown grace: the server drops it, and with it the group.
    s.stop().await;
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while running(pid) && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alive = running(pid);
    if alive {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    assert!(
        !alive,
        "the grandchild {pid} survived the server's shutdown"
    );
}
