//! The output driver: the one place that moves batches from the buffer to an output, for
//! every kind of output. Requests within the size limit, retry and back-off, splitting on
//! 413, isolating bad rows on 400, pausing on 401/403, stopping a route on 404, the
//! dead-letter queue and the shutdown give-up all live here. An output only says how to send
//! one request and what the answer means: it implements [`Output`] (the two Azure APIs, and
//! JSON lines on stdout or in a file).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::dead_letter::DeadLetterQueue;
use super::retry::{Backoff, Outcome};
use crate::batch::Batch;
use crate::buffer::Reader;
use crate::metrics::Metrics;
use crate::record::Table;

/// A request body built once for a chunk of rows. Every attempt to send that chunk sends
/// these bytes, so a storm of 429s does not rebuild and re-compress a 1 MiB body per try.
#[derive(Clone, Default)]
pub struct Encoded {
    /// The body as it goes on the wire (compressed when `gzip`).
    pub body: bytes::Bytes,
    /// The body is gzip-compressed (`Content-Encoding: gzip`).
    pub gzip: bool,
}

/// How long an encoded body is reused. The Logs Ingestion output decides at encode time
/// which rows Azure's time window would reject (with a 10-minute margin); a chunk retried
/// for longer than this is encoded again against the window of the new attempt.
pub const ENCODED_FOR: Duration = Duration::from_secs(5 * 60);

/// One destination. It builds a chunk's request once ([`Output::encode`]: body, value
/// cuts, compression) and sends it per attempt ([`Output::send`]: credentials, signature,
/// the POST), turning the response into an [`Outcome`].
pub trait Output: Send + Sync + 'static {
    /// Builds the request for `rows` (JSON objects) to `route` (a stream or log type). An
    /// error is an outcome as if the request had been sent (retried like a failed send).
    fn encode(
        &self,
        route: &str,
        rows: &[&[u8]],
    ) -> impl Future<Output = Result<Encoded, Outcome>> + Send {
        let _ = (route, rows);
        async { Ok(Encoded::default()) }
    }
    /// Sends one attempt of `request`, which [`Output::encode`] built from `rows`.
    fn send(
        &self,
        route: &str,
        rows: &[&[u8]],
        request: &Encoded,
    ) -> impl Future<Output = Outcome> + Send;
    /// Forgets cached credentials after the service refused them.
    fn reset_credentials(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// Bytes a request body with `rows` takes, before any compression.
    fn request_size(&self, rows: &[&[u8]]) -> usize {
        rows.iter().map(|r| r.len() + 1).sum::<usize>() + 1
    }
    /// True when the output takes a whole batch as one "row" (its JSON lines joined by LF,
    /// without the last LF): no splitting into rows, no request limit.
    fn takes_whole_batches(&self) -> bool {
        false
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Output`] behind a pointer, so that one driver type serves every output.
trait DynOutput: Send + Sync + 'static {
    fn encode<'a>(
        &'a self,
        route: &'a str,
        rows: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<Encoded, Outcome>>;
    fn send<'a>(
        &'a self,
        route: &'a str,
        rows: &'a [&'a [u8]],
        request: &'a Encoded,
    ) -> BoxFuture<'a, Outcome>;
    fn reset_credentials(&self) -> BoxFuture<'_, ()>;
    fn request_size(&self, rows: &[&[u8]]) -> usize;
    fn takes_whole_batches(&self) -> bool;
}

impl<O: Output> DynOutput for O {
    fn encode<'a>(
        &'a self,
        route: &'a str,
        rows: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<Encoded, Outcome>> {
        Box::pin(Output::encode(self, route, rows))
    }
    fn send<'a>(
        &'a self,
        route: &'a str,
        rows: &'a [&'a [u8]],
        request: &'a Encoded,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(Output::send(self, route, rows, request))
    }
    fn reset_credentials(&self) -> BoxFuture<'_, ()> {
        Box::pin(Output::reset_credentials(self))
    }
    fn request_size(&self, rows: &[&[u8]]) -> usize {
        Output::request_size(self, rows)
    }
    fn takes_whole_batches(&self) -> bool {
        Output::takes_whole_batches(self)
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

/// Delivers batches through an [`Output`]; shared by the requests in flight.
pub struct Delivery {
    output: Box<dyn DynOutput>,
    routes: [Route; 2],
    max_request_bytes: usize,
    dead_letters: DeadLetterQueue,
    metrics: Arc<Metrics>,
    /// Fired at the shutdown deadline: rows still undelivered then are dead-lettered, or,
    /// with a spool, left in their chunk for the next start.
    give_up: CancellationToken,
    /// Fired when a reload replaces this output: a batch not yet delivered in any part is
    /// handed back to the buffer for its successor (whose settings, a rotated secret or a
    /// fixed endpoint, may deliver what these cannot) instead of being retried here.
    retired: CancellationToken,
    /// The longest wait between retries.
    pub retry_max: Duration,
    /// One dead-letter line per 10 s: a stopped route dead-letters every batch.
    dead_letter_log: crate::log_throttle::Throttle,
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Every row was delivered, dead-lettered or belongs to a route that is off.
    Yes,
    /// Given up at shutdown with rows undelivered; a durable buffer keeps them.
    No,
    /// Nothing of it was settled and a reload replaced this output: the buffer hands it
    /// to the next one.
    HandBack,
}

impl Delivery {
    pub fn new(
        output: impl Output,
        routes: [Route; 2],
        max_request_bytes: usize,
        dead_letters: DeadLetterQueue,
        metrics: Arc<Metrics>,
        give_up: CancellationToken,
    ) -> Self {
        Self {
            output: Box::new(output),
            routes,
            max_request_bytes,
            dead_letters,
            metrics,
            give_up,
            retired: CancellationToken::new(),
            retry_max: Duration::from_secs(60),
            dead_letter_log: crate::log_throttle::Throttle::new(Duration::from_secs(10)),
        }
    }

    /// `retired` fires when a reload replaces this output (see [`Settled::HandBack`]).
    pub fn retire_on(&mut self, retired: CancellationToken) {
        self.retired = retired;
    }

    /// Sends an empty request to every route that is on (`cefgate check --live`): the
    /// service then checks credentials, permissions and the route without taking a row.
    pub async fn probe(&self) -> Vec<(String, Outcome)> {
        let mut answers = Vec::new();
        for route in &self.routes {
            if let Some(name) = &route.name {
                let outcome = match self.output.encode(name, &[]).await {
                    Ok(request) => self.output.send(name, &[], &request).await,
                    Err(outcome) => outcome,
                };
                answers.push((name.clone(), outcome));
            }
        }
        answers
    }

    fn route(&self, table: Table) -> &Route {
        self.routes
            .iter()
            .find(|r| r.table == table)
            .expect("a route per table")
    }

    /// Delivers every row of `batch`, or dead-letters it. At a give-up, rows still
    /// undelivered are dead-lettered too unless `durable` says a spool keeps them; then the
    /// answer is [`Settled::No`].
    pub async fn deliver(&self, batch: &Batch, durable: bool) -> Settled {
        // Some of the batch was delivered or dead-lettered: it can no longer be handed back
        // whole without sending those rows twice.
        let mut settled_any = false;
        let route = self.route(batch.table);
        let Some(name) = route.name.as_deref() else {
            Metrics::add(&self.metrics.rows_unrouted, batch.rows as u64);
            self.metrics
                .add_route_rows(batch.table.name(), "unrouted", batch.rows as u64);
            return Settled::Yes;
        };
        if self.output.takes_whole_batches() {
            let body = batch.body.strip_suffix(b"\n").unwrap_or(&batch.body);
            if body.is_empty() {
                return Settled::Yes;
            }
            return self
                .deliver_rows(
                    route,
                    name,
                    vec![body],
                    Some(batch.rows),
                    durable,
                    &mut settled_any,
                )
                .await;
        }
        let rows = batch.lines();
        // Requests within the size limit; a row that alone exceeds it can never be sent.
        let mut chunk: Vec<&[u8]> = Vec::new();
        let mut size = 1;
        for row in rows {
            if self.output.request_size(&[row]) > self.max_request_bytes {
                let error = format!(
                    "row of {} bytes exceeds the request limit of {} bytes",
                    row.len(),
                    self.max_request_bytes
                );
                if self
                    .dead_letter(batch.table, name, &error, &[row], durable)
                    .await
                    == Settled::No
                {
                    return Settled::No;
                }
                settled_any = true;
                continue;
            }
            if size + row.len() + 1 > self.max_request_bytes && !chunk.is_empty() {
                let rows = std::mem::take(&mut chunk);
                let settled = self
                    .deliver_rows(route, name, rows, None, durable, &mut settled_any)
                    .await;
                if settled != Settled::Yes {
                    return settled;
                }
                size = 1;
            }
            size += row.len() + 1;
            chunk.push(row);
        }
        if chunk.is_empty() {
            return Settled::Yes;
        }
        self.deliver_rows(route, name, chunk, None, durable, &mut settled_any)
            .await
    }

    async fn deliver_rows(
        &self,
        route: &Route,
        name: &str,
        rows: Vec<&[u8]>,
        whole_batch_rows: Option<usize>,
        durable: bool,
        settled_any: &mut bool,
    ) -> Settled {
        let mut pending = vec![rows];
        // A 404 that may mean "too large" splits the request once (see `Outcome::NotFound`).
        let mut split_on_not_found = false;
        while let Some(mut rows) = pending.pop() {
            let mut backoff = Backoff::new(Duration::from_millis(500), self.retry_max);
            let mut last_auth_warning: Option<Instant> = None;
            // Set to the refusal when the rows go to the dead-letter queue.
            let mut refused: Option<std::borrow::Cow<'_, str>> = None;
            // Built on the first attempt, reused by the retries (see `ENCODED_FOR`).
            let mut encoded: Option<(Encoded, Instant)> = None;
            loop {
                if route.stopped.load(Ordering::Relaxed) {
                    refused = Some("route stopped (see the log)".into());
                    break;
                }
                if self.give_up.is_cancelled() {
                    if durable {
                        return Settled::No;
                    }
                    refused = Some("not delivered before shutdown".into());
                    break;
                }
                if self.retired.is_cancelled() && !*settled_any {
                    return Settled::HandBack;
                }
                let started = Instant::now();
                if encoded
                    .as_ref()
                    .is_some_and(|(_, at)| at.elapsed() > ENCODED_FOR)
                {
                    encoded = None;
                }
                let outcome = match &encoded {
                    Some((request, _)) => self.output.send(name, &rows, request).await,
                    None => match self.output.encode(name, &rows).await {
                        Ok(request) => {
                            let outcome = self.output.send(name, &rows, &request).await;
                            encoded = Some((request, started));
                            outcome
                        }
                        Err(outcome) => outcome,
                    },
                };
                tracing::debug!(
                    "{name}: {} rows: {outcome:?} in {:?}",
                    rows.len(),
                    started.elapsed()
                );
                let wait = match outcome {
                    Outcome::Delivered => {
                        *settled_any = true;
                        let n = whole_batch_rows.unwrap_or(rows.len());
                        Metrics::add(&self.metrics.rows_delivered, n as u64);
                        self.metrics.add_route_rows(name, "delivered", n as u64);
                        Metrics::add(&self.metrics.requests_delivered, 1);
                        break;
                    }
                    Outcome::TooLarge | Outcome::Rejected { .. } if rows.len() > 1 => {
                        self.split(std::mem::take(&mut rows), &mut pending);
                        break;
                    }
                    Outcome::TooLarge => {
                        refused = Some("the service refused the row as too large (413)".into());
                        break;
                    }
                    Outcome::Rejected { error } => {
                        refused = Some(error.into());
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
                        self.output.reset_credentials().await;
                        let wait = backoff.next_wait();
                        if last_auth_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                            tracing::error!(
                                "{name}: {reason}; rows are held and retried (next in {wait:.1?})"
                            );
                            last_auth_warning = Some(Instant::now());
                        }
                        wait
                    }
                    Outcome::NotFound { reason: _ } if rows.len() > 1 && !split_on_not_found => {
                        split_on_not_found = true;
                        self.split(std::mem::take(&mut rows), &mut pending);
                        break;
                    }
                    Outcome::RouteBroken { reason } | Outcome::NotFound { reason } => {
                        if !route.stopped.swap(true, Ordering::Relaxed) {
                            self.metrics.route_stopped(name);
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
                    _ = self.retired.cancelled(), if !*settled_any => {}
                }
            }
            if let Some(error) = refused {
                if self
                    .dead_letter(route.table, name, &error, &rows, durable)
                    .await
                    == Settled::No
                {
                    return Settled::No;
                }
                *settled_any = true;
            }
        }
        Settled::Yes
    }

    /// Halves `rows` and queues both halves, the first half to be sent first.
    fn split<'r>(&self, mut rows: Vec<&'r [u8]>, pending: &mut Vec<Vec<&'r [u8]>>) {
        Metrics::add(&self.metrics.requests_split, 1);
        let second = rows.split_off(rows.len() / 2);
        pending.push(second);
        pending.push(rows);
    }

    /// Writes `rows` to the dead-letter queue. Rows are counted as dead-lettered once they
    /// are on disk: until then a failed write (a full disk, a folder where the file should
    /// be) is retried with back-off, and the batch stays in the buffer, unacknowledged. At a
    /// give-up a spool keeps them ([`Settled::No`]); memory has nowhere else to put them,
    /// and they are counted as lost.
    async fn dead_letter(
        &self,
        table: Table,
        route: &str,
        error: &str,
        rows: &[&[u8]],
        durable: bool,
    ) -> Settled {
        // A whole batch travels as one piece: one entry per row all the same (a JSON row
        // never holds a raw LF).
        let rows: Vec<&[u8]> = rows.iter().flat_map(|r| crate::batch::lines(r)).collect();
        let rows = rows.as_slice();
        let n = rows.len() as u64;
        let mut backoff = Backoff::new(Duration::from_millis(500), self.retry_max);
        loop {
            let e = match self.dead_letters.store(table, route, error, rows) {
                Ok(()) => break,
                Err(e) => e,
            };
            Metrics::add(&self.metrics.output_errors, 1);
            Metrics::add(&self.metrics.dead_letter_write_errors, 1);
            let path = self.dead_letters.path().display();
            if self.give_up.is_cancelled() {
                if durable {
                    tracing::error!(
                        "{route}: cannot write {n} row(s) to the dead-letter queue {path}: {e}; \
                         they stay in the spool for the next start: make {path} writable \
                         (free space, or a file where a folder or device is) before it"
                    );
                    return Settled::No;
                }
                Metrics::add(&self.metrics.rows_lost, n);
                tracing::error!(
                    "{route}: cannot write {n} row(s) to the dead-letter queue {path}: {e}; \
                     at shutdown, without a spool, they are lost: make {path} writable, and \
                     configure a [spool] to keep such rows across a restart"
                );
                return Settled::Yes;
            }
            let wait = backoff.next_wait();
            tracing::error!(
                "{route}: cannot write {n} row(s) to the dead-letter queue {path}: {e}; \
                 they stay in the {} and the write is retried (next in {wait:.1?}): free \
                 space, or make {path} a writable file in a writable folder",
                if durable { "spool" } else { "buffer" }
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.give_up.cancelled() => {}
            }
        }
        Metrics::add(&self.metrics.rows_dead_lettered, n);
        self.metrics.add_route_rows(route, "dead_lettered", n);
        if let Some(held) = self.dead_letter_log.allow() {
            tracing::warn!(
                "{route}: {n} row(s) dead-lettered: {error}{}",
                crate::log_throttle::held_back(held)
            );
        }
        Settled::Yes
    }
}

/// Runs `delivery` over the buffer until it ends or `stop` fires, with up to `concurrency`
/// batches in flight (1 keeps the order). A settled lease is acknowledged; one left
/// undelivered at a give-up is kept (the spool holds it for the next start). `stop` (a
/// reload replacing this output) only ends the taking of new batches: those in flight are
/// still settled here, while the reader serves the next output.
pub async fn serve(
    delivery: Arc<Delivery>,
    reader: Arc<Reader>,
    concurrency: usize,
    stop: tokio_util::sync::CancellationToken,
) {
    let durable = reader.is_durable();
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        // Both are cancel-safe: a batch is taken out of the buffer only when `next` returns.
        let lease = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            lease = reader.next() => lease,
        };
        let Some(lease) = lease else { break };
        if durable && delivery.give_up.is_cancelled() {
            // Out of time: what is left stays in the spool for the next start.
            lease.keep();
            break;
        }
        let delivery = delivery.clone();
        tasks.spawn(async move {
            match delivery.deliver(lease.batch(), durable).await {
                Settled::Yes => {
                    Metrics::add(&delivery.metrics.batches_written, 1);
                    lease.ack();
                }
                Settled::No => lease.keep(),
                Settled::HandBack => lease.hand_back(),
            }
            drop(slot);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::JsonLinesOutput;

    struct BrokenPipe;
    impl std::io::Write for BrokenPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn batch() -> Batch {
        Batch {
            table: Table::Syslog,
            rows: 3,
            body: b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n".to_vec(),
        }
    }

    fn delivery(output: JsonLinesOutput, dlq: &std::path::Path) -> (Delivery, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let routes =
            [Table::CommonSecurityLog, Table::Syslog].map(|t| Route::new(t, Some(t.name().into())));
        let d = Delivery::new(
            output,
            routes,
            usize::MAX,
            DeadLetterQueue::new(dlq),
            metrics.clone(),
            CancellationToken::new(),
        );
        (d, metrics)
    }

    #[tokio::test]
    async fn a_whole_batch_is_written_at_once_and_counted_per_row() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("rows.ndjson");
        let (d, metrics) = delivery(
            JsonLinesOutput::file(&out).unwrap(),
            &dir.path().join("dlq"),
        );
        assert_eq!(d.deliver(&batch(), false).await, Settled::Yes);
        assert_eq!(std::fs::read(&out).unwrap(), batch().body);
        assert_eq!(Metrics::get(&metrics.rows_delivered), 3);
        assert!(!dir.path().join("dlq").exists(), "no dead letter, no file");
    }

    #[tokio::test]
    async fn a_closed_pipe_stops_the_route_and_dead_letters_each_row() {
        let dir = tempfile::tempdir().unwrap();
        let dlq = dir.path().join("state/dead-letters.ndjson");
        let (d, metrics) = delivery(JsonLinesOutput::new("pipe", Box::new(BrokenPipe)), &dlq);
        assert_eq!(d.deliver(&batch(), false).await, Settled::Yes);
        assert_eq!(Metrics::get(&metrics.rows_dead_lettered), 3);
        let entries = crate::sink::dead_letter::read(&dlq).unwrap();
        let rows: Vec<String> = entries
            .into_iter()
            .map(|e| e.unwrap().row.get().to_string())
            .collect();
        assert_eq!(rows, ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"]);
    }

    #[tokio::test]
    async fn rows_that_cannot_even_be_dead_lettered_at_shutdown_without_a_spool_are_lost() {
        // /dev/full accepts the open and refuses every write (ENOSPC).
        let (d, metrics) = delivery(
            JsonLinesOutput::new("pipe", Box::new(BrokenPipe)),
            std::path::Path::new("/dev/full"),
        );
        d.give_up.cancel();
        assert_eq!(d.deliver(&batch(), false).await, Settled::Yes);
        assert_eq!(Metrics::get(&metrics.rows_dead_lettered), 0, "not written");
        assert_eq!(Metrics::get(&metrics.rows_lost), 3);
    }

    #[tokio::test]
    async fn a_failed_dead_letter_write_holds_the_batch_until_it_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let dlq = dir.path().join("dead-letters.ndjson");
        std::fs::create_dir(&dlq).unwrap();
        let (d, metrics) = delivery(JsonLinesOutput::new("pipe", Box::new(BrokenPipe)), &dlq);
        let d = Arc::new(d);
        let task = tokio::spawn({
            let d = d.clone();
            async move { d.deliver(&batch(), false).await }
        });
        while Metrics::get(&metrics.dead_letter_write_errors) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!task.is_finished(), "the batch is not settled");
        assert_eq!(Metrics::get(&metrics.rows_dead_lettered), 0);
        assert_eq!(Metrics::get(&metrics.rows_lost), 0);
        std::fs::remove_dir(&dlq).unwrap();
        assert_eq!(task.await.unwrap(), Settled::Yes);
        assert_eq!(Metrics::get(&metrics.rows_dead_lettered), 3);
        assert_eq!(Metrics::get(&metrics.rows_lost), 0);
        assert_eq!(crate::sink::dead_letter::read(&dlq).unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_spool_keeps_rows_whose_dead_letters_cannot_be_written_at_shutdown() {
        let (d, metrics) = delivery(
            JsonLinesOutput::new("pipe", Box::new(BrokenPipe)),
            std::path::Path::new("/dev/full"),
        );
        let d = Arc::new(d);
        let task = tokio::spawn({
            let d = d.clone();
            async move { d.deliver(&batch(), true).await }
        });
        while Metrics::get(&metrics.dead_letter_write_errors) < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        d.give_up.cancel();
        assert_eq!(task.await.unwrap(), Settled::No, "the chunk is kept");
        assert_eq!(Metrics::get(&metrics.rows_dead_lettered), 0);
        assert_eq!(Metrics::get(&metrics.rows_lost), 0);
    }
}

#[cfg(test)]
mod encode_once {
    use std::sync::Mutex;

    use super::*;

    /// Answers 429 (`Retry-After` 1 ms) `throttled` times, then takes the request; records
    /// how often it was asked to encode and what each attempt carried.
    struct Throttling {
        throttled: Mutex<usize>,
        encoded: Mutex<usize>,
        sent: Mutex<Vec<bytes::Bytes>>,
    }

    impl Output for Throttling {
        async fn encode(&self, _: &str, rows: &[&[u8]]) -> Result<Encoded, Outcome> {
            *self.encoded.lock().unwrap() += 1;
            Ok(Encoded {
                body: rows.concat().into(),
                gzip: false,
            })
        }

        async fn send(&self, _: &str, _: &[&[u8]], request: &Encoded) -> Outcome {
            self.sent.lock().unwrap().push(request.body.clone());
            let mut left = self.throttled.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Outcome::RetryAfter(Duration::from_millis(1));
            }
            Outcome::Delivered
        }
    }

    #[tokio::test]
    async fn retries_send_the_body_built_for_the_first_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let output = Arc::new(Throttling {
            throttled: Mutex::new(5),
            encoded: Mutex::new(0),
            sent: Mutex::default(),
        });
        struct Shared(Arc<Throttling>);
        impl Output for Shared {
            async fn encode(&self, r: &str, rows: &[&[u8]]) -> Result<Encoded, Outcome> {
                Output::encode(&*self.0, r, rows).await
            }
            async fn send(&self, r: &str, rows: &[&[u8]], request: &Encoded) -> Outcome {
                Output::send(&*self.0, r, rows, request).await
            }
        }
        let metrics = Arc::new(Metrics::default());
        let routes =
            [Table::CommonSecurityLog, Table::Syslog].map(|t| Route::new(t, Some(t.name().into())));
        let d = Delivery::new(
            Shared(output.clone()),
            routes,
            usize::MAX,
            DeadLetterQueue::new(&dir.path().join("dlq")),
            metrics.clone(),
            CancellationToken::new(),
        );
        let batch = Batch {
            table: Table::Syslog,
            rows: 2,
            body: b"{\"n\":1}\n{\"n\":2}\n".to_vec(),
        };
        assert_eq!(d.deliver(&batch, false).await, Settled::Yes);
        assert_eq!(*output.encoded.lock().unwrap(), 1, "encoded once");
        let sent = output.sent.lock().unwrap();
        assert_eq!(sent.len(), 6, "five throttled attempts and the one taken");
        assert!(
            sent.iter().all(|b| b == &sent[0]),
            "the same body each time"
        );
        assert_eq!(Metrics::get(&metrics.requests_throttled), 5);
        assert_eq!(Metrics::get(&metrics.rows_delivered), 2);
    }
}
