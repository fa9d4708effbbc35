//! The notifier: every action of the daemon arrives here as an [`Event`], is logged as a structured
//! tracing event and appended to the journal's events log. Telegram becomes another sink of it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::{Actor, Addr, Context, Handler, Message, Recipient};
use tracing::{debug, error, info, warn};

use crate::actors::store::{AddEvent, StoreActor};
use crate::metrics::Metrics;

mod burst;
mod event;
mod text;

pub use burst::Notifier;
pub use event::Event;
pub use text::short_token;

/// Which per-fill detail events (a fill detected, a copy sized) anyone reads: the notifier's debug
/// log, or a Telegram set to report them (both off by default). Each one sent costs the actors'
/// thread and the report thread work on every fill (BENCHMARKS.md, seventh round), so those nobody
/// reads are not sent. Settled at start: neither the log filter nor Telegram's levels
/// change while the daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Details {
    /// Send [`Event::FillDetected`].
    pub fill_detected: bool,
    /// Send [`Event::Sized`].
    pub sized: bool,
}

impl Details {
    /// Every detail event (for a caller that does not decide).
    pub const ALL: Self = Self { fill_detected: true, sized: true };

    /// What is read, given whether the notifier's debug lines are logged and the levels of the
    /// Telegram that is configured, if any.
    #[must_use]
    pub fn wanted(debug_logged: bool, telegram: Option<&crate::config::settings::TelegramSettings>) -> Self {
        let reported =
            |kind: &str| telegram.is_some_and(|t| t.level(kind) != crate::config::settings::NotifyLevel::Off);
        Self { fill_detected: debug_logged || reported("fill_detected"), sized: debug_logged || reported("sized") }
    }

    /// Whether the log filter keeps the notifier's debug lines (where the detail events are logged).
    #[must_use]
    pub fn debug_logged() -> bool {
        tracing::enabled!(target: "polycopy::actors::notifier", tracing::Level::DEBUG)
    }
}

/// The report thread's side: logs and journals every event, counts it, and hands it to every sink
/// (Telegram). Events arrive from the [`Notifier`] in bursts.
#[derive(Debug)]
pub struct ReportWriter {
    /// Ends the daemon if this actor dies of a panic (see [`crate::actors::vital`]).
    _vital: crate::actors::vital::Vital,
    store: Addr<StoreActor>,
    metrics: Arc<Metrics>,
    sinks: Vec<Recipient<Event>>,
    /// Events reported before the sinks were settled (Telegram answers its first request seconds
    /// into the start, while a stop file, a refused wallets.json or exits no longer copied are
    /// found at once): handed to the sinks once they are, so none is only logged. `None` once
    /// settled.
    early: Option<Vec<Event>>,
}

/// Events kept for the sinks before they are settled, at most: routine ones beyond that are
/// dropped (a backfill at start reports thousands), alerts are kept up to twice as many.
const EARLY_MAX: usize = 1_000;

impl ReportWriter {
    /// A report writer journaling into `store` and counting into `metrics`.
    #[must_use]
    pub const fn new(store: Addr<StoreActor>, metrics: Arc<Metrics>) -> Self {
        Self {
            _vital: crate::actors::vital::Vital::new("the report writer"),
            store,
            metrics,
            sinks: Vec::new(),
            early: Some(Vec::new()),
        }
    }

    /// Keeps `ev` for the sinks not settled yet.
    fn keep_early(&mut self, ev: &Event) {
        let Some(early) = &mut self.early else { return };
        let routine = matches!(ev, Event::Executed { .. } | Event::Rejected { .. });
        if early.len() < EARLY_MAX || (!routine && early.len() < 2 * EARLY_MAX) {
            early.push(ev.clone());
        }
    }
}

/// The sinks are settled: this one (Telegram, when it started) receives every event from now on,
/// and those reported since the start first. Sent once, with `None` when there is no sink.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AddSink(pub Option<Recipient<Event>>);

impl Handler<AddSink> for ReportWriter {
    type Result = ();

    fn handle(&mut self, m: AddSink, _: &mut Context<Self>) {
        if let Some(sink) = m.0 {
            self.sinks.push(sink);
        }
        for ev in self.early.take().unwrap_or_default() {
            for sink in &self.sinks {
                sink.do_send(ev.clone());
            }
        }
    }
}

/// Replies once every event sent before it was handled (used to flush at shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Flushed;

impl Handler<Flushed> for ReportWriter {
    type Result = ();

    fn handle(&mut self, _: Flushed, _: &mut Context<Self>) {}
}

impl Actor for ReportWriter {
    type Context = Context<Self>;
}

/// Events in the order they were sent, handed to the report thread at once.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Burst(pub Vec<Event>);

impl Handler<Burst> for ReportWriter {
    type Result = ();

    fn handle(&mut self, burst: Burst, _: &mut Context<Self>) {
        for ev in burst.0 {
            if self.early.is_some() && !matches!(ev, Event::FillDetected { .. } | Event::Sized { .. }) {
                self.keep_early(&ev);
            }
            self.report(ev);
        }
    }
}

impl ReportWriter {
    /// Logs the event with structured fields, appends it to the events log and hands it on.
    fn report(&self, ev: Event) {
        let kind = ev.kind();
        // A detected fill and its sizing are journaled (fills, intents), and the fill's outcome gets
        // an info line of its own that names the target's trade (copied, or not copied and why):
        // these two lines are for debugging, and are not even formatted otherwise. A backfill
        // detects and sizes thousands a second, and journald drops what passes its rate limit.
        if let Event::FillDetected { .. } | Event::Sized { .. } = ev {
            debug!(event = kind, "{}", ev.text());
        } else {
            self.log_and_journal(&ev);
        }
        if let Some((last, rest)) = self.sinks.split_last() {
            for sink in rest {
                sink.do_send(ev.clone());
            }
            last.do_send(ev);
        }
    }
}

impl ReportWriter {
    /// Counts the event for `/metrics`, logs it at its level, and appends it to the events log
    /// unless it has a journal row of its own.
    fn log_and_journal(&self, ev: &Event) {
        let kind = ev.kind();
        // Text an operator typed (a halt reason stored by a CLI that could not read the secrets)
        // is cleaned here as well as on its way to Telegram. An executed copy's text is ours only.
        let text =
            if matches!(ev, Event::Executed { .. }) { ev.text() } else { crate::config::env::redact(&ev.text()) };
        match ev {
            Event::Executed { latency_ms, .. } => {
                self.metrics.executed.fetch_add(1, Ordering::Relaxed);
                self.metrics.observe_latency(*latency_ms);
            }
            Event::Rejected { reason, .. } => self.metrics.rejected(reason.code()),
            Event::Warning { code, .. } => self.metrics.warning(code),
            Event::Reorg { .. } => {
                self.metrics.reorgs.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        match ev {
            Event::BreakerTripped(_)
            | Event::Error { .. }
            | Event::ReorgedAfterCopy { .. }
            | Event::WalletsRejected(_) => {
                error!(event = kind, "{text}");
            }
            Event::Warning { code, .. } => warn!(event = kind, code, "{text}"),
            Event::Rejected { reason, .. } => warn!(event = kind, reason = reason.code(), "{text}"),
            Event::Executed { latency_ms, pipeline_us, .. } => info!(event = kind, latency_ms, pipeline_us, "{text}"),
            _ => info!(event = kind, "{text}"),
        }
        // An executed copy has the journal's own row (executions): not written twice, one journal
        // job fewer per copy.
        if !matches!(ev, Event::Executed { .. }) {
            self.store.do_send(AddEvent { kind, message: text });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::{NotifyLevel, Settings, SettingsSources};

    #[test]
    fn detail_events_are_sent_only_when_someone_reads_them() {
        let defaults = Settings::load(&SettingsSources::default()).unwrap().telegram;
        let mut detected = defaults.clone();
        detected.notify.insert("fill_detected".into(), NotifyLevel::Silent);
        let mut sized = defaults.clone();
        sized.notify.insert("sized".into(), NotifyLevel::On);
        let none = Details { fill_detected: false, sized: false };
        let cases = [
            (false, None, none),
            (false, Some(&defaults), none),
            (true, None, Details::ALL),
            (true, Some(&defaults), Details::ALL),
            (false, Some(&detected), Details { fill_detected: true, sized: false }),
            (false, Some(&sized), Details { fill_detected: false, sized: true }),
        ];
        for (debug, telegram, want) in cases {
            let got = Details::wanted(debug, telegram);
            assert_eq!(got, want, "debug {debug}, telegram {:?}", telegram.map(|t| &t.notify));
        }
    }
}
