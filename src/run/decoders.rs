//! The decode stage of a run: `[pipeline] workers` plain threads (one per core by default),
//! each taking frame batches off the listeners' queue, decoding them into rows and writing
//! each row to the buffer of every output that takes it. Decoding is CPU work that never
//! waits, so it runs outside the async runtime.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::RunError;
use crate::budget::MemoryBudget;
use crate::buffer::Writer;
use crate::config::Resolved;
use crate::listen::FrameBatch;
use crate::metrics::Metrics;
use crate::record::RowBuilder;
use crate::worker;

/// Starts the decode threads; each holds a clone of every writer, so an output's buffer ends
/// when they have all ended.
pub(super) fn start(
    resolved: &Resolved,
    writers: &[Writer],
    frames: &flume::Receiver<FrameBatch>,
    budget: &Arc<MemoryBudget>,
    metrics: &Arc<Metrics>,
) -> Result<Vec<JoinHandle<()>>, RunError> {
    let workers = match resolved.pipeline.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let (record, limits) = (&resolved.record, resolved.batch);
    let mut worker_threads: Vec<JoinHandle<()>> = Vec::with_capacity(workers);
    for i in 0..workers {
        let rx = frames.clone();
        let taps = resolved
            .outputs
            .iter()
            .zip(writers)
            .map(|(plan, writer)| worker::Tap {
                filter: plan.filter.clone(),
                project_away: plan.project_away.clone(),
                json_shape: plan.settings.json_shape(),
                writer: writer.clone(),
                counters: metrics.output(&plan.name),
            })
            .collect();
        let (budget, metrics) = (budget.clone(), metrics.clone());
        let builder = RowBuilder::new(record.clone());
        let zone = resolved.zone;
        let thread = std::thread::Builder::new()
            .name(format!("decode-{i}"))
            .spawn(move || worker::decode(builder, zone, limits, rx, taps, budget, metrics))
            .map_err(RunError::Thread)?;
        worker_threads.push(thread);
    }
    Ok(worker_threads)
}
