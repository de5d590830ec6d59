//! # lhp-conformance: the LHP/1 conformance harness
//!
//! Replays every vector of `spec/vectors/` to an implementation under many chunkings of the
//! same octets (every cut point, every pair of cut points, one octet at a time, random
//! partitions, every truncation) and judges each outcome with [`lhp_vectors::check`]. It also
//! replays conversation vectors against servers ([`conversation`]: error frames and the close,
//! pipelining, half-close, deadlines, `busy`, the application messages) and measures the
//! memory of every implementation it runs as a process ([`resources`]). The command-line tool,
//! the `--stdio`/`--server`/`--app-server`/`--client` protocols and the `record` proxy are
//! described in `spec/conformance.md`.
//!
//! ```
//! use lhp_conformance::{case::Case, runner, testee::CodecDecode};
//!
//! let cases: Vec<Case> = lhp_vectors::load_default()
//!     .unwrap()
//!     .into_iter()
//!     .filter(|v| v.id.starts_with("framing/"))
//!     .filter_map(Case::new)
//!     .collect();
//! let report = runner::run_all(&mut CodecDecode, &cases, &runner::Options::default());
//! assert_eq!(report.count(runner::Status::is_fail), 0);
//! ```

#![warn(missing_docs)]

pub mod case;
pub mod client;
pub mod conversation;
pub mod engines;
pub mod plan;
pub mod process;
pub mod record;
pub mod report;
pub mod resources;
pub mod runner;
pub mod server;
pub mod stdio;
pub mod suite;
pub mod tcp;
pub mod testee;
pub mod udp;
pub mod verdict;

use std::path::Path;

use case::Case;

/// Loads the vectors in `dir` as cases, keeping those whose id contains one of `filters` (all
/// if `filters` is empty), and appends the two coalesced cases (when no filter is given, or a
/// filter matches `coalesced/`).
pub fn load_cases(dir: &Path, filters: &[String]) -> Result<Vec<Case>, String> {
    let vectors = lhp_vectors::load_dir(dir).map_err(|e| e.to_string())?;
    let all: Vec<Case> = vectors.into_iter().filter_map(Case::new).collect();
    let keep = |id: &str| filters.is_empty() || filters.iter().any(|f| id.contains(f.as_str()));
    let mut cases: Vec<Case> = all.iter().filter(|c| keep(c.id())).cloned().collect();
    for profile in [lhp_codec::Profile::Lhp1, lhp_codec::Profile::SeedCompat] {
        if let Some(c) = case::coalesced(&all, profile) {
            if keep(c.id()) {
                cases.push(c);
            }
        }
    }
    Ok(cases)
}
