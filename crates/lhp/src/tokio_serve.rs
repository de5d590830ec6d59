//! `lhp serve --engine tokio` (the default): the file service of [`crate::files`] on
//! lhp-tokio's streaming server.
//!
//! ```text
//!   request head ─► FileService::route (spawn_blocking: names are resolved on disk)
//!     echo  ─► the body back, whole (≤ 64 MiB) or streamed
//!     put   ─► begin_upload (spawn_blocking) ─► body chunks, batched to 1 MiB ─► Partial::write
//!              (spawn_blocking, one batch written while the next is read)
//!              ─► Partial::finish (digest, fsync, link) ─► `ok`
//!     get   ─► open_download (spawn_blocking; the old forms hash here) ─► `file`, read and
//!              hashed ahead on a thread (AsyncReadAhead) while the task writes the socket
//!     stat, list ─► spawn_blocking ─► one frame
//!     exec  ─► tokio::process, `output` frames as the pipes produce them ─► `exit`
//! ```
//!
//! Every decision (names, digests, what an upload may replace, error codes) is the shared
//! logic in [`crate::files`] and [`crate::exec`]; this module only moves it onto tasks.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use lhp_codec::conn::Config;
use lhp_codec::{Frame, Header};
use lhp_tokio::{Error, Handler, Replies, Request, RequestBody, Server};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::app::{self, ErrorCode};
use crate::exec::{self, ExitReport, KILL_GRACE, OUTPUT_CHUNK};
use crate::files::{
    list_reply, open_download, put_reply, stat_reply, FileService, Partial, PutPlan, Refusal,
    Route, ServeOptions,
};
use crate::log;

/// Upload octets gathered before one blocking write to the partial file.
const WRITE_BATCH: usize = 1 << 20;

/// The file service as an lhp-tokio [`Handler`].
#[derive(Debug, Clone)]
pub struct TokioFileService {
    service: Arc<FileService>,
}

impl TokioFileService {
    /// A handler for `opts`; the root (if any) must exist and is canonicalized now.
    pub fn new(opts: &ServeOptions) -> io::Result<Self> {
        Ok(TokioFileService {
            service: Arc::new(FileService::new(opts)?),
        })
    }

    /// The shared, engine-neutral service.
    pub fn service(&self) -> &FileService {
        &self.service
    }
}

impl Handler for TokioFileService {
    async fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error> {
        let (head, body) = request.into_parts();
        let route = if head.kind() == Some(app::ECHO) {
            Ok(Route::Echo)
        } else {
            let service = Arc::clone(&self.service);
            let h = head.clone();
            blocking(move || service.route(&h)).await?
        };
        let route = match route {
            Ok(route) => route,
            Err(r) => return refuse(&head, replies, r).await,
        };
        match route {
            Route::Echo => echo(head, body, replies).await,
            Route::Put(plan) => self.put(&head, &plan, body, replies).await,
            Route::Get(root) => get(root, &head, replies).await,
            Route::Stat(root) => one_frame(&head, replies, move |h| stat_reply(&root, h)).await,
            Route::List(root) => one_frame(&head, replies, move |h| list_reply(&root, h)).await,
            Route::Exec { argv, cwd, timeout } => {
                run_exec(&head, &argv, &cwd, timeout, replies).await
            }
        }
    }
}

impl TokioFileService {
    /// Streams the body into the partial file in batches; the blocking writes run on the
    /// blocking pool.
    async fn put(
        &self,
        head: &Header,
        plan: &PutPlan,
        mut body: RequestBody<'_>,
        replies: &mut Replies<'_>,
    ) -> Result<(), Error> {
        let started = Instant::now();
        let service = Arc::clone(&self.service);
        let p = plan.clone();
        let partial = match blocking(move || service.begin_upload(&p)).await? {
            Ok(partial) => partial,
            Err(r) => return refuse(head, replies, r).await,
        };
        // One batch is written (on the blocking pool) while the next is read from the socket.
        let mut upload = Upload::Idle(Box::new(partial));
        let mut batch = BytesMut::new();
        loop {
            let chunk = match body.chunk().await {
                Ok(chunk) => chunk,
                Err(e) => {
                    let corrupt = matches!(&e, Error::Decode(d) if d.code() == "digest_mismatch");
                    if let Ok(Ok(mut partial)) = upload.settle().await {
                        // Keep the good prefix for a resumed put, or drop octets that are wrong.
                        let _ = blocking(move || {
                            if corrupt {
                                partial.discard();
                            } else {
                                let _ = partial.write(&batch);
                            }
                        })
                        .await;
                    }
                    return Err(e);
                }
            };
            let done = chunk.is_none();
            if let Some(chunk) = chunk {
                batch.extend_from_slice(&chunk);
            }
            if batch.len() >= WRITE_BATCH || (done && !batch.is_empty()) {
                let partial = match upload.settle().await? {
                    Ok(partial) => partial,
                    Err(r) => return refuse(head, replies, r).await,
                };
                upload = Upload::write(partial, batch.split().freeze());
            }
            if done {
                break;
            }
        }
        let partial = match upload.settle().await? {
            Ok(partial) => partial,
            Err(r) => return refuse(head, replies, r).await,
        };
        match blocking(move || partial.finish()).await? {
            Ok(stored) => {
                log::served(head, plan.file_octets(), started.elapsed());
                match put_reply(head, plan, &stored) {
                    Some(reply) => replies.send(&reply).await,
                    None => Ok(()),
                }
            }
            Err(r) => refuse(head, replies, r).await,
        }
    }
}

/// An upload between batches: idle, or writing one batch on the blocking pool.
enum Upload {
    Idle(Box<Partial>),
    Writing(tokio::task::JoinHandle<(Partial, Result<(), Refusal>)>),
}

impl Upload {
    fn write(mut partial: Partial, batch: Bytes) -> Upload {
        Upload::Writing(tokio::task::spawn_blocking(move || {
            let written = partial.write(&batch);
            (partial, written)
        }))
    }

    /// Waits for the batch being written, if any.
    async fn settle(self) -> Result<Result<Partial, Refusal>, Error> {
        match self {
            Upload::Idle(partial) => Ok(Ok(*partial)),
            Upload::Writing(task) => {
                let (partial, written) = task.await.map_err(join_error)?;
                Ok(written.map(|()| partial))
            }
        }
    }
}

/// Binds `addr` for `lhp serve --engine tokio` with `config` (see
/// [`crate::serve::default_config`]). Needs no runtime; running it does.
pub fn bind(addr: &str, opts: &ServeOptions, config: Config) -> io::Result<Server> {
    Server::bind(addr, config, TokioFileService::new(opts)?)
}

/// Runs `lhp serve --engine tokio` on a multi-threaded runtime: binds, prints
/// `listening on ADDR` as the first line of stdout (flushed), serves until SIGINT or
/// SIGTERM, then shuts down gracefully.
/// The counters ([`log::stats`]) are logged on SIGUSR1, every `stats_interval` (zero: never)
/// and once at shutdown.
pub fn run(
    addr: &str,
    opts: &ServeOptions,
    config: Config,
    stats_interval: Duration,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = bind(addr, opts, config)?;
        let stop = server.shutdown_token();
        let stats = server.stats();
        // Every handler is in place before the first line tells anyone to signal us.
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut usr1 = signal(SignalKind::user_defined1())?;
        tokio::spawn(async move {
            let which = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            eprintln!("lhp serve: {which}, shutting down");
            stop.cancel();
        });
        let on_usr1 = Arc::clone(&stats);
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                log::stats(log::StatsTrigger::Signal, &on_usr1.snapshot());
            }
        });
        {
            let mut out = io::stdout().lock();
            writeln!(out, "listening on {}", server.local_addr())?;
            out.flush()?;
        }
        if !stats_interval.is_zero() {
            let on_tick = Arc::clone(&stats);
            tokio::spawn(async move {
                let mut ticks =
                    tokio::time::interval_at(Instant::now() + stats_interval, stats_interval);
                loop {
                    ticks.tick().await;
                    log::stats(log::StatsTrigger::Interval, &on_tick.snapshot());
                }
            });
        }
        let result = server.run().await;
        log::stats(log::StatsTrigger::Shutdown, &stats.snapshot());
        result
    })
}

/// Kills the process group led by the pid it holds when dropped (see `run_exec`).
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            exec::kill_process_group(pid);
        }
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(join_error)
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Io(io::Error::other(format!("a blocking task failed: {e}")))
}

/// Refuses the request with the request error frame of E2 (the request's `id`, no `offset`).
async fn refuse(head: &Header, replies: &mut Replies<'_>, r: Refusal) -> Result<(), Error> {
    log::refused(head, r.code.as_str(), &r.message);
    replies.error(r.code.as_str(), &r.message).await
}

/// Answers with the one frame a blocking function builds (`stat`, `list`).
async fn one_frame<F>(head: &Header, replies: &mut Replies<'_>, f: F) -> Result<(), Error>
where
    F: FnOnce(&Header) -> Result<Frame, Refusal> + Send + 'static,
{
    let h = head.clone();
    match blocking(move || f(&h)).await? {
        Ok(reply) => replies.send(&reply).await,
        Err(r) => refuse(head, replies, r).await,
    }
}

/// `echo` is answered by the connection layer (§8, E7) before a handler sees it; a request
/// routed here anyway is echoed from its decoded frame.
async fn echo(head: Header, body: RequestBody<'_>, replies: &mut Replies<'_>) -> Result<(), Error> {
    let frame = body.into_frame(head).await?;
    replies.send(&frame.echo_reply()).await
}

async fn get(root: PathBuf, head: &Header, replies: &mut Replies<'_>) -> Result<(), Error> {
    let h = head.clone();
    match blocking(move || open_download(&root, &h)).await? {
        Ok(d) => {
            // The file's octets (the body may also carry the 32-octet digest trailer).
            let octets = d.len;
            let (header, _, body) = d.into_async_read().map_err(Error::Io)?;
            let started = Instant::now();
            replies.send_stream(&header, body).await?;
            log::served(head, octets, started.elapsed());
            Ok(())
        }
        Err(r) => refuse(head, replies, r).await,
    }
}

/// `exec` on tokio: `output` frames as the pipes produce them (the next read waits until
/// the previous frame is written, so a slow client slows the program rather than growing a
/// buffer), the process group killed at the time limit, then `exit`.
async fn run_exec(
    head: &Header,
    argv: &[String],
    cwd: &Path,
    limit: Duration,
    replies: &mut Replies<'_>,
) -> Result<(), Error> {
    let Some(command) = exec::command(argv, cwd) else {
        return refuse(
            head,
            replies,
            Refusal::new(ErrorCode::BadRequest, "argv is empty"),
        )
        .await;
    };
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return refuse(head, replies, exec::spawn_refusal(argv, &e)).await,
    };
    let pid = child.id();
    let kill = || {
        if let Some(pid) = pid {
            exec::kill_process_group(pid);
        }
    };
    // If this future is dropped before the program is reaped (the server's shutdown grace
    // ran out, or the connection's task was aborted), the whole group goes, not just the
    // child that `kill_on_drop` would kill.
    let mut group = GroupGuard(pid);
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out_buf = vec![0u8; OUTPUT_CHUNK];
    let mut err_buf = vec![0u8; OUTPUT_CHUNK];
    let mut deadline = Instant::now() + limit;
    let mut timed_out = false;
    let mut sent = (0u64, 0u64);
    while stdout.is_some() || stderr.is_some() {
        let (stream, n) = tokio::select! {
            r = read_some(&mut stdout, &mut out_buf) => ("stdout", r),
            r = read_some(&mut stderr, &mut err_buf) => ("stderr", r),
            () = sleep_until(deadline) => {
                if timed_out {
                    // Killed, and something still holds the pipes: stop waiting for them.
                    break;
                }
                timed_out = true;
                kill();
                deadline = Instant::now() + KILL_GRACE;
                continue;
            }
        };
        let is_stdout = stream == "stdout";
        let n = match n {
            Ok(0) | Err(_) => {
                if is_stdout {
                    stdout = None;
                } else {
                    stderr = None;
                }
                continue;
            }
            Ok(n) => n,
        };
        let buf = if is_stdout { &out_buf } else { &err_buf };
        let chunk = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
        let frame = Frame::new(exec::output_header(head, stream), chunk);
        if let Err(e) = replies.send(&frame).await {
            kill();
            return Err(e);
        }
        if is_stdout {
            sent.0 += n as u64;
        } else {
            sent.1 += n as u64;
        }
    }
    // The pipes are closed; a program that closed them and lingers still meets the limit.
    let status = match timeout_at(deadline, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            if !timed_out {
                timed_out = true;
                kill();
            }
            child.wait().await
        }
    };
    // Reaped: its pid may be reused from here on, so the guard must not signal it.
    group.0 = None;
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            let r = Refusal::new(ErrorCode::Internal, format!("wait: {e}"));
            return refuse(head, replies, r).await;
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let report = ExitReport {
        code: status.code(),
        signal: status.signal(),
        timed_out,
        sent,
    };
    let frame = Frame::new(exec::exit_header(head, &report), Bytes::new());
    replies.send(&frame).await
}

/// Reads from a pipe that may be closed already (then waits forever: another branch wins).
async fn read_some<R: AsyncRead + Unpin>(
    pipe: &mut Option<R>,
    buf: &mut [u8],
) -> io::Result<usize> {
    match pipe {
        Some(p) => p.read(buf).await,
        None => std::future::pending().await,
    }
}
