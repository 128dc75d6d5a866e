//! The outputs of a run or a drain: each delivers from its own buffer, a reload replaces its
//! delivery while the one it replaced settles what it took, and at the end they are all
//! waited for, to the shutdown deadline.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::RunError;
use super::shutdown::{AFTER_GIVE_UP, Deadline};
use crate::buffer::Reader;
use crate::metrics::Metrics;
use crate::sink;

/// One output's running delivery, and those a reload replaced that still settle their last
/// batches.
pub(super) struct Outputs {
    pub(super) name: String,
    pub(super) reader: Arc<Reader>,
    give_up: CancellationToken,
    metrics: Arc<Metrics>,
    current: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    retired: Vec<tokio::task::JoinHandle<()>>,
}

impl Outputs {
    /// The output of `plan`, delivering from `reader` already.
    pub(super) fn started(
        runtime: &tokio::runtime::Runtime,
        plan: &crate::config::OutputPlan,
        reader: Reader,
        give_up: &CancellationToken,
        metrics: &Arc<Metrics>,
    ) -> Result<Outputs, sink::OutputSetupError> {
        let mut output = Outputs {
            name: plan.name.clone(),
            reader: Arc::new(reader),
            give_up: give_up.clone(),
            metrics: metrics.clone(),
            current: None,
            retired: Vec::new(),
        };
        let _guard = runtime.enter();
        output.start(&plan.settings)?;
        Ok(output)
    }

    /// Builds an output from `settings` and lets it take batches; the one running before
    /// stops taking them and settles those it holds. Must run inside the runtime.
    pub(super) fn start(
        &mut self,
        settings: &sink::OutputSettings,
    ) -> Result<(), sink::OutputSetupError> {
        let built = sink::build(settings, self.metrics.clone(), self.give_up.clone())?;
        if let Some((stop, task)) = self.current.take() {
            stop.cancel();
            self.retired.push(task);
            self.metrics.clear_stopped_routes();
        }
        let stop = CancellationToken::new();
        let mut delivery = built.delivery;
        delivery.retire_on(stop.clone());
        let task = tokio::spawn(sink::serve(
            Arc::new(delivery),
            self.reader.clone(),
            built.concurrency,
            stop.clone(),
        ));
        self.current = Some((stop, task));
        Ok(())
    }

    /// Waits until every output, current and retired, has settled what it took.
    async fn finish(&mut self) {
        if let Some((_, task)) = self.current.as_mut() {
            let _ = task.await;
        }
        for task in &mut self.retired {
            let _ = task.await;
        }
    }
}

/// Waits for every output to settle what it holds, to `deadline`; past it, `reached` says
/// so and the outputs give up (their rows stay in the spool or are dead-lettered), with
/// [`AFTER_GIVE_UP`] to stop.
pub(super) async fn settle_outputs(
    outputs: &mut [Outputs],
    deadline: &Deadline,
    reached: impl FnOnce(),
) -> Result<(), RunError> {
    let all = async {
        for output in outputs {
            output.finish().await;
        }
    };
    if deadline.settle(all, Some(AFTER_GIVE_UP), reached).await {
        Ok(())
    } else {
        Err(RunError::OutputStuck(AFTER_GIVE_UP))
    }
}
