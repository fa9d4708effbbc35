//! The notifier's front, on the actors' thread: events are gathered into bursts and handed to the
//! report thread ([`ReportWriter`]) together, in the order they were sent.
//!
//! Each event sent across threads on its own woke the report thread once per copy, in the very
//! millisecond the journal's writer needed the other core for the same copies (BENCHMARKS.md,
//! seventh and eighth rounds). A burst waits about [`BURST_WINDOW`] after its first event (the
//! timer's millisecond, more when the actors' thread is busy), which no reader of a report
//! notices, and is handed on at once when it reaches [`BURST_MAX`], so a backfill's reports keep
//! flowing beside the copies and the buffer stays small. Events still waiting when the notifier
//! stops are handed on as it goes.

use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context, Handler, Recipient, ResponseFuture};

#[cfg(doc)]
use super::ReportWriter;
use super::{AddSink, Burst, Event, Flushed};

/// How long a burst's first event waits for the rest: longer than one poll's copies take.
pub const BURST_WINDOW: Duration = Duration::from_millis(2);

/// A burst this large is handed on without waiting.
pub const BURST_MAX: usize = 256;

/// Every action of the daemon arrives here as an [`Event`] and is reported by the
/// [`ReportWriter`] on the report thread: logged, journaled, counted and sent to Telegram.
#[derive(Debug)]
pub struct Notifier {
    /// Ends the daemon if this actor dies of a panic (see [`crate::actors::vital`]).
    _vital: crate::actors::vital::Vital,
    bursts: Recipient<Burst>,
    sinks: Recipient<AddSink>,
    flushes: Recipient<Flushed>,
    pending: Vec<Event>,
    /// A hand-on is scheduled for the pending events.
    scheduled: bool,
}

impl Notifier {
    /// A notifier handing its events to `writer` (a [`ReportWriter`], on the report thread).
    #[must_use]
    pub fn new<W>(writer: &Addr<W>) -> Self
    where
        W: Actor<Context = Context<W>> + Handler<Burst> + Handler<AddSink> + Handler<Flushed>,
    {
        Self {
            _vital: crate::actors::vital::Vital::new("the notifier"),
            bursts: writer.clone().recipient(),
            sinks: writer.clone().recipient(),
            flushes: writer.clone().recipient(),
            pending: Vec::new(),
            scheduled: false,
        }
    }

    /// Hands the pending events to the report thread.
    fn hand_on(&mut self) {
        if !self.pending.is_empty() {
            self.bursts.do_send(Burst(std::mem::take(&mut self.pending)));
        }
    }
}

impl Actor for Notifier {
    type Context = Context<Self>;
}

impl Drop for Notifier {
    /// An early return of the daemon (or its end) must not lose the last events of a burst.
    fn drop(&mut self) {
        self.hand_on();
    }
}

impl Handler<Event> for Notifier {
    type Result = ();

    fn handle(&mut self, ev: Event, ctx: &mut Context<Self>) {
        self.pending.push(ev);
        if self.pending.len() >= BURST_MAX {
            self.hand_on();
        } else if !self.scheduled {
            self.scheduled = true;
            ctx.run_later(BURST_WINDOW, |n, _| {
                n.scheduled = false;
                n.hand_on();
            });
        }
    }
}

impl Handler<AddSink> for Notifier {
    type Result = ();

    /// The events pending before it are handed on first (the writer keeps them for the sink).
    fn handle(&mut self, m: AddSink, _: &mut Context<Self>) {
        self.hand_on();
        self.sinks.do_send(m);
    }
}

impl Handler<Flushed> for Notifier {
    type Result = ResponseFuture<()>;

    /// Replies once every event sent before it was reported.
    fn handle(&mut self, m: Flushed, _: &mut Context<Self>) -> Self::Result {
        self.hand_on();
        let flushes = self.flushes.clone();
        Box::pin(async move {
            let _ = flushes.send(m).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what reaches the report thread, burst by burst.
    struct Collect(std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>);

    impl Actor for Collect {
        type Context = Context<Self>;
    }

    impl Handler<Burst> for Collect {
        type Result = ();
        fn handle(&mut self, b: Burst, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(b.0.iter().map(Event::text).collect());
        }
    }

    impl Handler<AddSink> for Collect {
        type Result = ();
        fn handle(&mut self, _: AddSink, _: &mut Context<Self>) {}
    }

    impl Handler<Flushed> for Collect {
        type Result = ();
        fn handle(&mut self, _: Flushed, _: &mut Context<Self>) {}
    }

    fn warning(i: usize) -> Event {
        Event::Warning { code: "test", message: format!("w{i}") }
    }

    #[test]
    fn bursts_keep_order_wait_briefly_and_are_bounded() {
        // (events sent in one go, the bursts wanted: their sizes)
        let cases: [(usize, &[usize]); 4] =
            [(1, &[1]), (10, &[10]), (BURST_MAX, &[BURST_MAX]), (BURST_MAX + 3, &[BURST_MAX, 3])];
        for (sent, want) in cases {
            let got = actix::System::new().block_on(async move {
                let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                let writer = Collect(seen.clone()).start();
                let n = Notifier::new(&writer).start();
                for i in 0..sent {
                    n.do_send(warning(i));
                }
                // The timer hands on the rest, without a Flushed.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                loop {
                    let bursts = seen.lock().unwrap().clone();
                    if bursts.iter().map(Vec::len).sum::<usize>() == sent || std::time::Instant::now() > deadline {
                        return bursts;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            });
            let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
            assert_eq!(sizes, want, "{sent} events");
            let texts: Vec<String> = got.concat();
            let expected: Vec<String> = (0..sent).map(|i| warning(i).text()).collect();
            assert_eq!(texts, expected, "order of {sent} events");
        }
    }

    /// A sink that records the events it receives.
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl Actor for Sink {
        type Context = Context<Self>;
    }

    impl Handler<Event> for Sink {
        type Result = ();
        fn handle(&mut self, ev: Event, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(ev.text());
        }
    }

    #[test]
    fn a_sink_receives_what_was_sent_before_and_after_it_was_added_in_order() {
        let got = actix::System::new().block_on(async {
            let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
            let dir = tempfile::tempdir().unwrap();
            let store = crate::store::Store::open(&dir.path().join("j.db")).unwrap();
            let store = crate::actors::store::StoreActor::new(store).unwrap().start();
            let n = Notifier::new(&super::super::ReportWriter::new(store, metrics).start()).start();
            let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            n.do_send(warning(0));
            n.do_send(AddSink(Some(Sink(seen.clone()).start().recipient())));
            for i in 1..4 {
                n.do_send(warning(i));
            }
            let _ = n.send(Flushed).await;
            // The sink's own mailbox: Flushed answered once the writer handed everything on.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while seen.lock().unwrap().len() < 4 && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            seen.lock().unwrap().clone()
        });
        // The warning before the sink was settled is handed to it first.
        assert_eq!(got, (0..4).map(|i| warning(i).text()).collect::<Vec<_>>());
    }

    #[test]
    fn pending_events_are_handed_on_when_the_notifier_stops() {
        let got = actix::System::new().block_on(async {
            let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let writer = Collect(seen.clone()).start();
            // Stopped with a burst not yet due (its arbiter gone, or the daemon returning early).
            let mut n = Notifier::new(&writer);
            n.pending.extend([warning(0), warning(1)]);
            drop(n);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while seen.lock().unwrap().concat().len() < 2 && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            let texts: Vec<String> = seen.lock().unwrap().concat();
            texts
        });
        assert_eq!(got, vec![warning(0).text(), warning(1).text()]);
    }

    #[test]
    fn flushed_answers_after_everything_sent_before_it_was_handed_on() {
        let got = actix::System::new().block_on(async {
            let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let n = Notifier::new(&Collect(seen.clone()).start()).start();
            for i in 0..3 {
                n.do_send(warning(i));
            }
            let _ = n.send(Flushed).await;
            let texts: Vec<String> = seen.lock().unwrap().concat();
            texts
        });
        assert_eq!(got, (0..3).map(|i| warning(i).text()).collect::<Vec<_>>());
    }
}
