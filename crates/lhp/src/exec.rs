//! Running an allowed program for an `exec` request (§10.7): no shell, output streamed back
//! as it is produced, stdout and stderr kept apart, a time limit.
//!
//! The program runs in its own process group with stdin closed. Two threads read its stdout
//! and stderr in chunks of at most 64 KiB into a channel of [`CHANNEL_DEPTH`] chunks; the
//! connection's thread turns each chunk into an `output` frame. When the client reads
//! slowly, the channel fills, the reader threads block, and the program blocks on its full
//! pipe: a program printing 1 GiB never makes the server hold more than a few hundred KiB.
//! When the time limit passes, the whole process group is killed.

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lhp_blocking::{Error, Replies};
use lhp_codec::{Frame, Header, Value};

use crate::app::{self, ErrorCode};
use crate::files::Refusal;

/// Chunks of output buffered between the program's pipes and the connection.
pub const CHANNEL_DEPTH: usize = 4;

/// Largest `output` body.
pub const OUTPUT_CHUNK: usize = 64 << 10;

/// How long to wait for the pipes to close after the program was killed.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// How an `exec` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitReport {
    /// The exit code, if the program exited.
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// True if the time limit killed it.
    pub timed_out: bool,
    /// Output octets sent (stdout, stderr).
    pub sent: (u64, u64),
}

/// Which pipe a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Runs `argv` (already checked against the allow list) in `cwd`, streaming `output` frames
/// and a final `exit` frame through `replies`. A program that cannot be started gets an
/// `error` frame (`not_found` or `internal`). Returns `Err` only if the connection failed.
pub fn run(
    request: &Header,
    argv: &[String],
    cwd: &Path,
    timeout: Duration,
    replies: &mut Replies<'_>,
) -> Result<Option<ExitReport>, Error> {
    let Some(mut command) = command(argv, cwd) else {
        send_error(request, replies, ErrorCode::BadRequest, "argv is empty")?;
        return Ok(None);
    };
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let r = spawn_refusal(argv, &e);
            send_error(request, replies, r.code, &r.message)?;
            return Ok(None);
        }
    };
    let (tx, rx) = mpsc::sync_channel::<(Stream, Option<Bytes>)>(CHANNEL_DEPTH);
    let mut open = 0;
    if let Some(out) = child.stdout.take() {
        pump(out, Stream::Stdout, tx.clone());
        open += 1;
    }
    if let Some(err) = child.stderr.take() {
        pump(err, Stream::Stderr, tx.clone());
        open += 1;
    }
    drop(tx);

    let mut deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let mut sent = (0u64, 0u64);
    while open > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((stream, Some(chunk))) => {
                let h = output_header(request, stream.name());
                let n = chunk.len() as u64;
                if let Err(e) = replies.send(&Frame::new(h, chunk)) {
                    kill_group(&mut child);
                    let _ = child.wait();
                    return Err(e);
                }
                match stream {
                    Stream::Stdout => sent.0 += n,
                    Stream::Stderr => sent.1 += n,
                }
            }
            Ok((_, None)) => open -= 1,
            Err(RecvTimeoutError::Timeout) if !timed_out => {
                timed_out = true;
                kill_group(&mut child);
                deadline = Instant::now() + KILL_GRACE;
            }
            // Killed, and something still holds the pipes: stop waiting for them.
            Err(_) => break,
        }
    }
    let status = match child.wait() {
        Ok(s) => s,
        Err(e) => {
            send_error(request, replies, ErrorCode::Internal, &format!("wait: {e}"))?;
            return Ok(None);
        }
    };
    let report = ExitReport {
        code: status.code(),
        signal: status.signal(),
        timed_out,
        sent,
    };
    replies.send(&Frame::new(exit_header(request, &report), Bytes::new()))?;
    Ok(Some(report))
}

/// Checks an `exec` request's `argv`: a non-empty array of strings.
pub fn argv(request: &Header) -> Result<Vec<String>, Refusal> {
    let array = request.get("argv").and_then(Value::as_array);
    let argv: Option<Vec<String>> = array.and_then(|a| {
        a.iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<String>>>()
    });
    match argv {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Refusal::new(
            ErrorCode::BadRequest,
            "argv must be a non-empty array of strings",
        )),
    }
}

/// The command for `argv` in `cwd`: no shell, its own process group, stdin closed, stdout and
/// stderr piped. `None` if `argv` is empty.
pub fn command(argv: &[String], cwd: &Path) -> Option<Command> {
    let (program, args) = argv.split_first()?;
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    Some(command)
}

/// The refusal for a program that could not be started: `not_found` or `internal`.
pub fn spawn_refusal(argv: &[String], e: &io::Error) -> Refusal {
    let program = argv.first().map(String::as_str).unwrap_or_default();
    let code = if e.kind() == io::ErrorKind::NotFound {
        ErrorCode::NotFound
    } else {
        ErrorCode::Internal
    };
    Refusal::new(code, format!("cannot start {program:?}: {e}"))
}

/// The header of an `output` frame from `stream` (`stdout` or `stderr`).
pub fn output_header(request: &Header, stream: &str) -> Header {
    let mut h = app::reply_to(request, Header::with_kind(app::OUTPUT));
    h.insert("stream", stream);
    h
}

/// The header of the final `exit` frame.
pub fn exit_header(request: &Header, report: &ExitReport) -> Header {
    let mut h = app::reply_to(request, Header::with_kind(app::EXIT));
    h.insert("code", report.code.map_or(Value::Null, Value::from))
        .insert("signal", report.signal.map_or(Value::Null, Value::from))
        .insert("timed_out", report.timed_out);
    h
}

/// Kills the process group led by `pid` (the program was started with `process_group(0)`).
pub fn kill_process_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Refuses `request` with the request error frame of E2 (its `id`, no `offset`).
pub fn send_error(
    request: &Header,
    replies: &mut Replies<'_>,
    code: ErrorCode,
    message: &str,
) -> Result<(), Error> {
    let _ = request;
    replies.error(code.as_str(), message)
}

fn pump<R: Read + Send + 'static>(
    mut pipe: R,
    stream: Stream,
    tx: SyncSender<(Stream, Option<Bytes>)>,
) {
    thread::spawn(move || {
        let mut buf = vec![0u8; OUTPUT_CHUNK];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                    if tx.send((stream, Some(chunk))).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = tx.send((stream, None));
    });
}

fn kill_group(child: &mut Child) {
    kill_process_group(child.id());
    let _ = child.kill();
}
