//! `lhp-conformance`: see `spec/conformance.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use lhp_conformance::engines::{Blocking, Tokio};
use lhp_conformance::report::Report;
use lhp_conformance::runner::{self, Options};
use lhp_conformance::stdio::StdioTestee;
use lhp_conformance::testee::{CodecDecode, CodecEvents, Testee};

/// The LHP/1 conformance harness (spec/conformance.md).
#[derive(Parser, Debug)]
#[command(name = "lhp-conformance", version)]
struct Cli {
    /// In-process implementations: codec, blocking, tokio, all.
    #[arg(long = "impl", value_name = "NAME")]
    implementations: Vec<String>,
    /// A testee process speaking the stdio protocol (run with `sh -c`).
    #[arg(long, value_name = "COMMAND")]
    stdio: Vec<String>,
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
    let vectors = cli.vectors.unwrap_or_else(lhp_vectors::default_dir);
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
    if testees.is_empty() {
        return Err("nothing to test: give --impl or --stdio (--server and --client are not implemented yet)".into());
    }
    eprintln!("{} cases from {}", cases.len(), vectors.display());
    let mut impls = Vec::new();
    for t in &mut testees {
        eprintln!("running {} ...", t.name());
        let r = runner::run_all(t.as_mut(), &cases, &opts);
        eprintln!("  {} done in {:.1} s", r.name, r.elapsed.as_secs_f64());
        impls.push(r);
    }
    let report = Report { cases, impls };
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
