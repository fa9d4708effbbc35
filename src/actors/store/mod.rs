//! The store actor: the daemon's only way into the journal. Its jobs run on the journal's writer
//! thread (rusqlite is synchronous), which commits everything waiting in one transaction (group
//! commit, [`crate::store::batch`]); each sender gets its answer once its write is durable.

use std::sync::mpsc::Sender;

use actix::{Actor, Context};

use crate::store::batch::{Job, Reply, commit_failed, spawn_writer};
use crate::store::{Store, StoreError, StoreResult};

/// Hands journal work to the writer thread.
#[derive(Debug)]
pub struct StoreActor {
    /// Ends the daemon if this actor dies of a panic (see [`crate::actors::vital`]).
    _vital: crate::actors::vital::Vital,
    writer: Writer,
}

impl StoreActor {
    /// Starts the writer thread that owns `store`.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn new(store: Store) -> std::io::Result<Self> {
        Ok(Self {
            _vital: crate::actors::vital::Vital::new("the journal's actor"),
            writer: Writer { jobs: spawn_writer(store)? },
        })
    }

    /// A way to the same writer that does not pass through this actor's mailbox.
    #[must_use]
    pub fn writer(&self) -> Writer {
        self.writer.clone()
    }
}

/// One journal call, run atomically on the writer thread: every store message is one.
pub trait Request: Send + 'static {
    /// Its answer.
    type Out: Send + 'static;
    /// Named in the log when it fails.
    const NAME: &'static str;
    /// Runs it against the journal.
    ///
    /// # Errors
    /// The journal's.
    fn run(self, store: &mut Store) -> StoreResult<Self::Out>;
    /// Given a successful answer and the moment its commit ended (the start or the end of a copy's
    /// measured latency; most answers carry no time and ignore it).
    fn stamp(out: &mut Self::Out, at: std::time::Instant);
}

/// Queues requests straight on the journal's writer thread, beside the store actor. The copy path
/// uses it: the actor's mailbox adds a hop each way (its context polls the answer too), and at a
/// poll's burst of fills each hop is taken by every fill before the next.
#[derive(Debug, Clone)]
pub struct Writer {
    jobs: Sender<Job>,
}

impl Writer {
    /// Queues `r`; its answer comes once the batch it ran in committed.
    pub fn ask<R: Request>(&self, r: R) -> impl std::future::Future<Output = StoreResult<R::Out>> + 'static {
        let name = R::NAME;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |store: &mut Store| {
            let result = store.atomically(move |s| r.run(s));
            Box::new(move |commit: Option<&str>, committed: std::time::Instant| {
                let mut result = match commit {
                    Some(e) => Err(commit_failed(e)),
                    None => result,
                };
                if let Ok(v) = &mut result {
                    R::stamp(v, committed);
                }
                // Logged here once, so an error is never lost when the sender used do_send.
                if let Err(e) = &result {
                    tracing::error!(message = name, cause = %e, "journal operation failed");
                }
                let _ = tx.send(result);
            }) as Reply
        });
        let sent = self.jobs.send(job).is_ok();
        async move {
            if !sent {
                tracing::error!(message = name, "journal operation failed: the writer stopped");
                return Err(StoreError::WriterGone);
            }
            rx.await.unwrap_or(Err(StoreError::WriterGone))
        }
    }
}

impl Actor for StoreActor {
    type Context = Context<Self>;
}

/// Implements a store message (plain data declared beside it): its reply type and its handler,
/// which is one journal call run atomically on the writer thread. `stamped by f`: `f` is given the
/// answer and the moment its commit ended.
macro_rules! store_handler {
    ($name:ident -> $out:ty, |$store:ident, $msg:ident| $body:expr) => {
        store_handler!($name -> $out, stamped by |_, _| {}, |$store, $msg| $body);
    };
    ($name:ident -> $out:ty, stamped by $stamp:expr, |$store:ident, $msg:ident| $body:expr) => {
        impl Message for $name {
            type Result = StoreResult<$out>;
        }

        impl Request for $name {
            type Out = $out;
            const NAME: &'static str = stringify!($name);
            fn run(self, $store: &mut Store) -> StoreResult<$out> {
                let $msg = self;
                $body
            }
            fn stamp(out: &mut $out, at: std::time::Instant) {
                let stamp: fn(&mut $out, std::time::Instant) = $stamp;
                stamp(out, at);
            }
        }

        impl Handler<$name> for StoreActor {
            type Result = ResponseFuture<StoreResult<$out>>;
            fn handle(&mut self, m: $name, _: &mut Context<Self>) -> Self::Result {
                Box::pin(self.writer.ask(m))
            }
        }
    };
}

mod chain;
mod operations;
mod trading;

pub use chain::*;
pub use operations::*;
pub use trading::*;
