//! Hands a batch of fills into the copy pipeline in widening slices, so that the first copies are
//! journaled while the later fills are still being sized.
//!
//! Every actor here runs on one single-threaded runtime, whose scheduler is first in, first out.
//! A batch handed on at once therefore moves breadth-first: every fill passes its watcher, then
//! every fill the copier, then every fill the risk supervisor, and only then does the first copy
//! reach the journal's writer thread. The writer (the other core) sits idle until then, and the
//! first copy of a batch waits for all of it. Handing on one fill, then two, four and so on up to
//! [`MAX_SLICE`], with a yield between slices, lets each slice reach the writer before the next
//! one starts: the writer works beside the actors, and a short batch's copies come out one by one.
//! The yield defers this task until every task that is ready has run (tokio's `yield_now`), so a
//! slice has gone as far as it can before the next one enters.
//!
//! Order is kept: items are delivered in the order they were pushed, across batches. With a gate
//! ([`Admission`]), each item waits for a slot before it is delivered, and the push's future for
//! all of its items: the feed's back-pressure reaches back from the copier.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use tokio::sync::oneshot;

use crate::actors::copier::admission::{Admission, Admitted};

/// The widest slice: large enough that a backfill's yields cost nothing measurable, small enough
/// that the writer gets work every millisecond or so.
pub const MAX_SLICE: usize = 64;

/// The size of each slice in turn, from one up to [`MAX_SLICE`].
#[must_use]
pub fn next_slice(slice: usize) -> usize {
    (slice * 2).clamp(1, MAX_SLICE)
}

/// What is waiting to be delivered, and whether a task is delivering it.
struct Queue<T> {
    items: VecDeque<(T, Option<oneshot::Sender<()>>)>,
    draining: bool,
    /// Told when the queue is next empty.
    idle: Vec<oneshot::Sender<()>>,
}

/// An ordered hand-off of items to `deliver`, in widening slices (see the module's doc). Lives on
/// the actors' thread (not `Send`).
pub struct Handoff<T> {
    queue: Rc<RefCell<Queue<T>>>,
    deliver: Rc<dyn Fn(T, Option<Admitted>)>,
    gate: Option<Admission>,
}

impl<T> std::fmt::Debug for Handoff<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff").field("queued", &self.queue.borrow().items.len()).finish()
    }
}

impl<T: 'static> Handoff<T> {
    /// A hand-off that gives each item to `deliver`, with its slot when `gate` is given (each item
    /// waits for one).
    pub fn new(deliver: impl Fn(T, Option<Admitted>) + 'static, gate: Option<Admission>) -> Self {
        Self {
            queue: Rc::new(RefCell::new(Queue { items: VecDeque::new(), draining: false, idle: Vec::new() })),
            deliver: Rc::new(deliver),
            gate,
        }
    }

    /// Completes once everything queued so far was delivered (at once when nothing is).
    pub fn drained(&self) -> impl std::future::Future<Output = ()> + 'static {
        let (tx, rx) = oneshot::channel();
        {
            let mut q = self.queue.borrow_mut();
            if q.draining {
                q.idle.push(tx);
            }
        }
        async move {
            let _ = rx.await;
        }
    }

    /// Queues `items` behind everything queued before; the returned future completes once the
    /// last of them was delivered (at once for none). Must be called on a `LocalSet` (actix's
    /// arbiters are), which runs the delivering task.
    pub fn push(&self, items: Vec<T>) -> impl std::future::Future<Output = ()> + 'static {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = self.queue.borrow_mut();
            let n = items.len();
            q.items.extend(items.into_iter().map(|i| (i, None)));
            if n > 0
                && let Some(last) = q.items.back_mut()
            {
                last.1 = Some(tx);
            }
            let start = !q.draining && !q.items.is_empty();
            q.draining |= start;
            start
        };
        if start {
            tokio::task::spawn_local(drain(self.queue.clone(), self.deliver.clone(), self.gate.clone()));
        }
        // Dropped unsent (no items, or the task gone at shutdown): nothing left to wait for.
        async move {
            let _ = rx.await;
        }
    }
}

/// Marks the queue as not draining when the delivering task ends however it ends (dropped at
/// shutdown, or a delivery that panicked): the next push then starts a new one, instead of queueing
/// behind a task that is gone, and its sender waiting forever.
struct Draining<T>(Rc<RefCell<Queue<T>>>);

impl<T> Drop for Draining<T> {
    fn drop(&mut self) {
        if let Ok(mut q) = self.0.try_borrow_mut() {
            q.draining = false;
        }
    }
}

/// Delivers the queue in widening slices, yielding between them, until it is empty; each item
/// after a slot of `gate` is free, when there is one.
async fn drain<T>(queue: Rc<RefCell<Queue<T>>>, deliver: Rc<dyn Fn(T, Option<Admitted>)>, gate: Option<Admission>) {
    let _draining = Draining(queue.clone());
    let mut slice = 1;
    loop {
        let taken: Vec<_> = {
            let mut q = queue.borrow_mut();
            let n = slice.min(q.items.len());
            if n == 0 {
                q.draining = false;
                for tx in q.idle.drain(..) {
                    let _ = tx.send(());
                }
                return;
            }
            q.items.drain(..n).collect()
        };
        for (item, done) in taken {
            let slot = match &gate {
                Some(g) => Some(g.admit().await),
                None => None,
            };
            deliver(item, slot);
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
        slice = next_slice(slice);
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_widen_from_one_to_the_cap() {
        let cases = [(0, 1), (1, 2), (2, 4), (16, 32), (32, 64), (64, 64), (100, 64)];
        for (slice, next) in cases {
            assert_eq!(next_slice(slice), next, "after {slice}");
        }
    }

    /// Each delivered item starts a two-stage chain of tasks (as a fill passes its watcher and then
    /// the copier); the log shows the order things ran in.
    fn chained(log: &Rc<RefCell<Vec<String>>>) -> Handoff<u32> {
        let log = log.clone();
        Handoff::new(
            move |i: u32, _| {
                log.borrow_mut().push(format!("in {i}"));
                let log = log.clone();
                tokio::task::spawn_local(async move {
                    log.borrow_mut().push(format!("a {i}"));
                    let log2 = log.clone();
                    tokio::task::spawn_local(async move { log2.borrow_mut().push(format!("b {i}")) });
                });
            },
            None,
        )
    }

    fn run_local(f: impl std::future::Future<Output = ()> + 'static) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f);
    }

    #[test]
    fn the_first_item_goes_through_every_stage_before_the_second_enters() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let h = chained(&log);
        let l = log.clone();
        run_local(async move {
            h.push((1..=4).collect()).await;
            // Let the last slice's chains finish.
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            let got = l.borrow().clone();
            let pos = |s: &str| got.iter().position(|x| x == s).unwrap();
            assert!(pos("b 1") < pos("in 2"), "{got:?}");
            assert_eq!(got.iter().filter(|x| x.starts_with("b ")).count(), 4, "{got:?}");
        });
    }

    #[test]
    fn a_delivery_that_panics_does_not_stop_later_batches() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let h = Handoff::new(
            move |i: u32, _| {
                assert!(i != 2, "this delivery fails");
                l.borrow_mut().push(i);
            },
            None,
        );
        run_local(async move {
            // Answered although its task died: the senders of what it held are dropped.
            h.push(vec![1, 2, 3]).await;
            // Without the guard this would wait forever: bounded, so the test fails instead.
            tokio::time::timeout(std::time::Duration::from_secs(5), h.push(vec![4]))
                .await
                .expect("a later batch is still delivered");
            assert_eq!(*log.borrow(), vec![1, 4]);
        });
    }

    /// A gate of two slots: the third item waits until a delivered one frees its slot, and the
    /// push's future until the last item is delivered; order holds.
    #[test]
    fn a_gated_hand_off_delivers_no_more_than_its_slots_until_one_is_freed() {
        let held = Rc::new(RefCell::new(Vec::new()));
        let h2 = held.clone();
        let h = Handoff::new(move |i: u32, slot| h2.borrow_mut().push((i, slot)), Some(Admission::new(2, None)));
        let l = held.clone();
        run_local(async move {
            let mut all = Box::pin(h.push((1..=4).collect()));
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
            assert!(futures_util::FutureExt::now_or_never(&mut all).is_none(), "two items wait for a slot");
            let delivered = || l.borrow().iter().map(|(i, _)| *i).collect::<Vec<_>>();
            assert_eq!(delivered(), vec![1, 2]);
            // The first copy is decided: its slot goes to the third item, not the fourth.
            l.borrow_mut()[0].1 = None;
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
            assert_eq!(delivered(), vec![1, 2, 3]);
            l.borrow_mut()[1].1 = None;
            all.await;
            assert_eq!(delivered(), vec![1, 2, 3, 4]);
        });
    }

    #[test]
    fn order_holds_across_batches_and_each_batch_waits_for_its_own_last_item() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let h = chained(&log);
        let l = log.clone();
        run_local(async move {
            let first = h.push((1..=10).collect());
            let second = h.push(vec![11, 12]);
            let empty = h.push(Vec::new());
            let all = h.drained();
            empty.await;
            second.await;
            all.await;
            let delivered: Vec<String> = l.borrow().iter().filter(|x| x.starts_with("in ")).cloned().collect();
            let want: Vec<String> = (1..=12).map(|i| format!("in {i}")).collect();
            assert_eq!(delivered, want);
            first.await;
        });
    }
}
