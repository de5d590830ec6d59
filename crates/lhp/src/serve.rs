//! `lhp serve`: the file server (or, without a root, a pure echo server), stopped cleanly by
//! SIGINT or SIGTERM, on either engine: tokio (the default, [`crate::tokio_serve`]) or
//! blocking (this module's [`bind`]).

use std::io::{self, Write};
use std::thread;
use std::time::Duration;

use lhp_blocking::{Config, Server, ShutdownHandle};
use lhp_codec::{Limits, MAX_SAFE_INTEGER};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::files::{FileService, ServeOptions};

/// The write deadline `lhp serve` gives the engine (see [`bind`]).
pub const REPLY_WRITE_TIMEOUT: Duration = Duration::from_secs(600);

/// Binds `addr` and returns the server, ready to run: bodies up to 2^53−1 (uploads are
/// streamed to disk), the engine's default timeouts and connection limit.
pub fn bind(addr: &str, opts: &ServeOptions) -> io::Result<Server> {
    let mut config = Config::new();
    // lhp-blocking starts a reply's write deadline when the *request* begins, so an `ok` after
    // a long upload, or `exec` output after a long quiet spell, would miss a 30 s deadline.
    // Until the engine restarts the clock at each reply, allow for the longest of those.
    let write_timeout = REPLY_WRITE_TIMEOUT.max(opts.exec_timeout + Duration::from_secs(60));
    config
        .profile(opts.profile)
        .limits(Limits::new().with_max_body_len(MAX_SAFE_INTEGER))
        .write_timeout(write_timeout);
    let service = FileService::new(opts)?;
    Server::bind(addr, config, service).map_err(lhp_blocking::Error::into_io)
}

/// Which engine `lhp serve` runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// lhp-tokio: one task per connection ([`crate::tokio_serve`]). The default.
    #[default]
    Tokio,
    /// lhp-blocking: one thread per connection ([`bind`]).
    Blocking,
}

/// Runs `lhp serve` on `engine`: binds, prints `listening on ADDR` as the first line of
/// stdout (flushed), serves until SIGINT or SIGTERM, then shuts down gracefully.
pub fn run_on(engine: Engine, addr: &str, opts: &ServeOptions) -> io::Result<()> {
    match engine {
        Engine::Tokio => crate::tokio_serve::run(addr, opts),
        Engine::Blocking => run(addr, opts),
    }
}

/// Runs `lhp serve` on the blocking engine: binds, prints `listening on ADDR` as the first line of stdout (flushed),
/// serves until SIGINT or SIGTERM, then shuts down gracefully.
pub fn run(addr: &str, opts: &ServeOptions) -> io::Result<()> {
    let server = bind(addr, opts)?;
    let handle = server.shutdown_handle();
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let signal_handle = signals.handle();
    let waiter = thread::spawn(move || stop_on_signal(&mut signals, &handle));
    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening on {}", server.local_addr())?;
        out.flush()?;
    }
    let result = server.run().map_err(lhp_blocking::Error::into_io);
    signal_handle.close();
    let _ = waiter.join();
    result
}

fn stop_on_signal(signals: &mut Signals, handle: &ShutdownHandle) {
    if let Some(sig) = signals.forever().next() {
        eprintln!("lhp serve: signal {sig}, shutting down");
        handle.shutdown();
    }
}
