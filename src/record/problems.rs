//! Every kind of problem a row can report, gathered from the formats that define them, and
//! the counters kept per kind.

use crate::decode;
use crate::row::{COMMON_PROBLEMS, Problem, ProblemKind};

/// Every problem kind, in the order reports and `/metrics` list them: the common ones, then
/// each format's ([`decode::FORMAT_PROBLEMS`]).
pub const PROBLEM_KINDS: [ProblemKind; kind_count()] = all_kinds();

const fn kind_count() -> usize {
    let mut n = COMMON_PROBLEMS.len();
    let mut i = 0;
    while i < decode::FORMAT_PROBLEMS.len() {
        n += decode::FORMAT_PROBLEMS[i].len();
        i += 1;
    }
    n
}

const fn all_kinds() -> [ProblemKind; kind_count()] {
    let mut all = [ProblemKind::INVALID_UTF8; kind_count()];
    let mut n = 0;
    while n < COMMON_PROBLEMS.len() {
        all[n] = COMMON_PROBLEMS[n];
        n += 1;
    }
    let mut i = 0;
    while i < decode::FORMAT_PROBLEMS.len() {
        let kinds = decode::FORMAT_PROBLEMS[i];
        let mut k = 0;
        while k < kinds.len() {
            all[n] = kinds[k];
            n += 1;
            k += 1;
        }
        i += 1;
    }
    all
}

/// Where `kind` is in [`PROBLEM_KINDS`]. Every kind a format reports is listed there (a test
/// checks each format's list is included), so an unknown one is a programming error; it is
/// counted with the first kind rather than lost.
pub fn kind_index(kind: ProblemKind) -> usize {
    PROBLEM_KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

/// Problem counters, one per kind, plus the number of rows that had any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemCounts {
    counts: [u64; PROBLEM_KINDS.len()],
    pub rows_with_problems: u64,
}

impl Default for ProblemCounts {
    fn default() -> Self {
        Self {
            counts: [0; PROBLEM_KINDS.len()],
            rows_with_problems: 0,
        }
    }
}

impl ProblemCounts {
    pub fn record(&mut self, problems: &[Problem]) {
        if problems.is_empty() {
            return;
        }
        self.rows_with_problems += 1;
        for p in problems {
            self.counts[kind_index(p.kind)] += 1;
        }
    }

    /// Adds another set of counts to these.
    pub fn add(&mut self, other: &ProblemCounts) {
        self.rows_with_problems += other.rows_with_problems;
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
    }

    pub fn get(&self, kind: ProblemKind) -> u64 {
        self.counts[kind_index(kind)]
    }

    /// `(name, count)` for every kind seen at least once.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        PROBLEM_KINDS
            .iter()
            .zip(self.counts)
            .map(|(k, n)| (k.name(), n))
            .filter(|(_, n)| *n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_under_its_own_name() {
        let mut names: Vec<&str> = PROBLEM_KINDS.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PROBLEM_KINDS.len(), "a name used twice");
        for kind in decode::FORMAT_PROBLEMS.iter().flat_map(|k| k.iter()) {
            assert_eq!(PROBLEM_KINDS[kind_index(*kind)], *kind);
        }
    }
}
