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
/// Answers are delivered by a task on the runtime this is called from (the daemon's), or by the
/// writer itself when there is none or that runtime has stopped.
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
        let commit = self.commit.as_deref();
        for r in self.replies {
            // One reply that panics must not cost the others (or, on the runtime, every later
            // batch's) their answers.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r(commit, self.at))).is_err() {
                tracing::error!(
                    "a journal answer panicked; its caller is told the writer is gone, whether or not its write committed"
                );
            }
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
            // The task is gone only when its runtime stopped: the writer answers itself, so that
            // a caller elsewhere still hears back and a failed write is still logged.
            Self::Runtime(tx) => {
                if let Err(unsent) = tx.send(a) {
                    unsent.0.deliver();
                }
            }
            Self::Writer => a.deliver(),
        }
    }
}

/// `r`, told that its write was rolled back whatever the batch's commit says.
fn rolled_back(r: Reply) -> Reply {
    Box::new(move |_: Option<&str>, at: Instant| r(Some("the journal could not commit this write (rolled back)"), at))
}

/// Runs a batch in one transaction; returns each job's reply and the commit's error, if any.
fn run_batch(store: &mut Store, batch: Vec<Job>) -> (Vec<Reply>, Option<String>) {
    // A transaction left open (a failed COMMIT whose ROLLBACK failed too) would swallow every
    // later write while its callers are told it committed: close it first.
    if !store.conn.is_autocommit() {
        let _ = store.conn.execute_batch("ROLLBACK");
    }
    // Without the outer transaction (BEGIN refused: busy, disk) each job still commits on its own.
    // Both prepared once: every batch runs them.
    let mut outer = super::journal::exec(&store.conn, "BEGIN IMMEDIATE", []).is_ok();
    // Still inside one: nothing of this batch could commit; it is run, rolled back and refused.
    let mut stuck = !outer && !store.conn.is_autocommit();
    let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
    for job in batch {
        // A job that panics must not take the writer (and every later write) with it, nor leave
        // what it wrote inside its savepoint to commit with the batch.
        let reply = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(store))) {
            Ok(r) => Some(r),
            Err(_) => {
                let _ = store.conn.execute_batch("ROLLBACK TO job; RELEASE job");
                tracing::error!("a journal job panicked; its caller gets no answer");
                None
            }
        };
        // SQLite rolled the batch's transaction back by itself (a full disk, an I/O error): what
        // the jobs so far wrote is gone, and they are told so; the rest run in a new transaction,
        // never one by one while told they share the batch's commit.
        if outer && store.conn.is_autocommit() {
            replies = replies.into_iter().chain(reply).map(rolled_back).collect();
            tracing::error!("the journal rolled a batch back by itself; its writes are refused to their callers");
            outer = super::journal::exec(&store.conn, "BEGIN IMMEDIATE", []).is_ok();
            stuck = !outer && !store.conn.is_autocommit();
            continue;
        }
        // Each job commits on its own here: one whose commit failed (its savepoint's RELEASE) left
        // its transaction open, and every later job would run inside it, be told it committed,
        // and be rolled back with it. It is rolled back now, and its caller told so.
        let left_open = !outer && !stuck && !store.conn.is_autocommit();
        if left_open {
            let _ = store.conn.execute_batch("ROLLBACK");
        }
        match reply {
            Some(r) if left_open => replies.push(rolled_back(r)),
            Some(r) => replies.push(r),
            None => {}
        }
    }
    let commit = if outer {
        super::journal::exec(&store.conn, "COMMIT", []).err().map(|e| {
            let _ = store.conn.execute_batch("ROLLBACK");
            format!("the journal could not commit: {e}")
        })
    } else if stuck {
        let _ = store.conn.execute_batch("ROLLBACK");
        Some("the journal is stuck in a transaction it cannot close".to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A job that writes nothing and answers `n` (or panics in its answer when `panics`) with the
    /// moment its commit ended.
    fn job(n: u32, panics: bool, tx: std::sync::mpsc::Sender<(u32, Instant)>) -> Job {
        Box::new(move |_: &mut Store| {
            Box::new(move |_: Option<&str>, at: Instant| {
                assert!(!panics, "this answer panics");
                let _ = tx.send((n, at));
            }) as Reply
        })
    }

    fn answers_of(jobs: &Sender<Job>, specs: &[(u32, bool)]) -> Vec<(u32, Instant)> {
        let (tx, rx) = std::sync::mpsc::channel();
        for &(n, panics) in specs {
            jobs.send(job(n, panics, tx.clone())).unwrap();
        }
        drop(tx);
        let want = specs.iter().filter(|s| !s.1).count();
        (0..want).map(|_| rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap()).collect()
    }

    /// Where the writer is started.
    #[derive(Debug, Clone, Copy)]
    enum Started {
        /// Outside any runtime: the writer answers itself.
        Alone,
        /// On a runtime with worker threads.
        MultiThread,
        /// On a single-threaded runtime, as the daemon's: its task answers while it runs.
        CurrentThread,
    }

    /// The answers to `specs` and then to one more batch, from a writer started `how`.
    fn answers_when(how: Started, specs: &'static [(u32, bool)]) -> (Vec<(u32, Instant)>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("j.db")).unwrap();
        let both = move |jobs: Sender<Job>| (answers_of(&jobs, specs), answers_of(&jobs, &[(9, false)]).len());
        match how {
            Started::Alone => both(spawn_writer(store).unwrap()),
            Started::MultiThread => {
                let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
                let jobs = rt.block_on(async { spawn_writer(store).unwrap() });
                both(jobs)
            }
            Started::CurrentThread => {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                // The answers are awaited off the runtime's thread while it runs.
                rt.block_on(async {
                    let jobs = spawn_writer(store).unwrap();
                    tokio::task::spawn_blocking(move || both(jobs)).await.unwrap()
                })
            }
        }
    }

    #[test]
    fn answers_arrive_in_order_past_a_panicking_one_wherever_the_writer_started() {
        // (where the writer started, the jobs and whether each one's answer panics)
        let cases: [(Started, &'static [(u32, bool)]); 6] = [
            (Started::CurrentThread, &[(1, false), (2, false), (3, false)]),
            (Started::CurrentThread, &[(1, false), (2, true), (3, false)]),
            (Started::MultiThread, &[(1, false), (2, true), (3, false)]),
            (Started::Alone, &[(1, false), (2, false)]),
            (Started::Alone, &[(1, true), (2, false)]),
            (Started::MultiThread, &[(1, false)]),
        ];
        for (how, specs) in cases {
            let (got, later) = answers_when(how, specs);
            let order: Vec<u32> = got.iter().map(|a| a.0).collect();
            let want: Vec<u32> = specs.iter().filter(|s| !s.1).map(|s| s.0).collect();
            assert_eq!(order, want, "{how:?}: {specs:?}");
            assert_eq!(later, 1, "{how:?}: a later batch is answered");
        }
    }

    #[test]
    fn a_writer_whose_runtime_stopped_answers_itself() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("j.db")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let jobs = rt.block_on(async { spawn_writer(store).unwrap() });
        drop(rt);
        assert_eq!(answers_of(&jobs, &[(1, false), (2, false)]).len(), 2);
    }

    #[test]
    fn a_batch_is_stamped_with_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("j.db")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let batch: Vec<Job> = (0..5).map(|n| job(n, false, tx.clone())).collect();
        let (replies, commit) = run_batch(&mut store, batch);
        assert!(commit.is_none());
        let at = Instant::now();
        Answered { replies, commit, at }.deliver();
        let stamps: Vec<Instant> = rx.try_iter().map(|a| a.1).collect();
        assert_eq!(stamps, vec![at; 5]);
    }

    /// Every value in the probe table, read by another connection (what is committed).
    fn committed(path: &std::path::Path) -> Vec<i64> {
        let other = rusqlite::Connection::open(path).unwrap();
        let mut st = other.prepare("SELECT x FROM probe ORDER BY x").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn without_a_batch_transaction_a_job_that_could_not_commit_takes_no_later_job_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let mut store = Store::open(&path).unwrap();
        store.conn.execute_batch("CREATE TABLE probe (x INTEGER)").unwrap();
        store.conn.busy_timeout(std::time::Duration::ZERO).unwrap();
        // Another process holds the write lock: the batch's BEGIN IMMEDIATE is refused, so each
        // job commits on its own.
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<(u32, bool)>();
        let answer = |n: u32, tx: std::sync::mpsc::Sender<(u32, bool)>| {
            Box::new(move |commit: Option<&str>, _: Instant| {
                let _ = tx.send((n, commit.is_none()));
            }) as Reply
        };
        let tx1 = tx.clone();
        // Its own commit failed: its savepoint is left open (as a RELEASE refused by the disk
        // leaves it), then the other process lets go of the lock.
        let failed: Job = Box::new(move |s: &mut Store| {
            s.conn.execute_batch("SAVEPOINT job").unwrap();
            other.execute_batch("COMMIT").unwrap();
            answer(1, tx1)
        });
        let later: Job = Box::new(move |s: &mut Store| {
            s.atomically(|s| Ok(s.conn.execute("INSERT INTO probe VALUES (2)", [])?)).unwrap();
            answer(2, tx)
        });
        let (replies, commit) = run_batch(&mut store, vec![failed, later]);
        Answered { replies, commit, at: Instant::now() }.deliver();
        let answers: Vec<(u32, bool)> = rx.try_iter().collect();
        assert_eq!(answers, vec![(1, false), (2, true)], "only the later job is told it committed");
        assert!(store.conn.is_autocommit());
        assert_eq!(committed(&path), vec![2], "and it did");
    }

    /// A job answering `n` with whether the batch told it its write committed.
    fn told(n: u32, tx: std::sync::mpsc::Sender<(u32, bool)>) -> Reply {
        Box::new(move |commit: Option<&str>, _: Instant| {
            let _ = tx.send((n, commit.is_none()));
        })
    }

    /// A job that inserts `x` into the probe table, in its savepoint, then runs `after`.
    fn insert(n: u32, x: i64, after: &'static str, tx: std::sync::mpsc::Sender<(u32, bool)>) -> Job {
        Box::new(move |s: &mut Store| {
            s.atomically(|s| Ok(s.conn.execute(&format!("INSERT INTO probe VALUES ({x})"), [])?)).unwrap();
            if !after.is_empty() {
                s.conn.execute_batch(after).unwrap();
            }
            told(n, tx)
        })
    }

    #[test]
    fn a_batch_sqlite_rolled_back_by_itself_is_refused_and_the_rest_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let mut store = Store::open(&path).unwrap();
        store.conn.execute_batch("CREATE TABLE probe (x INTEGER)").unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<(u32, bool)>();
        // The second job's write ends the batch's transaction as SQLite does after SQLITE_FULL.
        let batch = vec![insert(1, 1, "", tx.clone()), insert(2, 2, "ROLLBACK", tx.clone()), insert(3, 3, "", tx)];
        let (replies, commit) = run_batch(&mut store, batch);
        assert_eq!(commit, None);
        Answered { replies, commit, at: Instant::now() }.deliver();
        let answers: Vec<(u32, bool)> = rx.try_iter().collect();
        assert_eq!(answers, vec![(1, false), (2, false), (3, true)]);
        assert_eq!(committed(&path), vec![3], "what it was told");
        assert!(store.conn.is_autocommit());
    }

    #[test]
    fn a_job_that_panics_inside_its_savepoint_commits_nothing_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let mut store = Store::open(&path).unwrap();
        store.conn.execute_batch("CREATE TABLE probe (x INTEGER)").unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<(u32, bool)>();
        let panics: Job = Box::new(|s: &mut Store| {
            let _ = s.atomically(|s| -> StoreResult<()> {
                s.conn.execute("INSERT INTO probe VALUES (9)", [])?;
                panic!("a bug in the middle of a write")
            });
            unreachable!()
        });
        let (replies, commit) = run_batch(&mut store, vec![panics, insert(2, 2, "", tx)]);
        Answered { replies, commit, at: Instant::now() }.deliver();
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![(2, true)]);
        assert_eq!(committed(&path), vec![2], "none of the panicked job's write");
    }

    #[test]
    fn a_transaction_left_open_is_closed_before_the_next_batch_which_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let mut store = Store::open(&path).unwrap();
        store.conn.execute_batch("CREATE TABLE probe (x INTEGER)").unwrap();
        // Left open, as after a COMMIT and a ROLLBACK that both failed: its write was refused.
        store.conn.execute_batch("BEGIN; INSERT INTO probe VALUES (0)").unwrap();
        let write: Job = Box::new(|s: &mut Store| {
            let done = s.atomically(|s| Ok(s.conn.execute("INSERT INTO probe VALUES (1)", [])?));
            Box::new(move |_: Option<&str>, _: Instant| drop(done)) as Reply
        });
        let (_, commit) = run_batch(&mut store, vec![write]);
        assert_eq!(commit, None);
        assert!(store.conn.is_autocommit(), "no transaction is left open");
        // Another connection sees only the batch's write.
        let other = rusqlite::Connection::open(&path).unwrap();
        let rows: Vec<i64> = other
            .prepare("SELECT x FROM probe")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows, vec![1]);
    }
}
