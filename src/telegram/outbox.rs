//! What waits to be sent to Telegram, and in what order: alerts first and never merged, then
//! direct messages (command replies, reports), then routine events, which are merged into one digest
//! when more than one is waiting. Memory is bounded: past the capacity, routine texts are reduced to
//! counts, so a burst is summarized, never lost. Pure; the delivery loop does the I/O.

use std::collections::{BTreeMap, VecDeque};

/// How a message is treated in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Breaker, errors, alerts: first, never merged, retried until delivered.
    Alert,
    /// Command replies, reports and the outcomes of the operator's own orders: after the
    /// breaker's alerts, never merged.
    Direct,
    /// Everything else: merged into digests under a burst.
    Routine,
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Event kind (for digests and counting).
    pub kind: &'static str,
    /// The text.
    pub text: String,
    /// Deliver without sound.
    pub silent: bool,
    /// Queue treatment.
    pub class: Class,
    /// One chat, or `None` for every authorized chat.
    pub chat: Option<i64>,
    /// Inline buttons: (label, callback data).
    pub buttons: Vec<(String, String)>,
    /// A PNG to send with the text as its caption.
    pub photo: Option<Vec<u8>>,
    /// The text is Telegram HTML (escaped where it holds data).
    pub html: bool,
    /// What a digest counts of it.
    pub tally: Tally,
}

/// What a digest adds up: the USDC of a copy, the code of a refusal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// A copy's USDC.
    pub usdc: Option<crate::domain::Usdc>,
    /// A refusal's code.
    pub refusal: Option<&'static str>,
}

impl Outgoing {
    /// A text message of `class` to every authorized chat.
    #[must_use]
    pub fn text(kind: &'static str, text: String, class: Class, silent: bool) -> Self {
        Self {
            kind,
            text,
            silent,
            class,
            chat: None,
            buttons: Vec::new(),
            photo: None,
            html: false,
            tally: Tally::default(),
        }
    }
}

/// Samples a digest quotes before summarizing the rest.
const DIGEST_SAMPLES: usize = 5;
/// Alerts waiting beyond this many go as one message: 200 alerts at a group's 20 a minute would
/// hold a command's answer and a new breaker alert for ten minutes.
const ALERT_BURST: usize = 5;
/// Characters of one alert quoted in a merged message.
const SAMPLE_CHARS: usize = 300;

/// The pending messages.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    alerts: VecDeque<Outgoing>,
    direct: VecDeque<Outgoing>,
    routine: Vec<Outgoing>,
    /// Routine messages beyond the capacity, counted by kind (their text is dropped).
    overflow: BTreeMap<&'static str, u64>,
    capacity: usize,
}

/// Plural noun for a digest line.
fn noun(kind: &str) -> String {
    match kind {
        "executed" => "copies executed".into(),
        "rejected" => "not copied".into(),
        "fill_detected" => "fills detected".into(),
        "withdrawn" => "fills withdrawn by reorgs".into(),
        other => format!("{} events", other.replace('_', " ")),
    }
}

impl Outbox {
    /// An outbox holding at most `capacity` routine texts.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), ..Self::default() }
    }

    /// True when nothing waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.direct.is_empty() && self.routine.is_empty() && self.overflow.is_empty()
    }

    /// Copies of everything waiting, in the order it would go (overflow as one counted line).
    #[must_use]
    pub fn snapshot(&self) -> Vec<Outgoing> {
        let mut out: Vec<Outgoing> = self.alerts.iter().chain(&self.direct).chain(&self.routine).cloned().collect();
        if !self.overflow.is_empty() {
            let counts = self.overflow.iter().map(|(k, n)| format!("{n} {}", noun(k))).collect::<Vec<_>>().join(", ");
            out.push(Outgoing::text("digest", format!("{counts} (texts not kept)"), Class::Routine, true));
        }
        out
    }

    /// Queues a message.
    pub fn push(&mut self, m: Outgoing) {
        match m.class {
            Class::Alert => self.alerts.push_back(m),
            Class::Direct => self.direct.push_back(m),
            Class::Routine if self.routine.len() < self.capacity => self.routine.push(m),
            Class::Routine => *self.overflow.entry(m.kind).or_insert(0) += 1,
        }
    }

    /// The next message to send: an alert, else a direct message, else the routine ones (one as is,
    /// several as a digest).
    pub fn pop(&mut self) -> Option<Outgoing> {
        self.pop_counted().map(|(m, _)| m)
    }

    /// Like [`Outbox::pop`], with how many queued messages the result stands for (a digest: all it
    /// merged), so the sender can tell when everything queued was handled. The breaker's own
    /// alerts go first (the trading state now matters most), then answers to commands, then the
    /// other alerts (merged when more than five wait), then routine messages.
    pub fn pop_counted(&mut self) -> Option<(Outgoing, usize)> {
        if let Some(b) = self.alerts.iter().position(|m| m.kind.starts_with("breaker_")) {
            return self.alerts.remove(b).map(|m| (m, 1));
        }
        if let Some(d) = self.direct.pop_front() {
            return Some((d, 1));
        }
        if self.alerts.len() > ALERT_BURST {
            return Some(self.alert_digest());
        }
        if let Some(a) = self.alerts.pop_front() {
            return Some((a, 1));
        }
        if self.routine.len() == 1 && self.overflow.is_empty() {
            return self.routine.pop().map(|m| (m, 1));
        }
        if self.routine.is_empty() && self.overflow.is_empty() {
            return None;
        }
        let n = self.routine.len() + usize::try_from(self.overflow.values().sum::<u64>()).unwrap_or(usize::MAX);
        Some((self.digest(), n))
    }

    /// Every waiting alert in one plain message: the first few quoted, the rest counted (each is
    /// in the journal's events and the log in full).
    fn alert_digest(&mut self) -> (Outgoing, usize) {
        let all: Vec<Outgoing> = self.alerts.drain(..).collect();
        let mut text = format!("{} alerts came at once:", all.len());
        for m in all.iter().take(DIGEST_SAMPLES) {
            let plain = if m.html { super::format::plain(&m.text) } else { m.text.clone() };
            let mut sample: String = plain.chars().take(SAMPLE_CHARS).collect();
            if plain.chars().count() > SAMPLE_CHARS {
                sample.push('…');
            }
            text.push_str("\n• ");
            text.push_str(&sample);
        }
        if all.len() > DIGEST_SAMPLES {
            text.push_str(&format!(
                "\n… and {} more: each is in the log and the journal's events (`polycopy incident` gathers them)",
                all.len() - DIGEST_SAMPLES
            ));
        }
        (Outgoing::text("alert", text, Class::Alert, false), all.len())
    }

    fn digest(&mut self) -> Outgoing {
        let pending = std::mem::take(&mut self.routine);
        let overflow = std::mem::take(&mut self.overflow);
        let silent = pending.iter().all(|m| m.silent);
        let html = pending.iter().any(|m| m.html);
        let mut counts: Vec<(&'static str, u64)> = Vec::new();
        for k in pending.iter().map(|m| m.kind).chain(overflow.keys().copied()) {
            if !counts.iter().any(|(c, _)| *c == k) {
                counts.push((k, 0));
            }
        }
        for (k, n) in &mut counts {
            *n = pending.iter().filter(|m| m.kind == *k).count() as u64 + overflow.get(k).copied().unwrap_or(0);
        }
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        let usdc: i64 = pending.iter().filter_map(|m| m.tally.usdc).map(|u| u.0).sum();
        let mut refusals: BTreeMap<&'static str, u64> = BTreeMap::new();
        for code in pending.iter().filter_map(|m| m.tally.refusal) {
            *refusals.entry(code).or_insert(0) += 1;
        }
        let mut text = counts
            .iter()
            .map(|(k, n)| {
                let extra = match *k {
                    "executed" if usdc != 0 => format!(" ({} USDC)", crate::domain::Usdc(usdc)),
                    "rejected" if !refusals.is_empty() => format!(
                        " ({})",
                        refusals.iter().map(|(c, n)| format!("{n} {c}")).collect::<Vec<_>>().join(", ")
                    ),
                    _ => String::new(),
                };
                format!("{n} {}{extra}", noun(k))
            })
            .collect::<Vec<_>>()
            .join(", ");
        text.push(':');
        for m in pending.iter().take(DIGEST_SAMPLES) {
            text.push_str("\n• ");
            text.push_str(&routine_sample(m, html));
        }
        let shown = pending.len().min(DIGEST_SAMPLES) as u64;
        if total > shown {
            text.push_str(&format!(
                "\n… and {} more: /trades lists them (polycopy trades on the server)",
                total - shown
            ));
        }
        Outgoing { html, ..Outgoing::text("digest", text, Class::Routine, silent) }
    }
}

/// One routine message quoted in a digest (HTML or not, as the digest is). A long one is cut, as
/// plain text (its tags would be cut too), so that five of them and the counts fit one message:
/// the digest is made after messages are split to Telegram's size, never split again.
fn routine_sample(m: &Outgoing, html: bool) -> String {
    if super::split::units(&m.text) <= 2 * SAMPLE_CHARS {
        // A plain sample inside an HTML digest is escaped like any other data.
        return if html && !m.html { super::format::escape(&m.text) } else { m.text.clone() };
    }
    let plain = if m.html { super::format::plain(&m.text) } else { m.text.clone() };
    let mut cut: String = plain.chars().take(SAMPLE_CHARS).collect();
    cut.push('…');
    if html { super::format::escape(&cut) } else { cut }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kind: &'static str, class: Class, text: &str) -> Outgoing {
        Outgoing::text(kind, text.into(), class, false)
    }

    #[test]
    fn alerts_first_then_direct_then_one_digest() {
        let mut o = Outbox::new(100);
        for i in 0..12 {
            o.push(m("executed", Class::Routine, &format!("copied {i}")));
        }
        o.push(m("rejected", Class::Routine, "not copied x"));
        o.push(m("breaker_tripped", Class::Alert, "BREAKER"));
        o.push(m("reply", Class::Direct, "status"));
        assert_eq!(o.pop().unwrap().text, "BREAKER");
        assert_eq!(o.pop().unwrap().text, "status");
        let d = o.pop().unwrap();
        assert!(d.text.starts_with("12 copies executed, 1 not copied:"), "{}", d.text);
        assert!(d.text.contains("copied 0") && d.text.contains("… and 8 more"), "{}", d.text);
        assert!(o.pop().is_none() && o.is_empty());
    }

    /// Five routine messages each near Telegram's limit (market titles of emoji) still make one
    /// digest within it: each long one is quoted cut, as plain text, never with its tags cut.
    #[test]
    fn a_digest_of_long_messages_fits_one_message() {
        let mut o = Outbox::new(100);
        let long = format!("<b>copied</b> {}", "🐋".repeat(2000));
        for _ in 0..8 {
            o.push(Outgoing { html: true, ..m("executed", Class::Routine, &long) });
        }
        let d = o.pop().unwrap();
        assert!(d.html && super::super::split::units(&d.text) <= super::super::split::TEXT_MAX, "{}", d.text.len());
        assert!(d.text.contains("copied 🐋") && !d.text.contains("<b>copied"), "cut as plain text");
        assert!(d.text.contains("… and 3 more"), "the rest counted");
    }

    #[test]
    fn a_digest_says_why_copies_were_refused_and_how_much_was_copied() {
        let mut o = Outbox::new(100);
        let with = |kind: &'static str, tally: Tally| Outgoing { tally, html: true, ..m(kind, Class::Routine, "x") };
        for _ in 0..3 {
            o.push(with("executed", Tally { usdc: Some(crate::domain::Usdc(5_000_000)), refusal: None }));
        }
        for code in ["max_order_usdc", "max_order_usdc", "price_out_of_band"] {
            o.push(with("rejected", Tally { usdc: None, refusal: Some(code) }));
        }
        let d = o.pop().unwrap();
        assert!(d.html);
        assert!(
            d.text.starts_with("3 copies executed (15 USDC), 3 not copied (2 max_order_usdc, 1 price_out_of_band):"),
            "{}",
            d.text
        );
        assert!(d.text.contains("/trades lists them"), "{}", d.text);
    }

    #[test]
    fn the_breaker_and_answers_pass_a_burst_of_alerts_which_go_as_one() {
        let mut o = Outbox::new(100);
        for i in 0..200 {
            o.push(m("error", Class::Alert, &format!("order {i} refused")));
        }
        o.push(m("reply", Class::Direct, "HALTED"));
        o.push(m("breaker_tripped", Class::Alert, "BREAKER"));
        assert_eq!(o.pop_counted().map(|(m, n)| (m.text, n)), Some(("BREAKER".into(), 1)));
        assert_eq!(o.pop().unwrap().text, "HALTED");
        let (d, n) = o.pop_counted().unwrap();
        assert_eq!(n, 200);
        assert!(d.text.starts_with("200 alerts came at once:") && d.text.contains("order 0 refused"), "{}", d.text);
        assert!(d.text.contains("… and 195 more") && !d.text.contains("order 5 refused"), "{}", d.text);
        assert!(o.pop().is_none());
        // A few alerts go one by one, in order.
        o.push(m("error", Class::Alert, "one"));
        o.push(m("error", Class::Alert, "two"));
        assert_eq!((o.pop().unwrap().text, o.pop().unwrap().text), ("one".into(), "two".into()));
    }

    #[test]
    fn a_single_routine_message_goes_as_it_is() {
        let mut o = Outbox::new(100);
        o.push(m("executed", Class::Routine, "copied a"));
        assert_eq!(o.pop().unwrap().text, "copied a");
    }

    #[test]
    fn overflow_is_counted_not_lost() {
        let mut o = Outbox::new(3);
        for i in 0..200 {
            o.push(m("executed", Class::Routine, &format!("copied {i}")));
        }
        let d = o.pop().unwrap();
        assert!(d.text.starts_with("200 copies executed:"), "{}", d.text);
        assert!(d.text.contains("… and 197 more"));
        assert!(o.is_empty());
    }
}
