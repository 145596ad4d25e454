//! Group commit on SQLite: the calls' writes (`Store::record`) go to one writer task, which puts
//! the writes that are waiting together into one transaction and one fsync, and answers each
//! call only once the commit that holds its write is on disk (`synchronous = FULL`): durability
//! exactly as with one transaction per call, at the cost of one fsync per batch instead of one
//! per call.
//!
//! Each write of a batch runs inside its own savepoint, so that a write that fails (a constraint,
//! a bug) is rolled back alone and answered its error, while the others commit. A batch that
//! cannot commit answers every write of it with the error: none of them was acknowledged.
//! A lone write (a quiet gateway) takes no savepoint: it is its own transaction, as before.
//!
//! Every statement is a hand-off to the writer connection's thread (sqlx runs each SQLite
//! connection on a thread of its own), and those hand-offs are what a batch costs, not its rows.
//! So consecutive writes that are only a call record and its enrolment's state (eligibility
//! answers above all) are written by one multi-row statement per table inside one savepoint;
//! if that fails, the savepoint is undone and the same writes go one at a time, to refuse only
//! the one at fault.

use super::{CallRecord, LockKey, NoticeOutcome, StoreError, Write, Written};
use crate::domain::Millis;
use sqlx::SqlitePool;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// At most this many calls' writes in one transaction.
pub const MAX_BATCH: usize = 64;
/// Writes waiting for the writer at most (beyond it, callers wait to hand theirs over).
const QUEUE: usize = 1024;

/// A call record that owns its text, to hand over to the writer task.
struct OwnedCall {
    correlation_id: String,
    operation: String,
    card_ref: Option<String>,
    wallet: Option<String>,
    state: Option<String>,
    response_code: i64,
    outcome: String,
    detail: Option<String>,
    duration_ms: Millis,
    at: Millis,
}

impl OwnedCall {
    fn of(c: &CallRecord<'_>) -> OwnedCall {
        OwnedCall {
            correlation_id: c.correlation_id.to_owned(),
            operation: c.operation.to_owned(),
            card_ref: c.card_ref.map(str::to_owned),
            wallet: c.wallet.map(str::to_owned),
            state: c.state.map(str::to_owned),
            response_code: c.response_code,
            outcome: c.outcome.to_owned(),
            detail: c.detail.map(str::to_owned),
            duration_ms: c.duration_ms,
            at: c.at,
        }
    }

    fn record(&self) -> CallRecord<'_> {
        CallRecord {
            correlation_id: &self.correlation_id,
            operation: &self.operation,
            card_ref: self.card_ref.as_deref(),
            wallet: self.wallet.as_deref(),
            state: self.state.as_deref(),
            response_code: self.response_code,
            outcome: &self.outcome,
            detail: self.detail.as_deref(),
            duration_ms: self.duration_ms,
            at: self.at,
        }
    }
}

struct Job {
    call: OwnedCall,
    write: Write,
    reply: oneshot::Sender<Result<Written, StoreError>>,
}

/// Batches committed and the writes they held, since start (read for the metrics).
#[derive(Default)]
struct Counts {
    batches: AtomicU64,
    writes: AtomicU64,
}

/// The handle of the writer task; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    jobs: mpsc::Sender<Job>,
    counts: Arc<Counts>,
}

impl Batcher {
    /// Starts the writer task on the (single-connection) writer pool.
    pub fn start(writer: SqlitePool) -> Batcher {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let counts = Arc::new(Counts::default());
        tokio::spawn(run(writer, queue, counts.clone()));
        Batcher { jobs, counts }
    }

    /// Transactions committed by the writer task, and the calls' writes they held.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.batches.load(Ordering::Relaxed),
            self.counts.writes.load(Ordering::Relaxed),
        )
    }

    /// Hands the write over and waits for the commit that holds it.
    pub async fn record(
        &self,
        call: &CallRecord<'_>,
        write: &Write,
    ) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            call: OwnedCall::of(call),
            write: write.clone(),
            reply,
        };
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(writer: SqlitePool, mut queue: mpsc::Receiver<Job>, counts: Arc<Counts>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        // The transaction first: while it waits for the writer connection (another write of
        // the store holds it), more calls' writes queue up and join this batch.
        // BEGIN IMMEDIATE: the write lock at once (another process, such as `cards import`, may
        // be writing), not a failure at the first write.
        let tx = match writer.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(e) => {
                let _ = first.reply.send(Err(StoreError::Db(e)));
                continue;
            }
        };
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        counts.batches.fetch_add(1, Ordering::Relaxed);
        counts.writes.fetch_add(
            u64::try_from(jobs.len()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        match commit(tx, &jobs).await {
            Ok(results) => {
                for (job, result) in jobs.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                let cause = e.to_string();
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(StoreError::Commit(cause.clone())));
                }
            }
        }
    }
}

/// One transaction for the batch: each write's result, or the error that stopped the batch.
async fn commit(
    mut tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    jobs: &[Job],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    let mut results = Vec::with_capacity(jobs.len());
    if let [job] = jobs {
        let call = job.call.record();
        let result = apply_write!(tx, &call, &job.write);
        if result.is_err() {
            tx.rollback().await?;
            return Ok(vec![result]);
        }
        results.push(result);
    } else {
        let mut rest = jobs;
        // Cleared once a run written whole failed: the rest go one by one.
        let mut whole_runs = true;
        while let Some((job, after_it)) = rest.split_first() {
            let run = rest.iter().take_while(|j| written_in_a_run(j)).count();
            if whole_runs && run >= 2 {
                let (these, after) = rest.split_at(run);
                let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
                if write_run(&mut savepoint, these).await.is_ok() {
                    savepoint.commit().await?;
                    results.extend(these.iter().map(|_| Ok(Written::Done)));
                    rest = after;
                    continue;
                }
                // One of them fails: undo the run and find which, one write at a time.
                savepoint.rollback().await?;
                whole_runs = false;
            }
            let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
            let call = job.call.record();
            let result = apply_write!(savepoint, &call, &job.write);
            if result.is_ok() {
                savepoint.commit().await?;
            } else {
                savepoint.rollback().await?;
            }
            results.push(result);
            rest = after_it;
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// Whether a write is only its call record and its enrolment's new state (an eligibility
/// answer, most refusals): consecutive ones are written by two statements for them all
/// ([`write_run`]) instead of four each (savepoint, enrolment, call, release). Each statement
/// is a hand-off to the writer connection's thread, and those hand-offs, not the rows, are
/// what a batch costs.
fn written_in_a_run(job: &Job) -> bool {
    matches!(job.write, Write::Nothing) && job.call.state.is_some()
}

/// The enrolment upserts and call records of consecutive [`written_in_a_run`] writes, as one
/// multi-row statement each: the same rows as `upsert_enrolment!` and `insert_call!` one write
/// after the other (SQLite applies a multi-row upsert row by row, in order).
async fn write_run(conn: &mut sqlx::SqliteConnection, jobs: &[Job]) -> Result<(), sqlx::Error> {
    let mut enrolments = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO enrolments (correlation_id, card_ref, wallet_provider_id, state, created_at, updated_at) ",
    );
    enrolments.push_values(jobs, |mut row, job| {
        let c = &job.call;
        row.push_bind(&c.correlation_id)
            .push_bind(c.card_ref.as_deref())
            .push_bind(c.wallet.as_deref())
            .push_bind(c.state.as_deref())
            .push_bind(c.at)
            .push_bind(c.at);
    });
    enrolments.push(
        " ON CONFLICT (correlation_id) DO UPDATE SET \
         card_ref = COALESCE(enrolments.card_ref, excluded.card_ref), \
         wallet_provider_id = COALESCE(enrolments.wallet_provider_id, excluded.wallet_provider_id), \
         state = excluded.state, updated_at = excluded.updated_at",
    );
    enrolments.build().execute(&mut *conn).await?;
    let mut calls = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO calls (correlation_id, operation, card_ref, response_code, outcome, detail, duration_ms, at) ",
    );
    calls.push_values(jobs, |mut row, job| {
        let c = &job.call;
        row.push_bind(&c.correlation_id)
            .push_bind(&c.operation)
            .push_bind(c.card_ref.as_deref())
            .push_bind(c.response_code)
            .push_bind(&c.outcome)
            .push_bind(c.detail.as_deref())
            .push_bind(c.duration_ms)
            .push_bind(c.at);
    });
    calls.build().execute(&mut *conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Backend, DecisionRecord, MethodRecord, Store};
    use super::*;
    use crate::domain::IdvKind;
    use std::time::Duration;

    fn method(id: &str) -> MethodRecord {
        MethodRecord {
            method_id: id.into(),
            channel: IdvKind::Sms,
            method_type: "sms".into(),
            masked_value: "+44*****0123".into(),
        }
    }

    /// A fresh SQLite store in a folder of its own (kept while the folder is).
    async fn sqlite_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("gc.db").display());
        let store = Store::connect(&url, 2, Duration::from_secs(5))
            .await
            .unwrap();
        (dir, store)
    }

    fn writer_and_batcher(store: &Store) -> (&SqlitePool, &Batcher) {
        let Backend::Sqlite {
            writer, batcher, ..
        } = &store.backend
        else {
            panic!("a SQLite store");
        };
        (writer, batcher)
    }

    /// Five calls' writes in one batch, one of which breaks a constraint (two methods with one
    /// id): that one is answered its error and leaves nothing behind; the four others commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_is_rolled_back_alone_and_the_batch_commits() {
        let (_dir, store) = sqlite_store().await;
        let (writer, batcher) = writer_and_batcher(&store);
        // The writer connection is busy: the writes queue up behind it, as under load.
        let held = writer.acquire().await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..5 {
            let batcher = batcher.clone();
            tasks.push(tokio::spawn(async move {
                let cid = format!("gc-{i}");
                let call = CallRecord {
                    correlation_id: &cid,
                    operation: "requestCardDigitization",
                    card_ref: Some("card-1"),
                    wallet: None,
                    state: Some("yellow"),
                    response_code: 200,
                    outcome: "yellow",
                    detail: None,
                    duration_ms: Millis(1),
                    at: Millis(1_000),
                };
                let methods = if i == 2 {
                    vec![method("m1"), method("m1")]
                } else {
                    vec![method("m1"), method("m2")]
                };
                let write = Write::Decision(DecisionRecord {
                    decision: "yellow".into(),
                    rule: "step-up".into(),
                    signals_json: "{}".into(),
                    device_language: None,
                    device_name: None,
                    methods,
                });
                batcher.record(&call, &write).await
            }));
        }
        // All five handed over (one taken by the writer task, four waiting in the queue).
        while QUEUE - batcher.jobs.capacity() < 4 {
            tokio::task::yield_now().await;
        }
        drop(held);
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.is_ok(), i != 2, "write {i}: {r:?}");
        }
        for i in 0..5 {
            let cid = format!("gc-{i}");
            let calls = store.calls(&cid).await.unwrap();
            let methods = store.enrolment_methods(&cid).await.unwrap();
            let enrolment = store.enrolment(&cid).await.unwrap();
            if i == 2 {
                assert!(calls.is_empty() && methods.is_empty() && enrolment.is_none());
            } else {
                assert_eq!((calls.len(), methods.len()), (1, 2), "gc-{i}");
            }
        }
        store.close().await;
    }

    /// Consecutive call-only writes go as one multi-row statement per table: the rows are what
    /// one write after the other leaves (two calls of one enrolment: the first card reference
    /// kept, the later state taken); and when one of them fails, the run is undone and written
    /// one write at a time, so that only the failing one is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_of_call_only_writes_is_one_statement_and_a_failure_in_it_is_found() {
        let (_dir, store) = sqlite_store().await;
        let (writer, batcher) = writer_and_batcher(&store);
        // A write the database refuses, as a full disk or a constraint would.
        sqlx::query(
            "CREATE TRIGGER refuse_bad BEFORE INSERT ON calls WHEN NEW.correlation_id = 'run-bad' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(writer)
        .await
        .unwrap();
        let batch = |cids: Vec<&'static str>| async move {
            let calls: Vec<CallRecord<'static>> = cids
                .iter()
                .enumerate()
                .map(|(i, cid)| CallRecord {
                    correlation_id: cid,
                    operation: "checkCardEligibility",
                    card_ref: (i == 0).then_some("card-1"),
                    wallet: (i == 1).then_some("wallet-1"),
                    state: Some(if i == 0 { "eligible" } else { "ineligible" }),
                    response_code: 200,
                    outcome: "eligible",
                    detail: None,
                    duration_ms: Millis(1),
                    at: Millis(1_000 + i64::try_from(i).unwrap()),
                })
                .collect();
            let mut writes: Vec<_> = calls
                .iter()
                .map(|c| Box::pin(batcher.record(c, &Write::Nothing)))
                .collect();
            let mut results: Vec<Option<Result<Written, StoreError>>> =
                calls.iter().map(|_| None).collect();
            let mut poll_all = |cx: &mut std::task::Context<'_>| {
                for (w, r) in writes.iter_mut().zip(results.iter_mut()) {
                    if r.is_none() {
                        if let std::task::Poll::Ready(v) = w.as_mut().poll(cx) {
                            *r = Some(v);
                        }
                    }
                }
                results.iter().all(Option::is_some)
            };
            // The writer connection is busy: the first poll of each write hands it over, in
            // this order, and all of them wait for the writer, as under load.
            let held = writer.acquire().await.unwrap();
            std::future::poll_fn(|cx| {
                poll_all(cx);
                std::task::Poll::Ready(())
            })
            .await;
            drop(held);
            std::future::poll_fn(|cx| {
                if poll_all(cx) {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
            results.into_iter().map(Option::unwrap).collect::<Vec<_>>()
        };
        let (batches_before, _) = batcher.counts();
        let results = batch(vec!["run-a", "run-a", "run-b", "run-c"]).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let (batches, writes) = batcher.counts();
        assert!(
            batches - batches_before <= 2 && writes >= 4,
            "batched: {batches} {writes}"
        );
        let a = store.enrolment("run-a").await.unwrap().unwrap();
        assert_eq!(
            a.card_ref.as_deref(),
            Some("card-1"),
            "the first card reference kept"
        );
        assert_eq!(a.wallet_provider_id.as_deref(), Some("wallet-1"));
        assert_eq!(a.state, "ineligible", "the later state");
        assert_eq!(store.calls("run-a").await.unwrap().len(), 2);
        assert_eq!(store.calls("run-c").await.unwrap().len(), 1);

        let results = batch(vec!["run-d", "run-e", "run-bad", "run-f"]).await;
        let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, true, false, true], "{results:?}");
        for cid in ["run-d", "run-e", "run-f"] {
            assert_eq!(store.calls(cid).await.unwrap().len(), 1, "{cid}");
            assert!(store.enrolment(cid).await.unwrap().is_some(), "{cid}");
        }
        assert!(store.calls("run-bad").await.unwrap().is_empty());
        assert!(store.enrolment("run-bad").await.unwrap().is_none());
        store.close().await;
    }
}
