//! Everything one server under test gets in one run: the vector-based echo and bad-input
//! cases (§4 of `spec/conformance.md`), the conversation groups (§6) and, when the harness
//! started the server itself, the `resources` group (§7).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lhp_vectors::conversation::{Conversation, PeerConfig};

use crate::case::Case;
use crate::conversation::{self, expand_with, ConvOptions, Target, TempRoot};
use crate::process::ServerProcess;
use crate::resources;
use crate::runner::{GroupCase, ImplReport};
use crate::server::{run_server, ServerOptions};

/// A server under test.
#[derive(Clone, Debug)]
pub enum ServerSpec {
    /// Running at this address (`--server`, `--app-server`).
    Addr(SocketAddr),
    /// Started by the harness from this command template (`--server-cmd`, `--app-server-cmd`).
    Command(String),
}

/// What a run holds: the vector cases and the conversations.
#[derive(Clone, Debug, Default)]
pub struct Suite {
    /// Decode vectors as cases.
    pub cases: Vec<Case>,
    /// Conversation vectors.
    pub conversations: Vec<Conversation>,
}

impl Suite {
    /// Every non-vector case, for the report: the conversations, the client behaviour cases,
    /// then the resource cases.
    pub fn group_cases(&self) -> Vec<GroupCase> {
        self.conversations
            .iter()
            .map(conversation::group_case)
            .chain(crate::client::behaviour_group_cases())
            .chain(resources::group_cases())
            .collect()
    }
}

/// Options of the server modes.
#[derive(Clone, Debug, Default)]
pub struct SuiteOptions {
    /// The vector-based cases.
    pub server: ServerOptions,
    /// The conversations.
    pub conv: ConvOptions,
    /// Whether to run the `resources` group (needs a started server).
    pub resources: bool,
}

/// Runs the suite against one server; `app` adds the `app` conversation group.
pub fn run_server_suite(
    spec: &ServerSpec,
    app: bool,
    suite: &Suite,
    opts: &SuiteOptions,
) -> Result<ImplReport, String> {
    let start = Instant::now();
    let mode = if app { "app-server" } else { "server" };
    let (name, target) = match spec {
        ServerSpec::Addr(a) => (format!("{mode}:{a}"), Target::Addr(*a)),
        ServerSpec::Command(c) => (format!("{mode}-cmd:{c}"), Target::Command(c.clone())),
    };
    let mut report = if suite.cases.is_empty() {
        ImplReport {
            name: name.clone(),
            about: String::new(),
            results: Vec::new(),
            groups: Vec::new(),
            elapsed: Duration::ZERO,
        }
    } else {
        match spec {
            ServerSpec::Addr(a) => run_server(*a, &name, &suite.cases, &opts.server),
            ServerSpec::Command(c) => {
                let root = TempRoot::new().map_err(|e| format!("cannot make a root: {e}"))?;
                let p = start_default(c, &root, &opts.conv)?;
                run_server(p.addr, &name, &suite.cases, &opts.server)
            }
        }
    };
    let convs = conversation::select(&suite.conversations, app);
    report.groups.extend(conversation::run_conversations(
        &target, &name, &convs, &opts.conv,
    ));
    let mut about = vec![report.about.clone()];
    about.push(format!(
        "{} conversation(s){}",
        convs.len(),
        if (opts.conv.time_scale - 1.0).abs() > f64::EPSILON {
            format!(" at time scale {}", opts.conv.time_scale)
        } else {
            String::new()
        }
    ));
    if opts.resources {
        if let ServerSpec::Command(c) = spec {
            let root = TempRoot::new().map_err(|e| format!("cannot make a root: {e}"))?;
            let p = start_default(c, &root, &opts.conv)?;
            let r = resources::run_server_resources(&p, &name, &opts.server.run);
            about.push(r.1);
            report.groups.extend(r.0);
        }
    }
    report.about = about
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Starts a command template with the default settings and an empty served root.
pub fn start_default(
    template: &str,
    root: &TempRoot,
    opts: &ConvOptions,
) -> Result<ServerProcess, String> {
    let (cmd, env) = expand_with(
        template,
        &PeerConfig::default(),
        "lhp1",
        &[],
        &root.path,
        opts.time_scale,
    );
    ServerProcess::start(&cmd, &env, opts.start_timeout)
}
