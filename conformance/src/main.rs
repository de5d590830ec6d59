//! `lhp-conformance`: see `spec/conformance.md`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use lhp_conformance::client::{run_client, ClientOptions};
use lhp_conformance::conversation::{self, ConvOptions};
use lhp_conformance::engines::{Blocking, Tokio};
use lhp_conformance::record::{record, RecordOptions};
use lhp_conformance::report::Report;
use lhp_conformance::runner::{self, Options};
use lhp_conformance::server::ServerOptions;
use lhp_conformance::stdio::StdioTestee;
use lhp_conformance::suite::{run_server_suite, ServerSpec, Suite, SuiteOptions};
use lhp_conformance::testee::{CodecDecode, CodecEvents, Testee};

/// The LHP/1 conformance harness (spec/conformance.md).
#[derive(Parser, Debug)]
#[command(
    name = "lhp-conformance",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// `record`: the capturing proxy.
    #[command(subcommand)]
    command: Option<Cmd>,
    /// In-process implementations: codec, blocking, tokio, all.
    #[arg(long = "impl", value_name = "NAME")]
    implementations: Vec<String>,
    /// A testee process speaking the stdio protocol (run with `sh -c`).
    #[arg(long, value_name = "COMMAND")]
    stdio: Vec<String>,
    /// An echo server under test at HOST:PORT (spec/conformance.md §4). Repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    server: Vec<String>,
    /// Start an echo server with `sh -c` (its first stdout line: `listening on HOST:PORT`),
    /// test it as with --server, then kill it. Repeatable.
    #[arg(long, value_name = "COMMAND")]
    server_cmd: Vec<String>,
    /// An application server (spec/lhp-app.md) at HOST:PORT: everything --server runs, plus
    /// the `app` conversation group. Repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    app_server: Vec<String>,
    /// Start an application server with `sh -c` (placeholders: spec/conformance.md §6.2),
    /// as --server-cmd, plus the `app` conversation group. Repeatable.
    #[arg(long, value_name = "COMMAND")]
    app_server_cmd: Vec<String>,
    /// The conversation directory (default spec/vectors/conversations).
    #[arg(long, value_name = "DIR")]
    conversations: Option<PathBuf>,
    /// Multiply every duration of the conversations (and the timeouts a started server is
    /// given) by this factor.
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    time_scale: f64,
    /// How many conversations run at once against a started server (--server-cmd,
    /// --app-server-cmd): each gets its own server process, port and root. Use 1 on a machine
    /// too busy to meet deadlines of a few hundred milliseconds with several running.
    #[arg(long, default_value_t = conversation::DEFAULT_JOBS, value_name = "N")]
    jobs: usize,
    /// Do not run the `resources` group.
    #[arg(long)]
    no_resources: bool,
    /// A UDP echo server under test at HOST:PORT (spec/lhp-udp.md; cases in src/udp.rs).
    #[arg(long, value_name = "HOST:PORT")]
    udp_server: Vec<String>,
    /// The --udp-server's max_datagram_len.
    #[arg(long, value_name = "OCTETS", default_value_t = 65_507)]
    udp_max_datagram: usize,
    /// A client under test (spec/conformance.md §5), run with `sh -c` once per plan; `{addr}`
    /// in COMMAND is replaced by the harness's address. Repeatable.
    #[arg(long, value_name = "COMMAND")]
    client: Vec<String>,
    /// The pause between chunks in the TCP modes, in milliseconds.
    #[arg(long, default_value_t = 1)]
    pause_ms: u64,
    /// The vector directory.
    #[arg(long, value_name = "DIR")]
    vectors: Option<PathBuf>,
    /// Only vectors whose id contains TEXT.
    #[arg(long, value_name = "TEXT")]
    filter: Vec<String>,
    /// The skip list.
    #[arg(long, value_name = "FILE")]
    skips: Option<PathBuf>,
    /// The report directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Seed for the random partitions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Per-plan timeout for out-of-process implementations, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Fewer plans per case: a smoke run.
    #[arg(long)]
    quick: bool,
    /// Print each failing case as it happens.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// A loopback TCP proxy that records both directions of each connection as vectors.
    Record {
        /// Where clients connect (port 0: any; the address is printed as `listening on ...`).
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// The server to relay to.
        #[arg(long, value_name = "ADDR")]
        upstream: String,
        /// The vector file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Stop after this many connections (or on SIGINT).
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// The profile the expected frames are decoded with: lhp1 or seed-compat.
        #[arg(long, default_value = "lhp1")]
        profile: String,
    },
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: resolves to nothing"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lhp-conformance: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    if let Some(Cmd::Record {
        listen,
        upstream,
        out,
        connections,
        profile,
    }) = &cli.command
    {
        let opts = RecordOptions {
            upstream: resolve(upstream)?,
            connections: *connections,
            profile: profile
                .parse()
                .map_err(|_| format!("unknown profile {profile:?} (lhp1, seed-compat)"))?,
            limits: lhp_codec::Limits::default(),
        };
        let n = record(resolve(listen)?, out, &opts)?;
        eprintln!("recorded {n} connection(s) to {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let vectors = cli.vectors.unwrap_or_else(lhp_vectors::default_dir);
    if !cli.udp_server.is_empty() {
        return lhp_conformance::udp::run_cli(
            &cli.udp_server,
            cli.udp_max_datagram,
            &vectors,
            &cli.filter,
            cli.verbose,
        );
    }
    let cases = lhp_conformance::load_cases(&vectors, &cli.filter)?;
    let skips = runner::load_skips(&cli.skips.unwrap_or_else(|| root().join("skips.toml")))?;
    let opts = Options {
        seed: cli.seed,
        quick: cli.quick,
        skips,
        verbose: cli.verbose,
    };
    let mut testees: Vec<Box<dyn Testee>> = Vec::new();
    for name in &cli.implementations {
        match name.as_str() {
            "codec" => {
                testees.push(Box::new(CodecDecode));
                testees.push(Box::new(CodecEvents));
            }
            "blocking" => testees.push(Box::new(Blocking)),
            "tokio" => testees.push(Box::new(Tokio::new())),
            "all" => {
                testees.push(Box::new(CodecDecode));
                testees.push(Box::new(CodecEvents));
                testees.push(Box::new(Blocking));
                testees.push(Box::new(Tokio::new()));
            }
            other => {
                return Err(format!(
                    "unknown implementation {other:?} (codec, blocking, tokio, all)"
                ))
            }
        }
    }
    for command in &cli.stdio {
        testees.push(Box::new(StdioTestee::new(
            command,
            Duration::from_millis(cli.timeout_ms),
        )));
    }
    let tcp_modes = cli.server.len()
        + cli.server_cmd.len()
        + cli.app_server.len()
        + cli.app_server_cmd.len()
        + cli.client.len();
    if !(cli.time_scale > 0.0 && cli.time_scale.is_finite()) {
        return Err(format!(
            "--time-scale {} is not a positive factor",
            cli.time_scale
        ));
    }
    let conv_dir = cli
        .conversations
        .clone()
        .unwrap_or_else(lhp_vectors::conversation::default_conversation_dir);
    let conversations = conversation::load(&conv_dir, &cli.filter)?;
    if testees.is_empty() && tcp_modes == 0 {
        return Err(
            "nothing to test: give --impl, --stdio, --server, --server-cmd or --client".into(),
        );
    }
    eprintln!(
        "{} cases from {}, {} conversations from {}",
        cases.len(),
        vectors.display(),
        conversations.len(),
        conv_dir.display()
    );
    let resources = !cli.no_resources;
    let mut impls = Vec::new();
    for t in &mut testees {
        eprintln!("running {} ...", t.name());
        let mut r = runner::run_all(t.as_mut(), &cases, &opts);
        if resources {
            r.groups
                .extend(lhp_conformance::resources::run_testee_resources(
                    t.as_mut(),
                    &opts,
                ));
        }
        eprintln!("  {} done in {:.1} s", r.name, r.elapsed.as_secs_f64());
        impls.push(r);
    }
    let timeout = Duration::from_millis(cli.timeout_ms);
    let pause = Duration::from_millis(cli.pause_ms);
    let server_opts = ServerOptions {
        run: opts.clone(),
        timeout,
        pause,
        ..ServerOptions::default()
    };
    let suite = Suite {
        cases: cases.clone(),
        conversations,
    };
    let suite_opts = SuiteOptions {
        server: server_opts,
        conv: ConvOptions {
            run: opts.clone(),
            time_scale: cli.time_scale,
            start_timeout: timeout.max(Duration::from_secs(10)),
            jobs: cli.jobs.max(1),
        },
        resources,
    };
    let servers = cli
        .server
        .iter()
        .map(|a| (false, true, a))
        .chain(cli.server_cmd.iter().map(|c| (false, false, c)))
        .chain(cli.app_server.iter().map(|a| (true, true, a)))
        .chain(cli.app_server_cmd.iter().map(|c| (true, false, c)));
    for (app, running, what) in servers {
        let spec = if running {
            ServerSpec::Addr(resolve(what)?)
        } else {
            ServerSpec::Command(what.clone())
        };
        eprintln!(
            "running {} {what} ...",
            if app { "app server" } else { "server" }
        );
        let r = run_server_suite(&spec, app, &suite, &suite_opts)?;
        eprintln!("  {} done in {:.1} s", r.name, r.elapsed.as_secs_f64());
        impls.push(r);
    }
    let client_opts = ClientOptions {
        run: opts.clone(),
        timeout: timeout.max(Duration::from_secs(10)),
        pause,
    };
    for command in &cli.client {
        eprintln!("running client:{command} ...");
        let started = std::time::Instant::now();
        let mut r = run_client(command, &cases, &client_opts);
        r.groups
            .extend(lhp_conformance::client::run_client_behaviour(
                command,
                &client_opts,
            ));
        if resources {
            r.groups
                .extend(lhp_conformance::client::run_client_resources(
                    command,
                    &client_opts,
                ));
        }
        r.elapsed = started.elapsed();
        eprintln!("  {} done in {:.1} s", r.name, r.elapsed.as_secs_f64());
        impls.push(r);
    }
    let report = Report {
        cases,
        groups: suite.group_cases(),
        impls,
    };
    let out = cli.out.unwrap_or_else(|| root().join("reports/out"));
    let files = report
        .write(&out)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    for f in files {
        eprintln!("wrote {}", f.display());
    }
    print!("{}", report.summary());
    Ok(if report.totals().required_failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
