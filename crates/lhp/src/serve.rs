//! `lhp serve`: the file server (or, without a root, a pure echo server), stopped cleanly by
//! SIGINT or SIGTERM, on either engine: tokio (the default, [`crate::tokio_serve`]) or
//! blocking (this module's [`bind`]).

use std::io::{self, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use lhp_blocking::{Server, ShutdownHandle};
use lhp_codec::conn::{Config, Stats};
use lhp_codec::{Limits, MAX_SAFE_INTEGER};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

use crate::files::{FileService, ServeOptions};
use crate::log::{self, StatsTrigger};

/// Default of `lhp serve --stats-interval`: the counters are logged every 5 minutes.
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(300);

/// The connection settings `lhp serve` starts from on either engine: the defaults of §11.2,
/// with bodies up to 2^53−1 (uploads are streamed to disk) and the profile of `opts`. The
/// command line's limit flags are applied on top (see `lhp serve --help`).
pub fn default_config(opts: &ServeOptions) -> Config {
    let mut config = Config::new();
    config
        .set_profile(opts.profile)
        .set_limits(Limits::new().with_max_body_len(MAX_SAFE_INTEGER));
    config
}

/// Binds `addr` on the blocking engine and returns the server, ready to run. The write
/// deadline means "no progress for `write_timeout`" (E4), so a reply after a long upload or
/// a quiet `exec` needs no longer one.
pub fn bind(addr: &str, opts: &ServeOptions, config: Config) -> io::Result<Server> {
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
/// stdout (flushed), serves until SIGINT or SIGTERM, then shuts down gracefully. The server's
/// counters ([`log::stats`]) are logged on SIGUSR1, every `stats_interval` (zero: never) and
/// once at shutdown.
pub fn run_on(
    engine: Engine,
    addr: &str,
    opts: &ServeOptions,
    config: Config,
    stats_interval: Duration,
) -> io::Result<()> {
    match engine {
        Engine::Tokio => crate::tokio_serve::run(addr, opts, config, stats_interval),
        Engine::Blocking => run(addr, opts, config, stats_interval),
    }
}

/// Runs `lhp serve` on the blocking engine (see [`run_on`]).
pub fn run(
    addr: &str,
    opts: &ServeOptions,
    config: Config,
    stats_interval: Duration,
) -> io::Result<()> {
    let server = bind(addr, opts, config)?;
    let handle = server.shutdown_handle();
    let stats = server.stats();
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGUSR1])?;
    let signal_handle = signals.handle();
    let waiter = {
        let stats = Arc::clone(&stats);
        thread::spawn(move || on_signals(&mut signals, &handle, &stats))
    };
    let (stop_ticker, stopped) = mpsc::channel::<()>();
    let ticker = (!stats_interval.is_zero()).then(|| {
        let stats = Arc::clone(&stats);
        thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(stats_interval) {
                log::stats(StatsTrigger::Interval, &stats.snapshot());
            }
        })
    });
    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening on {}", server.local_addr())?;
        out.flush()?;
    }
    let result = server.run().map_err(lhp_blocking::Error::into_io);
    drop(stop_ticker);
    if let Some(t) = ticker {
        let _ = t.join();
    }
    log::stats(StatsTrigger::Shutdown, &stats.snapshot());
    signal_handle.close();
    let _ = waiter.join();
    result
}

/// SIGINT or SIGTERM: a graceful shutdown; SIGUSR1: the counters, logged.
fn on_signals(signals: &mut Signals, handle: &ShutdownHandle, stats: &Stats) {
    for sig in signals.forever() {
        if sig == SIGUSR1 {
            log::stats(StatsTrigger::Signal, &stats.snapshot());
        } else {
            eprintln!("lhp serve: signal {sig}, shutting down");
            handle.shutdown();
        }
    }
}

/// The `lhp serve` flags for every connection limit the spec names (§5, §11.2), the same on
/// both engines. Their names are the conversation vectors' `config` fields in kebab case
/// (`idle_timeout_ms` → `--idle-timeout-ms`), so a harness passes a case's settings as flags.
#[derive(clap::Args, Debug, Clone)]
pub struct LimitFlags {
    /// At a frame boundary with no request in progress: how long a peer may send nothing
    /// before it gets `timeout` and is closed.
    #[arg(long, value_name = "MS", default_value_t = ms(Config::DEFAULT_IDLE_TIMEOUT))]
    pub idle_timeout_ms: u64,
    /// A begun frame's prefix and header must arrive within this of its first octet; its body
    /// within this plus body_len / --min-body-rate.
    #[arg(long, value_name = "MS", default_value_t = ms(Config::DEFAULT_READ_TIMEOUT))]
    pub read_timeout_ms: u64,
    /// The slowest body accepted, octets per second.
    #[arg(long, value_name = "OCTETS", default_value_t = Config::DEFAULT_MIN_BODY_RATE)]
    pub min_body_rate: u64,
    /// A write that makes no progress for this long closes the connection.
    #[arg(long, value_name = "MS", default_value_t = ms(Config::DEFAULT_WRITE_TIMEOUT))]
    pub write_timeout_ms: u64,
    /// After a connection error: how long sending the error frame and discarding input take.
    #[arg(long, value_name = "MS", default_value_t = ms(Config::DEFAULT_CLOSE_LINGER))]
    pub close_linger_ms: u64,
    /// Connections served at once; one more gets `busy`.
    #[arg(long, value_name = "N", default_value_t = Config::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// The largest header accepted, octets.
    #[arg(long, value_name = "OCTETS", default_value_t = Limits::DEFAULT_MAX_HEADER_LEN)]
    pub max_header_len: u32,
    /// The largest body accepted, octets (uploads are streamed to disk).
    #[arg(long, value_name = "OCTETS", default_value_t = MAX_SAFE_INTEGER)]
    pub max_body_len: u64,
    /// On SIGINT/SIGTERM: how long requests in progress may still take.
    #[arg(long, value_name = "MS", default_value_t = ms(Config::DEFAULT_SHUTDOWN_GRACE))]
    pub shutdown_grace_ms: u64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl LimitFlags {
    /// `base` with these limits applied.
    pub fn apply(&self, mut base: Config) -> Config {
        let d = Duration::from_millis;
        base.set_idle_timeout(d(self.idle_timeout_ms))
            .set_read_timeout(d(self.read_timeout_ms))
            .set_min_body_rate(self.min_body_rate)
            .set_write_timeout(d(self.write_timeout_ms))
            .set_close_linger(d(self.close_linger_ms))
            .set_max_connections(self.max_connections)
            .set_shutdown_grace(d(self.shutdown_grace_ms))
            .set_limits(
                Limits::new()
                    .with_max_header_len(self.max_header_len)
                    .with_max_body_len(self.max_body_len),
            );
        base
    }
}
