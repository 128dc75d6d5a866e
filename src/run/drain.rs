//! `cefgate spool drain`: the outputs of a run without its input, until the spools are
//! empty or the deadline passes.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::RunError;
use super::outputs::{Outputs, settle_outputs};
use super::shutdown::Deadline;
use crate::buffer::{self, BufferSettings};
use crate::config::Resolved;
use crate::metrics::Metrics;

/// What `cefgate spool drain` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainSummary {
    pub chunks: usize,
    pub rows: usize,
    pub delivered: u64,
    pub dead_lettered: u64,
    /// Chunks still in the spool folders afterwards (not delivered in time).
    pub left: usize,
}

/// `cefgate spool drain`: delivers what a stopped instance left in its spool (a pod scaled
/// away, a host retired) through the configured outputs, and returns. Nothing is received.
/// Rows still undelivered at `timeout` stay in the spool; rows the service refuses go to the
/// dead-letter file, as in a run.
/// `runtime` is the process's one runtime (the binary's).
pub fn drain(
    runtime: &tokio::runtime::Runtime,
    resolved: &Resolved,
    timeout: Duration,
) -> Result<DrainSummary, RunError> {
    let metrics = Arc::new(Metrics::default());
    let give_up = CancellationToken::new();
    let mut summary = DrainSummary::default();
    let mut outputs = Vec::new();
    for plan in &resolved.outputs {
        let BufferSettings::Spool(spool) = &plan.buffer else {
            continue;
        };
        if !spool.path.is_dir() {
            continue;
        }
        let (writer, reader, recovery) = buffer::open(&plan.buffer, metrics.clone())?;
        // No input: the spool ends once what it holds is handed out.
        drop(writer);
        summary.chunks += recovery.chunks;
        summary.rows += recovery.rows;
        tracing::info!(
            "{}: {} chunk(s) with {} row(s) to deliver from {}",
            plan.name,
            recovery.chunks,
            recovery.rows,
            spool.path.display()
        );
        let output = Outputs::started(runtime, plan, reader, &give_up, &metrics)?;
        outputs.push(output);
    }
    let deadline = Deadline::after(timeout, &give_up);
    runtime.block_on(settle_outputs(&mut outputs, &deadline, || {}))?;
    summary.delivered = Metrics::get(&metrics.rows_delivered);
    summary.dead_lettered = Metrics::get(&metrics.rows_dead_lettered);
    summary.left = resolved
        .outputs
        .iter()
        .filter_map(|p| match &p.buffer {
            BufferSettings::Spool(s) => Some(crate::spool::chunks_in(&s.path)),
            BufferSettings::Memory => None,
        })
        .sum();
    Ok(summary)
}
