//! The shutdown deadline, written once for the three commands that deliver against a clock:
//! `cefgate run` (`[pipeline] shutdown_timeout_secs`), `cefgate spool drain` and `cefgate dlq
//! replay` (their `--timeout-secs`). Until the deadline the outputs deliver as usual; when it
//! passes, the give-up token the outputs were built with fires, and they leave what they
//! still hold in the spool or dead-letter it (see [`crate::sink::build`]); what is in flight
//! then gets a bounded grace ([`AFTER_GIVE_UP`]), or as long as it takes.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How long the output may take to stop after the shutdown deadline: an HTTP request in
/// flight ends within its own timeout.
pub(crate) const AFTER_GIVE_UP: Duration = Duration::from_secs(120);

/// The instant by which the outputs are to have settled what they hold, and the token
/// that tells them it has passed.
pub(crate) struct Deadline {
    at: Instant,
    give_up: CancellationToken,
}

impl Deadline {
    /// `timeout` from now; `give_up` is the token the outputs were built with.
    pub(crate) fn after(timeout: Duration, give_up: &CancellationToken) -> Deadline {
        Deadline {
            at: Instant::now() + timeout,
            give_up: give_up.clone(),
        }
    }

    pub(crate) fn instant(&self) -> Instant {
        self.at
    }

    /// Runs `work` to the deadline. When it has not ended by then, `reached` runs (to say
    /// so), the give-up token fires, and `work` goes on for at most `grace` more (`None`: for
    /// as long as it takes). Whether `work` ended.
    pub(crate) async fn settle(
        &self,
        work: impl Future<Output = ()>,
        grace: Option<Duration>,
        reached: impl FnOnce(),
    ) -> bool {
        tokio::pin!(work);
        let left = self.at.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, &mut work).await.is_ok() {
            return true;
        }
        reached();
        self.give_up.cancel();
        match grace {
            Some(grace) => tokio::time::timeout(grace, work).await.is_ok(),
            None => {
                work.await;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn work_that_ends_in_time_is_not_given_up() {
        let give_up = CancellationToken::new();
        let deadline = Deadline::after(MS * 5_000, &give_up);
        let ended = deadline
            .settle(tokio::time::sleep(MS), Some(AFTER_GIVE_UP), || {
                panic!("the deadline was not reached")
            })
            .await;
        assert!(ended && !give_up.is_cancelled());
    }

    #[tokio::test]
    async fn at_the_deadline_the_token_fires_and_the_work_gets_its_grace() {
        let give_up = CancellationToken::new();
        let deadline = Deadline::after(MS * 20, &give_up);
        let mut reached = false;
        // Work that ends once given up ends within the grace.
        let work = {
            let give_up = give_up.clone();
            async move { give_up.cancelled().await }
        };
        assert!(
            deadline
                .settle(work, Some(AFTER_GIVE_UP), || reached = true)
                .await
        );
        assert!(reached && give_up.is_cancelled());
        // Work that never ends: the grace bounds it.
        let start = Instant::now();
        let ended = deadline
            .settle(std::future::pending(), Some(MS * 30), || {})
            .await;
        assert!(!ended && start.elapsed() >= MS * 30);
        // No grace: the work runs to its end.
        let late = tokio::time::sleep(MS * 50);
        assert!(deadline.settle(late, None, || {}).await);
    }
}
