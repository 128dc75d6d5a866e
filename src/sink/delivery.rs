//! Delivery to an HTTP ingestion API, whichever it is: requests within the size limit, retry
//! and back-off, splitting on 413, isolating bad rows on 400, pausing on 401/403, stopping a
//! route on 404, and the dead-letter queue. The two Azure APIs implement [`Api`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::dead_letter::DeadLetterQueue;
use super::retry::{Backoff, Outcome};
use crate::batch::Batch;
use crate::metrics::Metrics;
use crate::record::Table;
use crate::spool::Spool;

/// One ingestion API: turns rows into a request and the response into an [`Outcome`].
pub trait Api: Send + Sync + 'static {
    /// Sends `rows` (JSON objects) to `route` (a stream or log type) in one request.
    fn send(&self, route: &str, rows: &[&[u8]]) -> impl Future<Output = Outcome> + Send;
    /// Forgets cached credentials after the service refused them.
    fn reset_credentials(&self) -> impl Future<Output = ()> + Send;
    /// Bytes a request body with `rows` takes, before any compression.
    fn request_size(&self, rows: &[&[u8]]) -> usize {
        rows.iter().map(|r| r.len() + 1).sum::<usize>() + 1
    }
}

/// Where one table's rows go.
pub struct Route {
    pub table: Table,
    /// Stream name or log type; `None` when the route is turned off.
    pub name: Option<String>,
    stopped: AtomicBool,
}

impl Route {
    pub fn new(table: Table, name: Option<String>) -> Self {
        Self {
            table,
            name: name.filter(|n| !n.is_empty()),
            stopped: AtomicBool::new(false),
        }
    }
}

/// Delivers batches through an [`Api`]; shared by the requests in flight.
pub struct Delivery<A: Api> {
    pub api: A,
    routes: [Route; 2],
    max_request_bytes: usize,
    dead_letters: DeadLetterQueue,
    metrics: Arc<Metrics>,
    /// Fired at the shutdown deadline: rows still undelivered then are dead-lettered, or,
    /// with a spool, left in their chunk for the next start.
    give_up: CancellationToken,
    /// A spool holds the rows: on give-up, keep them rather than dead-letter them.
    pub keep_on_give_up: bool,
    /// The longest wait between retries.
    pub retry_max: Duration,
}

impl<A: Api> Delivery<A> {
    pub fn new(
        api: A,
        routes: [Route; 2],
        max_request_bytes: usize,
        dead_letters: DeadLetterQueue,
        metrics: Arc<Metrics>,
        give_up: CancellationToken,
    ) -> Self {
        Self {
            api,
            routes,
            max_request_bytes,
            dead_letters,
            metrics,
            give_up,
            keep_on_give_up: false,
            retry_max: Duration::from_secs(60),
        }
    }

    fn route(&self, table: Table) -> &Route {
        self.routes
            .iter()
            .find(|r| r.table == table)
            .expect("a route per table")
    }

    /// Delivers every row of `batch`, or dead-letters it. Returns `true` when every row is
    /// settled that way, `false` when some were left undelivered at a give-up (spool mode).
    pub async fn deliver(&self, batch: Batch) -> bool {
        let route = self.route(batch.table);
        let rows: Vec<&[u8]> = batch
            .body
            .split(|b| *b == b'\n')
            .filter(|r| !r.is_empty())
            .collect();
        let Some(name) = route.name.as_deref() else {
            Metrics::add(&self.metrics.rows_unrouted, rows.len() as u64);
            return true;
        };
        // Requests within the size limit; a row that alone exceeds it can never be sent.
        let mut chunk: Vec<&[u8]> = Vec::new();
        let mut size = 1;
        for row in rows {
            if self.api.request_size(&[row]) > self.max_request_bytes {
                self.dead_letter(
                    batch.table,
                    name,
                    &format!(
                        "row of {} bytes exceeds the request limit of {} bytes",
                        row.len(),
                        self.max_request_bytes
                    ),
                    &[row],
                );
                continue;
            }
            if size + row.len() + 1 > self.max_request_bytes && !chunk.is_empty() {
                if !self
                    .deliver_rows(route, name, std::mem::take(&mut chunk))
                    .await
                {
                    return false;
                }
                size = 1;
            }
            size += row.len() + 1;
            chunk.push(row);
        }
        chunk.is_empty() || self.deliver_rows(route, name, chunk).await
    }

    async fn deliver_rows(&self, route: &Route, name: &str, rows: Vec<&[u8]>) -> bool {
        let mut pending = vec![rows];
        while let Some(rows) = pending.pop() {
            let mut backoff = Backoff::new(Duration::from_millis(500), self.retry_max);
            let mut last_auth_warning: Option<Instant> = None;
            loop {
                if route.stopped.load(Ordering::Relaxed) {
                    self.dead_letter(
                        route.table,
                        name,
                        "route stopped: the service answered 404 (see the log)",
                        &rows,
                    );
                    break;
                }
                if self.give_up.is_cancelled() {
                    if self.keep_on_give_up {
                        return false;
                    }
                    self.dead_letter(route.table, name, "not delivered before shutdown", &rows);
                    break;
                }
                let started = Instant::now();
                let outcome = self.api.send(name, &rows).await;
                tracing::debug!(
                    "{name}: {} rows: {outcome:?} in {:?}",
                    rows.len(),
                    started.elapsed()
                );
                let wait = match outcome {
                    Outcome::Delivered => {
                        Metrics::add(&self.metrics.rows_delivered, rows.len() as u64);
                        Metrics::add(&self.metrics.requests_delivered, 1);
                        break;
                    }
                    Outcome::TooLarge | Outcome::Rejected { .. } if rows.len() > 1 => {
                        // Halve and resend both halves, first half first.
                        Metrics::add(&self.metrics.requests_split, 1);
                        let mut first = rows;
                        let second = first.split_off(first.len() / 2);
                        pending.push(second);
                        pending.push(first);
                        break;
                    }
                    Outcome::TooLarge => {
                        self.dead_letter(
                            route.table,
                            name,
                            "the service refused the row as too large (413)",
                            &rows,
                        );
                        break;
                    }
                    Outcome::Rejected { error } => {
                        self.dead_letter(route.table, name, &error, &rows);
                        break;
                    }
                    Outcome::RetryAfter(wait) => {
                        Metrics::add(&self.metrics.requests_throttled, 1);
                        wait
                    }
                    Outcome::Transient { reason } => {
                        Metrics::add(&self.metrics.requests_failed, 1);
                        let wait = backoff.next_wait();
                        tracing::warn!("{name}: {reason}; retrying in {wait:.1?}");
                        wait
                    }
                    Outcome::Unauthorized { reason } => {
                        Metrics::add(&self.metrics.requests_unauthorized, 1);
                        self.api.reset_credentials().await;
                        let wait = backoff.next_wait();
                        if last_auth_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                            tracing::error!(
                                "{name}: {reason}; rows are held and retried (next in {wait:.1?})"
                            );
                            last_auth_warning = Some(Instant::now());
                        }
                        wait
                    }
                    Outcome::RouteBroken { reason } => {
                        if !route.stopped.swap(true, Ordering::Relaxed) {
                            tracing::error!(
                                "{name}: route stopped: {reason}; its rows now go to the dead-letter queue {}",
                                self.dead_letters.path().display()
                            );
                        }
                        continue;
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.give_up.cancelled() => {}
                }
            }
        }
        true
    }

    fn dead_letter(&self, table: Table, route: &str, error: &str, rows: &[&[u8]]) {
        Metrics::add(&self.metrics.rows_dead_lettered, rows.len() as u64);
        tracing::warn!("{route}: {} row(s) dead-lettered: {error}", rows.len());
        if let Err(e) = self.dead_letters.store(table, route, error, rows) {
            Metrics::add(&self.metrics.output_errors, 1);
            tracing::error!(
                "{route}: cannot write {} row(s) to the dead-letter queue {}: {e}",
                rows.len(),
                self.dead_letters.path().display()
            );
        }
    }
}

/// Runs `delivery` over every batch, with up to `concurrency` batches in flight.
pub async fn serve<A: Api>(
    delivery: Arc<Delivery<A>>,
    batches: flume::Receiver<Batch>,
    concurrency: usize,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    while let Ok(batch) = batches.recv_async().await {
        let slot = slots.clone().acquire_owned().await.expect("semaphore open");
        let delivery = delivery.clone();
        let metrics = delivery.metrics.clone();
        tasks.spawn(async move {
            delivery.deliver(batch).await;
            Metrics::add(&metrics.batches_written, 1);
            drop(slot);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Runs `delivery` over the spool's chunks, oldest first, up to `concurrency` at once. A
/// chunk is deleted once settled; one left undelivered at a give-up stays for the next start.
pub async fn serve_spool<A: Api>(
    delivery: Arc<Delivery<A>>,
    spool: Arc<Spool>,
    concurrency: usize,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(chunk) = spool.next().await {
        let slot = slots.clone().acquire_owned().await.expect("semaphore open");
        let (delivery, spool) = (delivery.clone(), spool.clone());
        tasks.spawn(async move {
            if let Some(batch) = spool.read(chunk) {
                if delivery.deliver(batch).await {
                    Metrics::add(&delivery.metrics.batches_written, 1);
                    spool.remove(chunk);
                } else {
                    spool.release(chunk);
                }
            }
            drop(slot);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}
