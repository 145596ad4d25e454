//! Group commit on SQLite: the calls' writes (`Store::record`), the sends' claims
//! (`Store::claim_send`) and the cardholder notices' attempts go to one writer task, on a thread
//! of its own, which puts the tasks that are waiting together into one transaction and one
//! fsync, and answers each only once the commit that holds it is on disk (`synchronous = FULL`): durability exactly as with one transaction
//! per call, at the cost of one fsync per batch instead of one per call.
//!
//! Each write of a batch runs inside its own savepoint, so that a write that fails (a constraint,
//! a bug) is rolled back alone and answered its error, while the others commit. A batch that
//! cannot commit answers every task of it with the error: none of them was acknowledged.
//!
//! Every statement is a hand-off to the writer connection's thread (sqlx runs each SQLite
//! connection on a thread of its own), and those hand-offs are what a batch costs, not its rows.
//! So each write is one SQL text of several statements, savepoint and release included
//! ([`write_in_one`]; a token notice first reads what it needs), and consecutive writes that are
//! only a call record and its enrolment's state (eligibility answers above all) are one text of
//! one multi-row statement per table ([`write_run`]); if a run fails, it is undone and the same
//! writes go one at a time, to refuse only the one at fault. The texts are built from the same
//! statement constants and bind macros as `apply_write!`, which writes one statement at a time
//! (PostgreSQL's path, and SQLite's while webhook endpoints may be configured).

use super::{
    CallRecord, Claim, LockKey, NoticeOutcome, SendClaim, SendLimit, StoreError, Write, Written,
};
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

/// A send's claim that owns its text, to hand over to the writer task.
struct OwnedClaim {
    correlation_id: String,
    card_ref: String,
    method_id: String,
    channel: crate::domain::Channel,
    provider: String,
    destination_masked: String,
    destination_fp: String,
    retry_fp: String,
    at: Millis,
    stale_after: Millis,
    limits: Vec<SendLimit>,
}

impl OwnedClaim {
    fn of(c: &SendClaim<'_>) -> OwnedClaim {
        OwnedClaim {
            correlation_id: c.correlation_id.to_owned(),
            card_ref: c.card_ref.to_owned(),
            method_id: c.method_id.to_owned(),
            channel: c.channel,
            provider: c.provider.to_owned(),
            destination_masked: c.destination_masked.to_owned(),
            destination_fp: c.destination_fp.to_owned(),
            retry_fp: c.retry_fp.to_owned(),
            at: c.at,
            stale_after: c.stale_after,
            limits: c.limits.to_vec(),
        }
    }

    fn claim(&self) -> SendClaim<'_> {
        SendClaim {
            correlation_id: &self.correlation_id,
            card_ref: &self.card_ref,
            method_id: &self.method_id,
            channel: self.channel,
            provider: &self.provider,
            destination_masked: &self.destination_masked,
            destination_fp: &self.destination_fp,
            retry_fp: &self.retry_fp,
            at: self.at,
            stale_after: self.stale_after,
            limits: &self.limits,
        }
    }
}

/// What the writer task is handed: a call's write, or a send's claim (`Store::claim_send`),
/// which thus shares the batch's fsync instead of taking one of its own. Tasks are moved once,
/// into the queue and out: boxing the larger variant would only add an allocation per call.
#[allow(clippy::large_enum_variant)]
enum Task {
    Call(Job),
    Claim {
        claim: OwnedClaim,
        reply: oneshot::Sender<Result<Claim, StoreError>>,
    },
    /// An attempt of a cardholder notice (`Store::finish_cardholder_notice`).
    NoticeFinished {
        id: i64,
        attempt: i64,
        outcome: super::NoticeAttempt,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// A task's result.
enum Done {
    Call(Result<Written, StoreError>),
    Claim(Result<Claim, StoreError>),
    NoticeFinished(Result<(), StoreError>),
}

impl Task {
    fn answer(self, done: Done) {
        match (self, done) {
            (Task::Call(job), Done::Call(result)) => {
                let _ = job.reply.send(result);
            }
            (Task::Claim { reply, .. }, Done::Claim(result)) => {
                let _ = reply.send(result);
            }
            (Task::NoticeFinished { reply, .. }, Done::NoticeFinished(result)) => {
                let _ = reply.send(result);
            }
            (task, _) => task.fail(StoreError::Unexpected("a result of another task".into())),
        }
    }

    fn fail(self, e: StoreError) {
        match self {
            Task::Call(job) => {
                let _ = job.reply.send(Err(e));
            }
            Task::Claim { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Task::NoticeFinished { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
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
    jobs: mpsc::Sender<Task>,
    counts: Arc<Counts>,
}

impl Batcher {
    /// Starts the writer task on the (single-connection) writer pool, on a thread of its own.
    ///
    /// Each statement of a batch is a round trip to the writer connection's thread; on the
    /// shared runtime, the writer task's every resumption waited for a worker free of the
    /// calls' work (an RSA operation takes a worker for about 0.3 ms), once per statement. On
    /// its own thread it is resumed at once, and the calls' workers never run it.
    pub fn start(writer: SqlitePool) -> std::io::Result<Batcher> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let counts = Arc::new(Counts::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let task_counts = counts.clone();
        std::thread::Builder::new()
            .name("ig-writer".into())
            .spawn(move || runtime.block_on(run(writer, queue, task_counts)))?;
        Ok(Batcher { jobs, counts })
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
        self.jobs
            .send(Task::Call(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Hands a send's claim over and waits for the commit that holds it.
    pub async fn claim(&self, claim: &SendClaim<'_>) -> Result<Claim, StoreError> {
        let (reply, answer) = oneshot::channel();
        let task = Task::Claim {
            claim: OwnedClaim::of(claim),
            reply,
        };
        self.jobs.send(task).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Hands a cardholder notice's attempt over and waits for the commit that holds it.
    pub async fn finish_notice(
        &self,
        id: i64,
        attempt: i64,
        outcome: &super::NoticeAttempt,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let task = Task::NoticeFinished {
            id,
            attempt,
            outcome: outcome.clone(),
            reply,
        };
        self.jobs.send(task).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(writer: SqlitePool, mut queue: mpsc::Receiver<Task>, counts: Arc<Counts>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        // The transaction first: while it waits for the writer connection (another write of
        // the store holds it), more calls' writes queue up and join this batch.
        // BEGIN IMMEDIATE: the write lock at once (another process, such as `cards import`, may
        // be writing), not a failure at the first write.
        let tx = match writer.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(e) => {
                first.fail(StoreError::Db(e));
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
                for (task, done) in jobs.drain(..).zip(results) {
                    task.answer(done);
                }
            }
            Err(e) => {
                let cause = e.to_string();
                for task in jobs.drain(..) {
                    task.fail(StoreError::Commit(cause.clone()));
                }
            }
        }
    }
}

/// One transaction for the batch: each task's result, or the error that stopped the batch.
async fn commit(
    mut tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    tasks: &[Task],
) -> Result<Vec<Done>, StoreError> {
    let mut results = Vec::with_capacity(tasks.len());
    if let [Task::Call(job)] = tasks {
        let result = match write_in_one(&mut tx, job).await? {
            Some(result) => result,
            None => {
                let call = job.call.record();
                apply_write!(tx, &call, &job.write)
            }
        };
        if result.is_err() {
            tx.rollback().await?;
            return Ok(vec![Done::Call(result)]);
        }
        results.push(Done::Call(result));
    } else {
        let mut rest = tasks;
        // Cleared once a run written whole failed: the rest go one by one.
        let mut whole_runs = true;
        while let Some((task, after_it)) = rest.split_first() {
            let run = rest
                .iter()
                .take_while(|t| matches!(t, Task::Call(j) if written_in_a_run(j)))
                .count();
            if whole_runs && run >= 2 {
                let (these, after) = rest.split_at(run);
                if write_run(&mut tx, these).await.is_ok() {
                    results.extend(these.iter().map(|_| Done::Call(Ok(Written::Done))));
                    rest = after;
                    continue;
                }
                // One of them fails: undo the run and find which, one write at a time.
                sqlx::raw_sql("ROLLBACK TO gc_run; RELEASE gc_run")
                    .execute(&mut *tx)
                    .await?;
                whole_runs = false;
            }
            rest = after_it;
            let job = match task {
                Task::Call(job) => job,
                Task::NoticeFinished {
                    id,
                    attempt,
                    outcome,
                    ..
                } => {
                    let q = sqlx::query(FINISH_NOTICE_IN_ONE.as_str());
                    let q = bind_finish_notice!(q, *id, *attempt, outcome);
                    let result = in_savepoint(&mut tx, q, ()).await?;
                    results.push(Done::NoticeFinished(result));
                    continue;
                }
                Task::Claim { claim, .. } => {
                    let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
                    let claim = claim.claim();
                    let result = claim_send_in!(savepoint, &claim);
                    if result.is_ok() {
                        savepoint.commit().await?;
                    } else {
                        savepoint.rollback().await?;
                    }
                    results.push(Done::Claim(result));
                    continue;
                }
            };
            if let Some(result) = write_in_one(&mut tx, job).await? {
                results.push(Done::Call(result));
                continue;
            }
            let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
            let call = job.call.record();
            let result = apply_write!(savepoint, &call, &job.write);
            if result.is_ok() {
                savepoint.commit().await?;
            } else {
                savepoint.rollback().await?;
            }
            results.push(Done::Call(result));
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// A cardholder notice's attempt, as one SQL text in a savepoint.
static FINISH_NOTICE_IN_ONE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| in_one(&[super::cardholder_notices::FINISH_NOTICE]));

/// Decisions offering more methods than this take the statements one by one.
const MAX_METHODS_IN_ONE: usize = 8;

/// The SQL texts of [`write_in_one`], one per shape of write, built once.
struct Shapes {
    nothing: String,
    send_finished: String,
    /// By the number of methods the decision offers.
    decisions: Vec<String>,
    /// A recorded token notice's, by [`notice_shape`].
    notices: Vec<String>,
}

static SHAPES: std::sync::LazyLock<Shapes> = std::sync::LazyLock::new(|| {
    use super::enrolments::{DELETE_METHODS, INSERT_METHOD, SET_DECISION};
    use super::{INSERT_CALL, UPSERT_ENROLMENT};
    Shapes {
        nothing: in_one(&[UPSERT_ENROLMENT, INSERT_CALL]),
        send_finished: in_one(&[UPSERT_ENROLMENT, super::sends::FINISH_SEND, INSERT_CALL]),
        decisions: (0..=MAX_METHODS_IN_ONE)
            .map(|k| {
                let mut parts = vec![UPSERT_ENROLMENT, SET_DECISION, DELETE_METHODS];
                parts.extend(std::iter::repeat_n(INSERT_METHOD, k));
                parts.push(INSERT_CALL);
                in_one(&parts)
            })
            .collect(),
        notices: (0..32).map(|shape| in_one(&notice_parts(shape))).collect(),
    }
});

/// What a recorded token notice writes besides its fixed statements, as an index of
/// [`Shapes::notices`]: one bit per statement it adds.
fn notice_shape(then: &super::tokens::NoticeThen, previous: bool) -> usize {
    usize::from(then.enqueue_notice)
        | usize::from(then.enqueue_notice && previous) << 1
        | usize::from(then.complete_enrolment) << 2
        | usize::from(then.complete_activated) << 3
        | usize::from(then.fail_enrolment) << 4
}

/// The statements of a recorded token notice of shape `shape` ([`notice_shape`]), in
/// `apply_notice_in!`'s order.
fn notice_parts(shape: usize) -> Vec<&'static str> {
    use super::cardholder_notices::{ENQUEUE_CURRENT, ENQUEUE_PREVIOUS};
    use super::tokens::{
        COMPLETE_ACTIVATED, ENROLMENT_COMPLETE, ENROLMENT_FAILED, INSERT_TOKEN_EVENT, UPSERT_TOKEN,
    };
    let mut parts = vec![
        INSERT_TOKEN_EVENT,
        UPSERT_TOKEN,
        super::UPSERT_ENROLMENT,
        super::operations::CONFIRM_BY_ID,
        CONFIRM_BY_CARD_IF_NONE.as_str(),
    ];
    for (bit, part) in [
        ENQUEUE_CURRENT,
        ENQUEUE_PREVIOUS,
        ENROLMENT_COMPLETE,
        COMPLETE_ACTIVATED,
        ENROLMENT_FAILED,
    ]
    .into_iter()
    .enumerate()
    {
        if shape & (1 << bit) != 0 {
            parts.push(part);
        }
    }
    parts.push(super::INSERT_CALL);
    parts
}

/// The statements `parts`, each numbering its parameters from `$1`, as one SQL text inside a
/// savepoint of their own, the parameters numbered on from one statement to the next.
fn in_one(parts: &[&str]) -> String {
    let mut text = String::from("SAVEPOINT gc_write; ");
    let mut offset = 0;
    for part in parts {
        let (renumbered, count) = renumber(part, offset);
        text.push_str(&renumbered);
        text.push_str("; ");
        offset += count;
    }
    text.push_str("RELEASE gc_write");
    text
}

/// `sql` with each parameter `$n` as `$(n + offset)`, and the highest `n` it holds.
fn renumber(sql: &str, offset: usize) -> (String, usize) {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut highest = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let mut n: Option<usize> = None;
        while let Some(digit) = chars.peek().and_then(|d| d.to_digit(10)) {
            n = Some(n.unwrap_or(0) * 10 + digit as usize);
            chars.next();
        }
        if let Some(n) = n {
            highest = highest.max(n);
            out.push_str(&(n + offset).to_string());
        }
    }
    (out, highest)
}

/// Writes a call-record-only write, a decision or a send's outcome as one SQL text of several
/// statements ([`SHAPES`]): one hand-off to the writer connection's thread instead of one per
/// statement (four to eight of them, savepoint and release included), each statement
/// prepared once and kept. The statements and their parameters are the ones `apply_write!`
/// runs one at a time (the same constants and bind macros); the write is inside a savepoint
/// of its own, undone alone when one of its statements fails.
///
/// `Ok(None)`: the write is not of such a shape, or webhook endpoints may be configured (its
/// events are then written by `apply_write!`). `Err`: the transaction is in an unknown state
/// and the batch must not commit.
async fn write_in_one(
    conn: &mut sqlx::SqliteConnection,
    job: &Job,
) -> Result<Option<Result<Written, StoreError>>, StoreError> {
    if super::events::may_have_endpoints() {
        return Ok(None);
    }
    let call = job.call.record();
    let shapes = &*SHAPES;
    let query = match &job.write {
        Write::Nothing => {
            let q = bind_upsert_enrolment!(sqlx::query(shapes.nothing.as_str()), call);
            bind_insert_call!(q, call)
        }
        Write::SendFinished { id, finish } => {
            let q = bind_upsert_enrolment!(sqlx::query(shapes.send_finished.as_str()), call);
            let q = bind_send_finish!(q, *id, call, finish);
            bind_insert_call!(q, call)
        }
        Write::Decision(d) => {
            let Some(text) = shapes.decisions.get(d.methods.len()) else {
                return Ok(None);
            };
            let q = bind_upsert_enrolment!(sqlx::query(text.as_str()), call);
            let mut q = bind_decision!(q, call, d).bind(call.correlation_id);
            for (i, m) in d.methods.iter().enumerate() {
                q = bind_method!(q, call, m, i);
            }
            bind_insert_call!(q, call)
        }
        Write::Notice(n) => return notice_in_one(conn, &call, n).await,
    };
    in_savepoint(conn, query, Written::Done).await.map(Some)
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
/// after the other (SQLite applies a multi-row upsert row by row, in order). Both statements
/// are one SQL text inside savepoint `gc_run` (one hand-off to the writer connection's thread);
/// on `Err` the caller undoes the savepoint.
async fn write_run(conn: &mut sqlx::SqliteConnection, tasks: &[Task]) -> Result<(), sqlx::Error> {
    let jobs = || {
        tasks.iter().filter_map(|t| match t {
            Task::Call(job) => Some(job),
            Task::Claim { .. } | Task::NoticeFinished { .. } => None,
        })
    };
    let mut text = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "SAVEPOINT gc_run; INSERT INTO enrolments (correlation_id, card_ref, wallet_provider_id, state, created_at, updated_at) ",
    );
    text.push_values(jobs(), |mut row, job| {
        let c = &job.call;
        row.push_bind(&c.correlation_id)
            .push_bind(c.card_ref.as_deref())
            .push_bind(c.wallet.as_deref())
            .push_bind(c.state.as_deref())
            .push_bind(c.at)
            .push_bind(c.at);
    });
    text.push(
        " ON CONFLICT (correlation_id) DO UPDATE SET \
         card_ref = COALESCE(enrolments.card_ref, excluded.card_ref), \
         wallet_provider_id = COALESCE(enrolments.wallet_provider_id, excluded.wallet_provider_id), \
         state = excluded.state, updated_at = excluded.updated_at",
    );
    text.push(
        "; INSERT INTO calls (correlation_id, operation, card_ref, response_code, outcome, detail, duration_ms, at) ",
    );
    text.push_values(jobs(), |mut row, job| {
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
    text.push("; RELEASE gc_run");
    text.build().execute(&mut *conn).await?;
    Ok(())
}

/// [`CONFIRM_BY_CARD`](super::operations::CONFIRM_BY_CARD) when the statement before it
/// (`CONFIRM_BY_ID`) confirmed nothing: `confirm_operation!`'s branch, inside one SQL text
/// (SQLite's `changes()` is the rows of the statement completed last).
static CONFIRM_BY_CARD_IF_NONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("{} AND changes() = 0", super::operations::CONFIRM_BY_CARD)
});

/// A token notice (`apply_notice_in!`) in two hand-offs instead of about a dozen: one read of
/// the token's state and whether the notice is already recorded (the writer connection is the
/// only writer, so nothing changes in between), then the statements that notice makes, as one
/// SQL text in a savepoint. The same statement constants, bind macros and decisions
/// ([`state_after`](super::tokens::state_after), [`NoticeThen`](super::tokens::NoticeThen)) as
/// the macro's.
async fn notice_in_one(
    conn: &mut sqlx::SqliteConnection,
    call: &CallRecord<'_>,
    n: &super::NoticeRecord,
) -> Result<Option<Result<Written, StoreError>>, StoreError> {
    use super::tokens::{NoticeThen, state_after};
    let seen: Result<(Option<String>, bool), sqlx::Error> = sqlx::query_as(
        "SELECT (SELECT state FROM tokens WHERE virtual_card_id = $1), \
         EXISTS (SELECT 1 FROM token_events WHERE notice_fp = $2)",
    )
    .bind(&n.virtual_card_id)
    .bind(&n.notice_fp)
    .fetch_one(&mut *conn)
    .await;
    let (before, duplicate) = match seen {
        Ok(seen) => seen,
        Err(e) => return Ok(Some(Err(StoreError::Db(e)))),
    };
    if duplicate {
        let dup = CallRecord {
            outcome: "duplicate",
            state: None,
            ..*call
        };
        let q = bind_upsert_enrolment!(sqlx::query(SHAPES.nothing.as_str()), dup);
        let q = bind_insert_call!(q, dup);
        return in_savepoint(conn, q, Written::Notice(NoticeOutcome::Duplicate))
            .await
            .map(Some);
    }
    let (after, failed) = state_after(before.as_deref(), n);
    let wipe = !failed && matches!(n.action, crate::domain::Action::Erase);
    let then = NoticeThen::of(n, &after, failed);
    let previous = then.enqueue_notice && n.previous_destination_since.is_some();
    let Some(text) = SHAPES.notices.get(notice_shape(&then, previous)) else {
        return Ok(None);
    };
    let q = bind_token_event!(sqlx::query(text.as_str()), call, n, &before, &after);
    let q = bind_token!(q, call, n, &after, failed, wipe);
    let q = bind_upsert_enrolment!(q, call);
    let q = q.bind(call.correlation_id).bind(call.at);
    let mut q = bind_confirm_by_card!(
        q,
        &n.card_ref,
        &n.virtual_card_id,
        n.action.as_str(),
        call.at
    );
    if then.enqueue_notice {
        q = bind_enqueue_notice!(
            q,
            &n.card_ref,
            &n.virtual_card_id,
            &n.wallet_provider_id,
            call.correlation_id,
            call.at
        );
        if previous {
            q = bind_enqueue_notice!(
                q,
                &n.card_ref,
                &n.virtual_card_id,
                &n.wallet_provider_id,
                call.correlation_id,
                call.at
            )
            .bind(n.previous_destination_since);
        }
    }
    if then.complete_enrolment {
        q = q.bind(call.correlation_id).bind(call.at);
    }
    if then.complete_activated {
        q = q
            .bind(call.correlation_id)
            .bind(&n.virtual_card_id)
            .bind(call.at);
    }
    if then.fail_enrolment {
        q = q.bind(call.correlation_id).bind(call.at);
    }
    let q = bind_insert_call!(q, call);
    let recorded = Written::Notice(NoticeOutcome::Recorded {
        before: before.clone(),
        after: after.clone(),
    });
    in_savepoint(conn, q, recorded).await.map(Some)
}

/// Runs one SQL text of [`in_one`]: `written` when it all ran, else its error, with what ran
/// of it undone.
async fn in_savepoint<'q, T>(
    conn: &mut sqlx::SqliteConnection,
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    written: T,
) -> Result<Result<T, StoreError>, StoreError> {
    match query.execute(&mut *conn).await {
        Ok(_) => Ok(Ok(written)),
        Err(e) => {
            // What ran of it is undone; the batch goes on without it.
            sqlx::raw_sql("ROLLBACK TO gc_write; RELEASE gc_write")
                .execute(&mut *conn)
                .await?;
            Ok(Err(StoreError::Db(e)))
        }
    }
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

    /// Every row of `table`, each as the SQL literals of its columns (`quote`), in rowid order.
    /// `token_events.id` is left out: a duplicate notice's `INSERT ... ON CONFLICT DO NOTHING`
    /// uses up an id of the one-at-a-time path, which the one-text path, reading first, does
    /// not try.
    async fn dump(writer: &SqlitePool, table: &str) -> Vec<String> {
        let columns: Vec<(String,)> =
            sqlx::query_as(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .fetch_all(writer)
                .await
                .unwrap();
        let row: Vec<String> = columns
            .iter()
            .filter(|(c,)| !(table == "token_events" && c == "id"))
            .map(|(c,)| format!("quote({c})"))
            .collect();
        let sql = format!(
            "SELECT {} FROM {table} ORDER BY rowid",
            row.join(" || '|' || ")
        );
        let rows: Vec<(String,)> = sqlx::query_as(&sql).fetch_all(writer).await.unwrap();
        rows.into_iter().map(|(r,)| r).collect()
    }

    /// A write of each shape `write_in_one` takes (a call alone, with and without a state,
    /// decisions offering none, one and several methods, a decision replacing an earlier one,
    /// a send's outcome) leaves exactly the rows that `apply_write!` leaves, statement by
    /// statement: the parameters of the one SQL text are numbered right.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_sql_text_per_write_leaves_the_rows_of_one_statement_at_a_time() {
        // With webhook endpoints in sight the one-text path is not taken at all; no unit test
        // configures any (the webhook tests are black-box, in processes of their own).
        assert!(!super::super::events::may_have_endpoints());
        let decision = |methods: Vec<MethodRecord>| {
            Write::Decision(DecisionRecord {
                decision: if methods.is_empty() {
                    "green"
                } else {
                    "yellow"
                }
                .into(),
                rule: format!("rule-{}", methods.len()),
                signals_json: "{\"score\":1}".into(),
                device_language: Some("fr".into()),
                device_name: (methods.len() == 2).then(|| "Pixel".into()),
                methods,
            })
        };
        use crate::domain::Action;
        let notice = |vcid: &str, action: Action, fp: &str, error_code: Option<i64>| {
            Write::Notice(super::super::NoticeRecord {
                virtual_card_id: vcid.into(),
                card_ref: "card-4".into(),
                wallet_provider_id: "wallet-1".into(),
                token_storage_id: Some("ts-1".into()),
                is_primary: Some(true),
                action,
                source: Some("WALLET".into()),
                error_code,
                dpan_last4: Some("1234".into()),
                dpan_exp: Some("1230".into()),
                notice_fp: fp.into(),
                tell_cardholder: true,
                previous_destination_since: Some(Millis(0)),
            })
        };
        let finish = Write::SendFinished {
            id: 1,
            finish: super::super::SendFinish {
                outcome: crate::domain::SendOutcome::Accepted,
                provider_message_id: Some("SM1".into()),
                provider_code: None,
                latency_ms: Millis(42),
                accepted_by: Some("sms-main".into()),
                attempts: "sms-main:accepted".into(),
            },
        };
        let writes = [
            ("one-a", Some("eligible"), Some("card-1"), Write::Nothing),
            ("one-b", None, None, Write::Nothing),
            ("one-a", Some("green"), Some("card-1"), decision(vec![])),
            (
                "one-c",
                Some("yellow"),
                Some("card-2"),
                decision(vec![method("m1")]),
            ),
            (
                "one-d",
                Some("yellow"),
                Some("card-3"),
                decision(vec![method("m1"), method("m2")]),
            ),
            (
                "one-d",
                Some("yellow"),
                None,
                decision(vec![method("m3"), method("m4"), method("m5")]),
            ),
            ("one-d", None, Some("card-3"), finish),
            // Notices: an ACTIVATE telling the cardholder, the same notice again, one
            // confirming the operation of its card (none has its correlation id), one
            // confirming the operation of its own correlation id (and not the other one of the
            // card), a deletion, a failed operation's.
            (
                "one-e",
                None,
                Some("card-4"),
                notice("tok-1", Action::Activate, "fp1", None),
            ),
            (
                "one-e",
                None,
                Some("card-4"),
                notice("tok-1", Action::Activate, "fp1", None),
            ),
            (
                "one-f",
                None,
                Some("card-4"),
                notice("tok-1", Action::Suspend, "fp2", None),
            ),
            (
                "op-2",
                None,
                Some("card-4"),
                notice("tok-1", Action::Resume, "fp3", None),
            ),
            (
                "one-g",
                None,
                Some("card-4"),
                notice("tok-2", Action::Delete, "fp4", None),
            ),
            (
                "one-h",
                None,
                Some("card-4"),
                notice("tok-1", Action::Suspend, "fp5", Some(5)),
            ),
        ];
        let mut dumps = Vec::new();
        for one_text in [true, false] {
            let (_dir, store) = sqlite_store().await;
            let (writer, _) = writer_and_batcher(&store);
            sqlx::query(
                "INSERT INTO sends (correlation_id, card_ref, method_id, channel, provider, \
                 destination_masked, destination_fp, retry_fp, outcome, response_code, latency_ms, at) \
                 VALUES ('one-d', 'card-3', 'm1', 'sms', 'sms-main', '+44*****0123', 'fp', 'rfp', \
                 'pending', 0, 0, 5)",
            )
            .execute(writer)
            .await
            .unwrap();
            for (cid, action) in [("op-1", "SUSPEND"), ("op-2", "RESUME"), ("op-3", "RESUME")] {
                sqlx::query(
                    "INSERT INTO lifecycle_operations (card_ref, kind, action, virtual_card_id, cause, \
                     correlation_id, state, next_attempt_at, created_at, updated_at) \
                     VALUES ('card-4', 'token', $1, 'tok-1', 'test', $2, 'sent', 0, 1, 1)",
                )
                .bind(action)
                .bind(cid)
                .execute(writer)
                .await
                .unwrap();
            }
            let mut tx = writer.begin().await.unwrap();
            let mut outcomes = Vec::new();
            for (i, (cid, state, card, write)) in writes.iter().enumerate() {
                let (reply, _) = oneshot::channel();
                let at = Millis(1_000 + i64::try_from(i).unwrap());
                let job = Job {
                    call: OwnedCall::of(&CallRecord {
                        correlation_id: cid,
                        operation: "op",
                        card_ref: *card,
                        wallet: (i % 2 == 0).then_some("wallet-1"),
                        state: *state,
                        response_code: 200 + i64::try_from(i).unwrap(),
                        outcome: "ok",
                        detail: (i == 3).then_some("detail"),
                        duration_ms: Millis(7),
                        at,
                    }),
                    write: write.clone(),
                    reply,
                };
                let written = if one_text {
                    write_in_one(&mut tx, &job).await.unwrap().unwrap().unwrap()
                } else {
                    let call = job.call.record();
                    apply_write!(tx, &call, &job.write).unwrap()
                };
                outcomes.push(written);
            }
            tx.commit().await.unwrap();
            let mut tables = Vec::new();
            for table in [
                "enrolments",
                "enrolment_methods",
                "calls",
                "sends",
                "tokens",
                "token_events",
                "cardholder_notices",
                "lifecycle_operations",
            ] {
                tables.push(dump(writer, table).await);
            }
            dumps.push((outcomes, tables));
            store.close().await;
        }
        assert_eq!(dumps[0], dumps[1]);
        // The rows are there at all (not two empty databases), and each case did its part.
        let (outcomes, tables) = &dumps[0];
        assert_eq!(outcomes[8], Written::Notice(NoticeOutcome::Duplicate));
        assert_eq!(tables[1].len(), 4, "{:?}", tables[1]);
        assert!(tables[3][0].contains("'SM1'"), "{:?}", tables[3]);
        assert_eq!(tables[5].len(), 5, "token events: {:?}", tables[5]);
        assert_eq!(tables[6].len(), 1, "activation notices: {:?}", tables[6]);
        let confirmed: Vec<bool> = tables[7]
            .iter()
            .map(|r| r.contains("'confirmed'"))
            .collect();
        assert_eq!(confirmed, [true, true, false], "{:?}", tables[7]);
    }

    #[test]
    fn parameters_are_numbered_on_from_the_statements_before() {
        assert_eq!(
            renumber(
                "SET a = $1, b = COALESCE($12, b) WHERE c = $1 AND d = '$'",
                5
            ),
            (
                "SET a = $6, b = COALESCE($17, b) WHERE c = $6 AND d = '$'".to_owned(),
                12
            )
        );
        assert_eq!(
            in_one(&["A $1 $2", "B $1"]),
            "SAVEPOINT gc_write; A $1 $2; B $3; RELEASE gc_write"
        );
    }

    /// Claims queued together are one batch, applied in order: the second claim of one OTP sees
    /// the first one's pending send (in flight), a third send to the same enrolment finds the
    /// limit that the first two reached, and a claim of another card goes ahead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claims_in_one_batch_see_each_other() {
        let (_dir, store) = sqlite_store().await;
        let (writer, batcher) = writer_and_batcher(&store);
        let limits = [SendLimit {
            name: "sends per enrolment",
            scope: super::super::LimitScope::Enrolment,
            window: None,
            max: 2,
        }];
        let claim = |cid: &'static str, card: &'static str, retry: &'static str| SendClaim {
            correlation_id: cid,
            card_ref: card,
            method_id: "m1",
            channel: crate::domain::Channel::Sms,
            provider: "sms-main",
            destination_masked: "+44*****0123",
            destination_fp: "fp",
            retry_fp: retry,
            at: Millis(10_000),
            stale_after: Millis(60_000),
            limits: &limits,
        };
        let claims = [
            claim("cl-a", "card-1", "otp-1"),
            claim("cl-a", "card-1", "otp-1"),
            claim("cl-a", "card-1", "otp-2"),
            claim("cl-a", "card-1", "otp-3"),
            claim("cl-b", "card-2", "otp-4"),
        ];
        let held = writer.acquire().await.unwrap();
        let (batches_before, _) = batcher.counts();
        let mut pending: Vec<_> = claims.iter().map(|c| Box::pin(batcher.claim(c))).collect();
        // The first poll of each hands it over, in this order, behind the busy writer.
        std::future::poll_fn(|cx| {
            for p in &mut pending {
                assert!(p.as_mut().poll(cx).is_pending());
            }
            std::task::Poll::Ready(())
        })
        .await;
        drop(held);
        let mut results = Vec::new();
        for p in pending {
            results.push(p.await.unwrap());
        }
        assert!(matches!(results[0], Claim::Claimed(_)), "{results:?}");
        assert_eq!(results[1], Claim::InFlight);
        assert!(matches!(results[2], Claim::Claimed(_)), "{results:?}");
        assert_eq!(results[3], Claim::Limited("sends per enrolment"));
        assert!(matches!(results[4], Claim::Claimed(_)), "{results:?}");
        let (batches, _) = batcher.counts();
        assert!(
            batches - batches_before <= 2,
            "{} batches",
            batches - batches_before
        );
        let (pending_rows,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM sends WHERE outcome = 'pending'")
                .fetch_one(writer)
                .await
                .unwrap();
        assert_eq!(pending_rows, 3);
        store.close().await;
    }
}
