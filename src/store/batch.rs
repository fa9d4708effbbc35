//! Group commit: the journal's writer thread runs every job waiting for it in one SQLite
//! transaction, and answers each job only after that transaction committed.
//!
//! One fill's life is several journal writes (its range, the intent, the order, the outcome, the
//! execution, events), and every other fill's writes queue on the same thread. Committing each
//! on its own made the journal the pipeline's bottleneck; committing whatever is queued at once
//! costs one commit for many writes, and nothing leaves before its write is durable: a job's
//! answer (which is what lets an order go out) is sent after the commit, never before.
//!
//! Each job runs inside its own savepoint, so a job that fails is rolled back alone and the others
//! in the batch still commit. When the commit itself fails, every job of the batch is answered
//! with that error: none of their writes happened.
//!
//! A batch's answers cross to the daemon's runtime together, in one hand-over: answered one by
//! one, each woke that runtime's thread with a system call of its own, on the writer's time and
//! between the commit and the next batch (BENCHMARKS.md, eighth round). Every answer carries the
//! moment its commit ended, which is when its write became durable.

use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

use super::{Store, StoreError, StoreResult};

/// The most jobs in one transaction (bounds how long a batch holds the write lock).
const MAX_BATCH: usize = 512;

/// What a job leaves for after the commit: it answers its caller, given the commit's error if any
/// and the moment the commit ended.
pub type Reply = Box<dyn FnOnce(Option<&str>, Instant) + Send>;
/// One unit of journal work.
pub type Job = Box<dyn FnOnce(&mut Store) -> Reply + Send>;

/// Starts the writer thread that owns `store`; jobs sent to the returned sender run in batches.
///
/// # Errors
/// When the thread cannot be started.
pub fn spawn_writer(mut store: Store) -> std::io::Result<Sender<Job>> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let answers = Answers::on_current_runtime();
    // Checkpoints run beside the writer, never inside one of its commits (see `checkpoint`).
    let checkpointer = store.checkpoint_in_background().unwrap_or_else(|e| {
        tracing::warn!(cause = %e, "the journal checkpoints on its writer");
        None
    });
    std::thread::Builder::new().name("journal".into()).spawn(move || {
        run(&mut store, &rx, &answers);
        drop(store);
        drop(checkpointer);
    })?;
    Ok(tx)
}

fn run(store: &mut Store, rx: &Receiver<Job>, answers: &Answers) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let (replies, commit) = run_batch(store, batch);
        answers.send(Answered { replies, commit, at: Instant::now() });
    }
}

/// A batch's answers: each job's reply, the commit's error if any, and when the commit ended.
struct Answered {
    replies: Vec<Reply>,
    commit: Option<String>,
    at: Instant,
}

impl Answered {
    fn deliver(self) {
        for r in self.replies {
            r(self.commit.as_deref(), self.at);
        }
    }
}

/// Where the writer's answers are delivered.
enum Answers {
    /// To a task on the daemon's runtime, which answers each caller without another system call.
    Runtime(tokio::sync::mpsc::UnboundedSender<Answered>),
    /// On the writer thread itself (no runtime where the writer was started).
    Writer,
}

impl Answers {
    /// A delivery task on the runtime this is called from, if any.
    fn on_current_runtime() -> Self {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Self::Writer;
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Answered>();
        rt.spawn(async move {
            while let Some(a) = rx.recv().await {
                a.deliver();
            }
        });
        Self::Runtime(tx)
    }

    fn send(&self, a: Answered) {
        match self {
            // The task is gone only when its runtime stopped: nobody is left to await the answers,
            // and a reply dropped unanswered tells its caller the writer is gone.
            Self::Runtime(tx) => drop(tx.send(a)),
            Self::Writer => a.deliver(),
        }
    }
}

/// Runs a batch in one transaction; returns each job's reply and the commit's error, if any.
fn run_batch(store: &mut Store, batch: Vec<Job>) -> (Vec<Reply>, Option<String>) {
    // Without the outer transaction (BEGIN refused: busy, disk) each job still commits on its own.
    // Both prepared once: every batch runs them.
    let outer = super::journal::exec(&store.conn, "BEGIN IMMEDIATE", []).is_ok();
    let mut replies = Vec::with_capacity(batch.len());
    for job in batch {
        // A job that panics must not take the writer (and every later write) with it.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(store))) {
            Ok(r) => replies.push(r),
            Err(_) => tracing::error!("a journal job panicked; its caller gets no answer"),
        }
    }
    let commit = if outer {
        super::journal::exec(&store.conn, "COMMIT", []).err().map(|e| {
            let _ = store.conn.execute_batch("ROLLBACK");
            format!("the journal could not commit: {e}")
        })
    } else {
        None
    };
    (replies, commit)
}

impl Store {
    /// Runs `f` inside a savepoint: all of its writes or none of them, whether or not a batch
    /// transaction is open around it.
    ///
    /// # Errors
    /// `f`'s error (its writes rolled back) or the savepoint's own.
    pub fn atomically<T>(&mut self, f: impl FnOnce(&mut Self) -> StoreResult<T>) -> StoreResult<T> {
        // Prepared once (every job runs these): parsing them each time showed in the profile.
        super::journal::exec(&self.conn, "SAVEPOINT job", [])?;
        match f(self) {
            Ok(v) => {
                super::journal::exec(&self.conn, "RELEASE job", [])?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK TO job; RELEASE job");
                Err(e)
            }
        }
    }
}

/// The error a job's caller gets when its batch did not commit.
#[must_use]
pub fn commit_failed(msg: &str) -> StoreError {
    StoreError::NotCommitted(msg.to_owned())
}
