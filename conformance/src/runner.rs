//! Runs cases against an implementation under every split strategy, shrinks failures, and
//! collects verdicts.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use lhp_vectors::{check, Expect, Outcome, Verdict};
use serde::Deserialize;

use crate::case::{describe, Case};
use crate::plan::{points, random_plans, shrink_cuts, Budget, Plan, Strategy};
use crate::testee::{Job, Run, Testee};

/// The verdict on one vector for one implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Right under every plan.
    Pass,
    /// An alternative the spec allows.
    NonStrict,
    /// Wrong under at least one plan.
    Fail,
    /// Not run, with a reason.
    Skipped,
    /// The implementation crashed.
    Crash,
    /// The implementation did not answer in time.
    Timeout,
}

impl Status {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::NonStrict => "non-strict",
            Status::Fail => "fail",
            Status::Skipped => "skipped",
            Status::Crash => "crash",
            Status::Timeout => "timeout",
        }
    }

    /// Counted as passed in the summary line.
    pub fn is_pass(self) -> bool {
        matches!(self, Status::Pass | Status::NonStrict)
    }

    /// Counted as failed in the summary line.
    pub fn is_fail(self) -> bool {
        matches!(self, Status::Fail | Status::Crash | Status::Timeout)
    }
}

/// The first failing plan of a case, shrunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The strategy that found it.
    pub strategy: Strategy,
    /// The cut points of the (shrunk) failing plan, offsets into the decoded stream.
    pub cuts: Vec<usize>,
    /// For `truncate`: where the stream was cut off.
    pub truncate: Option<usize>,
    /// Whether shrinking finished (false: its budget ran out first).
    pub shrunk: bool,
    /// What was expected.
    pub expected: String,
    /// What the implementation did.
    pub got: String,
    /// The judge's explanation.
    pub reason: String,
}

/// The result of one vector on one implementation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    /// The vector id.
    pub id: String,
    /// Its tier.
    pub tier: String,
    /// The verdict.
    pub status: Status,
    /// A one-line explanation (skip reason, failure reason, non-strict alternative).
    pub detail: String,
    /// The failing plan, for fail/crash/timeout.
    pub failure: Option<Failure>,
    /// Plans run.
    pub plans: usize,
    /// Whether `cut`/`truncate` were sampled.
    pub sampled: bool,
    /// Truncation offsets whose expectation could not be derived (not run).
    pub underived: usize,
}

/// One implementation's results.
#[derive(Clone, Debug)]
pub struct ImplReport {
    /// Its name.
    pub name: String,
    /// What it is and which reductions applied.
    pub about: String,
    /// One result per case, in case order.
    pub results: Vec<CaseResult>,
    /// Results of the non-vector groups (conversations, resources), by id: see
    /// [`GroupCase`].
    pub groups: Vec<CaseResult>,
    /// Wall time.
    pub elapsed: Duration,
}

/// A case that is not a decode vector: a conversation (`spec/vectors/conversations/`) or a
/// resource case. Reports list them after the vectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCase {
    /// `group/slug`.
    pub id: String,
    /// The spec section(s) it proves.
    pub spec: String,
    /// `required` or `recommended`.
    pub tier: String,
    /// The bug classes it catches.
    pub flags: Vec<String>,
    /// What it checks.
    pub description: String,
}

impl GroupCase {
    /// Its group: the part of the id before the first `/`.
    pub fn group(&self) -> &str {
        self.id.split('/').next().unwrap_or_default()
    }
}

impl ImplReport {
    /// Count of results (vectors and groups) with `status`.
    pub fn count(&self, f: impl Fn(Status) -> bool) -> usize {
        self.all().filter(|r| f(r.status)).count()
    }

    /// Every result: the vectors', then the groups'.
    pub fn all(&self) -> impl Iterator<Item = &CaseResult> {
        self.results.iter().chain(&self.groups)
    }

    /// The result of group case `id`, if this implementation ran it.
    pub fn group_result(&self, id: &str) -> Option<&CaseResult> {
        self.groups.iter().find(|r| r.id == id)
    }
}

/// One entry of `conformance/skips.toml`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Skip {
    /// An implementation name, or `*`.
    #[serde(rename = "impl")]
    pub implementation: String,
    /// A vector id; a trailing `*` matches a prefix.
    pub case: String,
    /// Why (required, non-empty).
    pub reason: String,
}

#[derive(Deserialize)]
struct SkipFile {
    #[serde(default)]
    skip: Vec<Skip>,
}

impl Skip {
    /// Whether this entry skips vector `id` for `implementation`.
    pub fn matches(&self, implementation: &str, id: &str) -> bool {
        let imp = self.implementation == "*" || self.implementation == implementation;
        let case = match self.case.strip_suffix('*') {
            Some(prefix) => id.starts_with(prefix),
            None => self.case == id,
        };
        imp && case
    }
}

/// Reads a skip list; a missing file is an empty list, an entry without a reason an error.
pub fn load_skips(path: &Path) -> Result<Vec<Skip>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let file: SkipFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for s in &file.skip {
        if s.reason.trim().is_empty() {
            return Err(format!(
                "{}: the skip of {:?} for {:?} has no reason",
                path.display(),
                s.case,
                s.implementation
            ));
        }
    }
    Ok(file.skip)
}

/// Options of a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Seed for random partitions.
    pub seed: u64,
    /// Use [`Budget::QUICK`] (or the implementation's own budget if smaller).
    pub quick: bool,
    /// Skips.
    pub skips: Vec<Skip>,
    /// Print a progress line per failing case.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 1,
            quick: false,
            skips: Vec::new(),
            verbose: false,
        }
    }
}

/// Runs every case against `testee`.
pub fn run_all(testee: &mut dyn Testee, cases: &[Case], opts: &Options) -> ImplReport {
    let start = Instant::now();
    let name = testee.name();
    let mut budget = testee.budget();
    if opts.quick {
        budget = budget.min(&Budget::QUICK);
    }
    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        let r = if let Some(s) = opts.skips.iter().find(|s| s.matches(&name, case.id())) {
            skipped(case, format!("skips.toml: {}", s.reason))
        } else if !testee.supports(case.profile) {
            skipped(
                case,
                format!("profile {} not offered by the testee", case.profile),
            )
        } else {
            run_case(testee, case, &budget, opts.seed)
        };
        if opts.verbose && r.status.is_fail() {
            eprintln!("{name}: {} {}: {}", r.status.name(), r.id, r.detail);
        }
        results.push(r);
    }
    ImplReport {
        about: testee.about(),
        name,
        results,
        groups: Vec::new(),
        elapsed: start.elapsed(),
    }
}

fn skipped(case: &Case, reason: String) -> CaseResult {
    CaseResult {
        id: case.id().to_owned(),
        tier: case.vector.tier.clone(),
        status: Status::Skipped,
        detail: reason,
        failure: None,
        plans: 0,
        sampled: false,
        underived: 0,
    }
}

/// One plan to run.
struct Trial {
    strategy: Strategy,
    plan: Plan,
    truncate: Option<usize>,
}

/// Calls `f` with every trial of `case` under `budget`, until it breaks.
fn for_each_trial(
    case: &Case,
    budget: &Budget,
    seed: u64,
    mut f: impl FnMut(Trial) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let len = case.stream().len();
    let coalesced = case.id().starts_with("coalesced/");
    let boundaries = case.stream_boundaries();
    f(Trial {
        strategy: Strategy::Whole,
        plan: Plan::whole(len),
        truncate: None,
    })?;
    let cut_points = points(len, &boundaries, budget);
    if !coalesced {
        for &c in &cut_points {
            f(Trial {
                strategy: Strategy::Cut,
                plan: Plan::from_cuts(len, &[c]),
                truncate: None,
            })?;
        }
        if len <= budget.pairs_up_to {
            for a in 1..len {
                for b in a + 1..len {
                    f(Trial {
                        strategy: Strategy::Pairs,
                        plan: Plan::from_cuts(len, &[a, b]),
                        truncate: None,
                    })?;
                }
            }
        }
    }
    if len > 1 && len <= budget.bytes_up_to {
        f(Trial {
            strategy: Strategy::Bytes,
            plan: Plan::bytes(len),
            truncate: None,
        })?;
    }
    for plan in random_plans(len, budget.random, seed ^ hash(case.id())) {
        f(Trial {
            strategy: Strategy::Random,
            plan,
            truncate: None,
        })?;
    }
    if !coalesced {
        let mut truncations = vec![0];
        truncations.extend(&cut_points);
        for t in truncations {
            if t < len {
                f(Trial {
                    strategy: Strategy::Truncate,
                    plan: Plan::whole(t),
                    truncate: Some(t),
                })?;
            }
        }
    }
    ControlFlow::Continue(())
}

/// FNV-1a of `s`: a stable per-case seed.
pub fn hash(s: &str) -> u64 {
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

enum Judged {
    Ok(Verdict),
    Crash(String),
    Timeout,
}

fn judge(testee: &mut dyn Testee, job: &Job<'_>, expect: &Expect) -> (Judged, Option<Outcome>) {
    match testee.run(job) {
        Run::Outcome(o) => {
            let verdict = match crate::verdict::invalid_value(&o) {
                Some(why) => Verdict::Fail(why),
                None => check(expect, &o),
            };
            (Judged::Ok(verdict), Some(o))
        }
        Run::Crash(why) => (Judged::Crash(why), None),
        Run::Timeout => (Judged::Timeout, None),
    }
}

/// Runs one case: every trial until the first failure, which is then shrunk.
pub fn run_case(testee: &mut dyn Testee, case: &Case, budget: &Budget, seed: u64) -> CaseResult {
    let stream = case.stream();
    let bodies = case_bodies(case);
    let mut plans = 0;
    let mut underived = 0;
    let mut non_strict: Option<String> = None;
    let mut bad: Option<(Status, Trial, Expect, String, String)> = None;
    let _ = for_each_trial(case, budget, seed, |trial| {
        let expect = match trial.truncate {
            Some(t) => match case.truncated(t) {
                Some(e) => e,
                None => {
                    underived += 1;
                    return ControlFlow::Continue(());
                }
            },
            None => case.vector.expect.clone(),
        };
        let part = &stream[..trial.plan.total().min(stream.len())];
        let job = Job {
            stream: part,
            plan: &trial.plan,
            profile: case.profile,
            limits: case.limits,
            skip: case.skip(),
            bodies: &bodies,
        };
        plans += 1;
        let (judged, outcome) = judge(testee, &job, &expect);
        let got = || outcome.as_ref().map(describe_outcome).unwrap_or_default();
        match judged {
            Judged::Ok(Verdict::Pass) => ControlFlow::Continue(()),
            Judged::Ok(Verdict::NonStrict) => {
                non_strict.get_or_insert_with(got);
                ControlFlow::Continue(())
            }
            Judged::Ok(Verdict::Fail(reason)) => {
                bad = Some((Status::Fail, trial, expect, got(), reason));
                ControlFlow::Break(())
            }
            Judged::Crash(why) => {
                bad = Some((Status::Crash, trial, expect, String::new(), why));
                ControlFlow::Break(())
            }
            Judged::Timeout => {
                bad = Some((
                    Status::Timeout,
                    trial,
                    expect,
                    String::new(),
                    "no reply in time".into(),
                ));
                ControlFlow::Break(())
            }
        }
    });
    let sampled = budget.is_sampled(stream.len());
    let mut result = CaseResult {
        id: case.id().to_owned(),
        tier: case.vector.tier.clone(),
        status: Status::Pass,
        detail: String::new(),
        failure: None,
        plans,
        sampled,
        underived,
    };
    if let Some((status, trial, expect, got, reason)) = bad {
        let (cuts, shrunk, got, reason) = if status == Status::Fail {
            shrink(testee, case, &trial, &expect, got, reason)
        } else {
            (trial.plan.cuts(), false, got, reason)
        };
        result.status = status;
        result.detail = format!(
            "{} plan{}{}: {}",
            trial.strategy,
            if cuts.is_empty() {
                " (one chunk)".to_owned()
            } else {
                format!(" cut at {cuts:?}")
            },
            trial
                .truncate
                .map(|t| format!(", stream ending after {t} octets"))
                .unwrap_or_default(),
            reason
        );
        result.failure = Some(Failure {
            strategy: trial.strategy,
            cuts,
            truncate: trial.truncate,
            shrunk,
            expected: describe(&expect),
            got,
            reason,
        });
    } else if let Some(got) = non_strict {
        result.status = Status::NonStrict;
        result.detail = format!("acceptable alternative: {got}");
    }
    result
}

/// Shrinks a failing trial to the fewest cut points that still fail.
fn shrink(
    testee: &mut dyn Testee,
    case: &Case,
    trial: &Trial,
    expect: &Expect,
    got: String,
    reason: String,
) -> (Vec<usize>, bool, String, String) {
    let stream = case.stream();
    let bodies = case_bodies(case);
    let part = &stream[..trial.plan.total().min(stream.len())];
    let len = part.len();
    let max_tries = if testee.budget().exhaustive_up_to > 0 {
        400
    } else {
        64
    };
    let mut last = (got, reason);
    let (cuts, done) = shrink_cuts(trial.plan.cuts(), max_tries, |cuts| {
        let plan = Plan::from_cuts(len, cuts);
        let job = Job {
            stream: part,
            plan: &plan,
            profile: case.profile,
            limits: case.limits,
            skip: case.skip(),
            bodies: &bodies,
        };
        match judge(testee, &job, expect) {
            (Judged::Ok(Verdict::Fail(r)), o) => {
                last = (o.as_ref().map(describe_outcome).unwrap_or_default(), r);
                true
            }
            _ => false,
        }
    });
    (cuts, done, last.0, last.1)
}

fn case_bodies(case: &Case) -> Vec<&[u8]> {
    (0..case.vector.expect.frames().len())
        .map_while(|i| case.body_of(i))
        .collect()
}

/// A short description of an outcome.
pub fn describe_outcome(o: &Outcome) -> String {
    match &o.error {
        None => format!("{} frame(s), clean end", o.frames.len()),
        Some(e) => format!(
            "{} frame(s), then {} at {}{}",
            o.frames.len(),
            e.code,
            e.offset,
            e.missing
                .map(|m| format!(" ({m} missing)"))
                .unwrap_or_default()
        ),
    }
}
