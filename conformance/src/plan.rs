//! Split plans: the chunk lengths in which a stream reaches a decoder, and the strategies that
//! generate them (`spec/conformance.md` §1.2).

use std::fmt;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The chunk lengths of one run, run-length encoded: `(len, count)` pairs, every `len >= 1`.
///
/// ```
/// use lhp_conformance::plan::Plan;
///
/// let p = Plan::from_cuts(10, &[3, 4]);
/// assert_eq!(p.chunks().collect::<Vec<_>>(), vec![3, 1, 6]);
/// assert_eq!(p.cuts(), vec![3, 4]);
/// assert_eq!(Plan::bytes(3).chunks().count(), 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    runs: Vec<(usize, usize)>,
}

impl Plan {
    /// One chunk holding the whole stream (no chunks at all for an empty one).
    pub fn whole(len: usize) -> Plan {
        Plan::from_cuts(len, &[])
    }

    /// One octet at a time.
    pub fn bytes(len: usize) -> Plan {
        Plan {
            runs: if len == 0 { Vec::new() } else { vec![(1, len)] },
        }
    }

    /// Chunks ending at the given cut points (sorted, each in `1..len`; others are ignored).
    pub fn from_cuts(len: usize, cuts: &[usize]) -> Plan {
        let mut plan = Plan { runs: Vec::new() };
        let mut at = 0;
        for &c in cuts {
            if c > at && c < len {
                plan.push(c - at);
                at = c;
            }
        }
        if len > at {
            plan.push(len - at);
        }
        plan
    }

    /// Chunks of the given lengths (zero lengths are dropped).
    pub fn from_lengths(lengths: &[usize]) -> Plan {
        let mut plan = Plan { runs: Vec::new() };
        for &n in lengths {
            plan.push(n);
        }
        plan
    }

    fn push(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        match self.runs.last_mut() {
            Some((len, count)) if *len == n => *count += 1,
            _ => self.runs.push((n, 1)),
        }
    }

    /// The run-length encoded chunks.
    pub fn runs(&self) -> &[(usize, usize)] {
        &self.runs
    }

    /// The chunk lengths in order.
    pub fn chunks(&self) -> impl Iterator<Item = usize> + '_ {
        self.runs
            .iter()
            .flat_map(|&(len, count)| std::iter::repeat_n(len, count))
    }

    /// The number of chunks.
    pub fn len(&self) -> usize {
        self.runs.iter().map(|r| r.1).sum()
    }

    /// True for a plan with no chunks (an empty stream).
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The total length.
    pub fn total(&self) -> usize {
        self.runs.iter().map(|&(l, c)| l * c).sum()
    }

    /// The cut points: the offsets where one chunk ends and the next begins.
    pub fn cuts(&self) -> Vec<usize> {
        let mut at = 0;
        let mut out = Vec::with_capacity(self.len());
        for n in self.chunks() {
            at += n;
            out.push(at);
        }
        out.pop();
        out
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .runs
            .iter()
            .map(|&(l, c)| {
                if c == 1 {
                    l.to_string()
                } else {
                    format!("{l}×{c}")
                }
            })
            .collect();
        write!(f, "[{}]", parts.join(", "))
    }
}

/// A split strategy (§1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// One chunk.
    Whole,
    /// Every single cut point (sampled for long streams).
    Cut,
    /// Every pair of cut points (short streams).
    Pairs,
    /// One octet at a time.
    Bytes,
    /// Seeded random partitions.
    Random,
    /// The stream cut off at an offset, then end of stream.
    Truncate,
}

impl Strategy {
    /// All strategies in the order they run.
    pub const ALL: [Strategy; 6] = [
        Strategy::Whole,
        Strategy::Cut,
        Strategy::Pairs,
        Strategy::Bytes,
        Strategy::Random,
        Strategy::Truncate,
    ];

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Whole => "whole",
            Strategy::Cut => "cut",
            Strategy::Pairs => "pairs",
            Strategy::Bytes => "bytes",
            Strategy::Random => "random",
            Strategy::Truncate => "truncate",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many plans an implementation gets per vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// `cut` and `truncate` are exhaustive for streams up to this length...
    pub exhaustive_up_to: usize,
    /// ...and use this many sampled points above it...
    pub sample: usize,
    /// ...but no more than `sample_octets / len` (at least 16) on very long streams, so the
    /// octets replayed per strategy stay bounded.
    pub sample_octets: usize,
    /// `pairs` runs for streams up to this length.
    pub pairs_up_to: usize,
    /// `bytes` runs for streams up to this length.
    pub bytes_up_to: usize,
    /// The number of `random` partitions.
    pub random: usize,
}

impl Budget {
    /// In-process implementations: everything (§1.2).
    pub const FULL: Budget = Budget {
        exhaustive_up_to: 16 << 10,
        sample: 256,
        sample_octets: 512 << 20,
        pairs_up_to: 64,
        bytes_up_to: usize::MAX,
        random: 8,
    };

    /// Stdio testees (§3.5).
    pub const STDIO: Budget = Budget {
        exhaustive_up_to: 0,
        sample: 64,
        sample_octets: 64 << 20,
        pairs_up_to: 24,
        bytes_up_to: 64 << 10,
        random: 8,
    };

    /// `--quick`.
    pub const QUICK: Budget = Budget {
        exhaustive_up_to: 0,
        sample: 64,
        sample_octets: 64 << 20,
        pairs_up_to: 0,
        bytes_up_to: 64 << 10,
        random: 2,
    };

    /// Whether `cut`/`truncate` are sampled for a stream of `len` octets.
    pub fn is_sampled(&self, len: usize) -> bool {
        len > self.exhaustive_up_to && len.saturating_sub(1) > self.sample_size(len)
    }

    /// The smaller of two budgets, field by field.
    pub fn min(&self, other: &Budget) -> Budget {
        Budget {
            exhaustive_up_to: self.exhaustive_up_to.min(other.exhaustive_up_to),
            sample: self.sample.min(other.sample),
            sample_octets: self.sample_octets.min(other.sample_octets),
            pairs_up_to: self.pairs_up_to.min(other.pairs_up_to),
            bytes_up_to: self.bytes_up_to.min(other.bytes_up_to),
            random: self.random.min(other.random),
        }
    }

    /// How many points are sampled on a stream of `len` octets.
    pub fn sample_size(&self, len: usize) -> usize {
        (self.sample_octets / len.max(1)).clamp(16, self.sample.max(16))
    }
}

/// The cut points (or truncation offsets) to try on a stream of `len` octets: all of `1..len`
/// when the budget allows, otherwise a deterministic sample of at most `budget.sample` points
/// that favours the first and last 8 octets and the frame `boundaries` ±2.
pub fn points(len: usize, boundaries: &[usize], budget: &Budget) -> Vec<usize> {
    if len < 2 {
        return Vec::new();
    }
    if !budget.is_sampled(len) {
        return (1..len).collect();
    }
    let cap = budget.sample_size(len);
    let mut picked: Vec<usize> = Vec::new();
    let add = |p: usize, picked: &mut Vec<usize>| {
        if p >= 1 && p < len && picked.len() < cap && !picked.contains(&p) {
            picked.push(p);
        }
    };
    for p in 1..=8 {
        add(p, &mut picked);
        add(len.saturating_sub(p), &mut picked);
    }
    for &b in boundaries {
        for p in b.saturating_sub(2)..=b + 2 {
            add(p, &mut picked);
        }
    }
    let room = cap.saturating_sub(picked.len());
    if room > 0 {
        let step = (len / (room + 1)).max(1);
        for i in 1..=room {
            add(i * step, &mut picked);
        }
    }
    picked.sort_unstable();
    picked
}

/// Seeded random partitions of a stream of `len` octets: chunk sizes drawn from 1–7 octets
/// (to split prefixes and headers) and from larger runs.
pub fn random_plans(len: usize, count: usize, seed: u64) -> Vec<Plan> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        // Larger chunks on big streams, so a partition has a few thousand chunks at most.
        let big = (len / 2048).max(64);
        let mut lengths = Vec::new();
        let mut left = len;
        while left > 0 {
            let n = match (i + lengths.len()) % 3 {
                0 => rng.gen_range(1..=7),
                1 => rng.gen_range(1..=64),
                _ => rng.gen_range(1..=big),
            };
            let n = n.min(left);
            lengths.push(n);
            left -= n;
        }
        out.push(Plan::from_lengths(&lengths));
    }
    out
}

/// Shrinks a failing cut set: removes blocks of cut points, halving the block size, while
/// `still_fails` says the smaller set still fails. Stops after `max_tries` calls. Returns the
/// smallest failing set found and whether the search finished (every single removal tried).
pub fn shrink_cuts(
    cuts: Vec<usize>,
    max_tries: usize,
    mut still_fails: impl FnMut(&[usize]) -> bool,
) -> (Vec<usize>, bool) {
    let mut cuts = cuts;
    let mut tries = 0;
    if cuts.is_empty() {
        return (cuts, true);
    }
    tries += 1;
    if still_fails(&[]) {
        return (Vec::new(), true);
    }
    let mut block = cuts.len().div_ceil(2);
    loop {
        let mut i = 0;
        let mut removed_any = false;
        while i < cuts.len() {
            if tries >= max_tries {
                return (cuts, false);
            }
            let end = (i + block).min(cuts.len());
            let candidate: Vec<usize> = cuts[..i].iter().chain(&cuts[end..]).copied().collect();
            tries += 1;
            if still_fails(&candidate) {
                cuts = candidate;
                removed_any = true;
            } else {
                i = end;
            }
        }
        if block == 1 && !removed_any {
            return (cuts, true);
        }
        block = (block / 2).max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_the_stream() {
        for len in [0usize, 1, 2, 5, 100] {
            assert_eq!(Plan::whole(len).total(), len);
            assert_eq!(Plan::bytes(len).total(), len);
            for p in random_plans(len, 4, 7) {
                assert_eq!(p.total(), len);
                assert!(p.chunks().all(|c| c >= 1));
            }
        }
        assert_eq!(Plan::from_cuts(5, &[0, 2, 2, 5, 9]).cuts(), vec![2]);
    }

    #[test]
    fn sampled_points_include_boundaries() {
        let b = Budget::STDIO;
        let pts = points(100_000, &[50_000], &b);
        assert!(pts.len() <= b.sample);
        for p in [1, 8, 99_999, 49_998, 50_000, 50_002] {
            assert!(pts.contains(&p), "{p} missing");
        }
        assert_eq!(points(10, &[], &Budget::FULL), (1..10).collect::<Vec<_>>());
    }

    #[test]
    fn shrinking_finds_the_one_bad_cut() {
        let all: Vec<usize> = (1..1000).collect();
        let (min, done) = shrink_cuts(all, 10_000, |c| c.contains(&517));
        assert_eq!((min, done), (vec![517], true));
        let (min, _) = shrink_cuts(vec![1, 2, 3], 100, |c| c.len() >= 2);
        assert_eq!(min.len(), 2);
    }
}
