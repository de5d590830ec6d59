//! Logging for the `lhp` program: [`tracing`] events on stderr.
//!
//! Stdout belongs to data (`lhp decode` lines, `lhp exec` output, the `listening on` line of
//! `lhp serve`), so every log event goes to stderr. `RUST_LOG` filters the events with the
//! [`EnvFilter`] syntax (`RUST_LOG=debug`, `RUST_LOG=lhp=debug,lhp_tokio=warn`); without it,
//! the level is `info`. A directive that does not parse is ignored, not fatal.
//!
//! Two formats, chosen with `lhp --log-format`:
//!
//! * [`LogFormat::Text`]: one line per event for a person (colour only on a terminal).
//! * [`LogFormat::Json`]: one JSON object per line for a log shipper, with `timestamp`,
//!   `level`, `target` and a `fields` object holding `message` and the event's fields.
//!
//! The events share their field names, so a query works across commands and engines:
//!
//! | event | target | level | fields |
//! |---|---|---|---|
//! | a transfer finished ([`transfer`]) | `lhp::client` or `lhp::serve` | info | `side` (`client`/`server`), `op` (`put`/`get`), `name`, `octets`, `duration_ms`, `rate_mbps` (10^6 octets/s) |
//! | a refusal received by a client ([`refusal_received`]) | `lhp::client` | warn | `code`, `reason` |
//! | a refusal sent by a file handler ([`refusal_sent`]) | `lhp::serve` | info | `op`, `name`, `code`, `reason` |
//! | the server's counters ([`stats`]) | `lhp::stats` | info | `trigger` (`signal`/`interval`/`shutdown`), `connections_open`, `connections_total`, `busy`, `frames_in`, `frames_out`, `octets_in`, `octets_out`, `connection_errors`, `refusals`, `timeouts`, `write_stalls`, `errors` (a JSON object text: code → count) |
//!
//! Every event of a served connection (a refusal, a finished transfer, the connection's end)
//! happens inside a span named `connection` with the field `peer` (`HOST:PORT`): the text
//! format prints it before the message (`connection{peer=127.0.0.1:5555}: request refused`),
//! the JSON format as `"span":{"peer":...,"name":"connection"}`.

use std::io::{self, IsTerminal};
use std::time::Duration;

use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// How log events are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per line (tracing-subscriber's JSON format).
    Json,
}

/// Installs the global subscriber: `RUST_LOG` (default `info`), stderr, in `format`.
///
/// Call it once, first thing in `main`. A second call (or a subscriber installed by someone
/// else) is an error, returned rather than panicking.
pub fn init(format: LogFormat) -> Result<(), InitError> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    let result = match format {
        LogFormat::Text => builder.with_ansi(io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    result.map_err(|e| InitError(e.to_string()))
}

/// A global subscriber was already installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the log subscriber: {0}")]
pub struct InitError(String);

/// Which end of a transfer logs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The `lhp put` / `lhp get` command.
    Client,
    /// A file handler of `lhp serve`.
    Server,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// Logs a finished transfer: `octets` moved for `op` (`put`/`get`) of `name` in `elapsed`.
pub fn transfer(side: Side, op: &str, name: &str, octets: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    // A transfer too quick to time has no meaningful rate: 0 rather than infinity.
    let rate_mbps = if secs > 0.0 {
        octets as f64 / secs / 1e6
    } else {
        0.0
    };
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let rate_mbps = (rate_mbps * 1000.0).round() / 1000.0;
    // A callsite's target is static: one per side.
    match side {
        Side::Client => tracing::info!(
            target: "lhp::client",
            side = side.as_str(), op, name, octets, duration_ms, rate_mbps,
            "transfer finished"
        ),
        Side::Server => tracing::info!(
            target: "lhp::serve",
            side = side.as_str(), op, name, octets, duration_ms, rate_mbps,
            "transfer finished"
        ),
    }
}

/// What made `lhp serve` log its counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsTrigger {
    /// SIGUSR1.
    Signal,
    /// The `--stats-interval` timer.
    Interval,
    /// The server stopped.
    Shutdown,
}

impl StatsTrigger {
    fn as_str(self) -> &'static str {
        match self {
            StatsTrigger::Signal => "signal",
            StatsTrigger::Interval => "interval",
            StatsTrigger::Shutdown => "shutdown",
        }
    }
}

/// Logs a server's counters as one event (target `lhp::stats`, the fields in the module's
/// table): the same names on both engines.
pub fn stats(trigger: StatsTrigger, s: &lhp_codec::conn::StatsSnapshot) {
    tracing::info!(
        target: "lhp::stats",
        trigger = trigger.as_str(),
        connections_open = s.connections_open,
        connections_total = s.connections_total,
        busy = s.busy,
        frames_in = s.frames_in,
        frames_out = s.frames_out,
        octets_in = s.octets_in,
        octets_out = s.octets_out,
        connection_errors = s.connection_errors,
        refusals = s.refusals,
        timeouts = s.timeouts(),
        write_stalls = s.write_stalls,
        errors = %s.errors_json(),
        "stats"
    );
}

/// Logs a refusal (an `error` reply, §10.8) that a client command received.
pub fn refusal_received(code: &str, reason: &str) {
    tracing::warn!(target: "lhp::client", code, reason, "request refused by the server");
}

/// Logs a refusal that a file handler sends for `op` (the request's `kind`) of `name`.
pub fn refusal_sent(op: &str, name: &str, code: &str, reason: &str) {
    tracing::info!(target: "lhp::serve", op, name, code, reason, "request refused");
}

/// Logs a transfer a file handler finished for the request `head`: its `kind` is the `op`,
/// its `name` (or the seeds' `file_name`) the name.
pub fn served(head: &lhp_codec::Header, octets: u64, elapsed: Duration) {
    transfer(Side::Server, op(head), request_name(head), octets, elapsed);
}

/// Logs the refusal a file handler sends for the request `head`.
pub fn refused(head: &lhp_codec::Header, code: &str, reason: &str) {
    refusal_sent(op(head), request_name(head), code, reason);
}

fn op(head: &lhp_codec::Header) -> &str {
    // The seeds' upload has no `kind`: it is a put.
    head.kind().unwrap_or("put")
}

fn request_name(head: &lhp_codec::Header) -> &str {
    ["name", "file_name"]
        .iter()
        .find_map(|m| crate::app::str_member(head, m))
        .unwrap_or("")
}
