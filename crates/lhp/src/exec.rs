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

/// Chunks of output buffered between the program's pipes and the connection.
pub const CHANNEL_DEPTH: usize = 4;

/// Largest `output` body.
pub const OUTPUT_CHUNK: usize = 64 << 10;

/// How long to wait for the pipes to close after the program was killed.
const KILL_GRACE: Duration = Duration::from_secs(2);

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
    let Some((program, args)) = argv.split_first() else {
        send_error(request, replies, ErrorCode::BadRequest, "argv is empty")?;
        return Ok(None);
    };
    let spawned = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let code = if e.kind() == io::ErrorKind::NotFound {
                ErrorCode::NotFound
            } else {
                ErrorCode::Internal
            };
            send_error(
                request,
                replies,
                code,
                &format!("cannot start {program:?}: {e}"),
            )?;
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
                let mut h = app::reply_to(request, Header::with_kind(app::OUTPUT));
                h.insert("stream", stream.name());
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
    let mut h = app::reply_to(request, Header::with_kind(app::EXIT));
    h.insert("code", report.code.map_or(Value::Null, Value::from))
        .insert("signal", report.signal.map_or(Value::Null, Value::from))
        .insert("timed_out", timed_out);
    replies.send(&Frame::new(h, Bytes::new()))?;
    Ok(Some(report))
}

/// Sends an application `error` reply with the request's `id`.
pub fn send_error(
    request: &Header,
    replies: &mut Replies<'_>,
    code: ErrorCode,
    message: &str,
) -> Result<(), Error> {
    let mut h = app::reply_to(request, app::error(code.as_str(), message));
    h.insert("offset", replies.frame_start());
    replies.send(&Frame::new(h, Bytes::new()))
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
    if let Ok(pid) = i32::try_from(child.id()) {
        // The child leads its own process group (process_group(0)): kill all of it.
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
}
