//! `[batch]`: the raw schema, its defaults and its ranges.

use std::time::Duration;

use serde::Deserialize;

use crate::settings::{ConfigProblem, Locator, in_range};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    #[serde(default = "defaults::max_rows")]
    pub max_rows: usize,
    #[serde(default = "defaults::max_bytes")]
    pub max_bytes: usize,
    #[serde(default = "defaults::max_age_ms")]
    pub max_age_ms: u64,
}

impl BatchConfig {
    pub fn limits(&self) -> crate::batch::BatchLimits {
        crate::batch::BatchLimits {
            max_rows: self.max_rows,
            max_bytes: self.max_bytes,
            max_age: Duration::from_millis(self.max_age_ms),
        }
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_rows: defaults::max_rows(),
            max_bytes: defaults::max_bytes(),
            max_age_ms: defaults::max_age_ms(),
        }
    }
}

impl BatchConfig {
    /// Reports every value out of its range, at its key in the `[batch]` table.
    pub fn check(&self, at: &Locator<'_>, problems: &mut Vec<ConfigProblem>) {
        let batch = at.section("batch");
        let mut range = |key: &str, value: u64, lo: u64, hi: u64| {
            in_range(at, problems, batch.clone(), key, value, lo, hi)
        };
        range("max_rows", self.max_rows as u64, 1, 1_000_000);
        range("max_bytes", self.max_bytes as u64, 1024, 64 << 20);
        range("max_age_ms", self.max_age_ms, 1, 3_600_000);
    }
}

mod defaults {
    pub fn max_rows() -> usize {
        5000
    }
    pub fn max_bytes() -> usize {
        1024 * 1024
    }
    pub fn max_age_ms() -> u64 {
        1000
    }
}
