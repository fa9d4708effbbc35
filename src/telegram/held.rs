//! Telegram messages that could not be delivered are kept in the journal and sent first at the next
//! start: at a stop all of them; while delivery fails (Telegram down, a 429's wait, a group's
//! minute quota, a parked chat), a snapshot of the alerts and answers waiting, rewritten as it
//! changes, so a crash (the watchdog's kill, the OOM killer, a power cut) loses none of them.
//! Routine reports are not snapshotted: each is in the journal (trades, events) and the reports.

use std::time::Duration;

use tracing::info;

use super::Queue;
use super::outbox::{Class, Outgoing};
use crate::actors::store::{ForgetHeldTelegram, HoldTelegram, StoreActor, TakeHeldTelegram};
use crate::store::{HeldClass, HeldMessage, Holding};

/// What a message held over a restart starts with.
pub(super) const HELD_NOTE: &str = "(held from before the restart)";

/// How often what waits is compared with the last snapshot (and written when it changed).
const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);

/// What waits in every chat's queue, as the journal keeps it: every message (`all`, at a stop),
/// or the alerts and answers not held already (a snapshot; the ones sent again from the last
/// stop keep their own rows until delivered). A report's chart is not kept, its text is; a
/// confirmation button is stale after a restart, so a message offering one is not kept.
pub(super) fn held_now(out: &Queue, all: bool) -> Vec<HeldMessage> {
    out.undelivered()
        .into_iter()
        .flat_map(|(chat, msgs)| {
            msgs.into_iter()
                .filter(|m| m.buttons.is_empty())
                .filter(move |m| all || (m.class != Class::Routine && !m.text.starts_with(HELD_NOTE)))
                .map(move |m| HeldMessage {
                    chat,
                    class: match m.class {
                        Class::Alert => HeldClass::Alert,
                        Class::Direct => HeldClass::Direct,
                        Class::Routine => HeldClass::Routine,
                    },
                    text: m.text,
                    silent: m.silent,
                    html: m.html,
                })
        })
        .collect()
}

/// Rewrites the snapshot of what waits whenever it changed, until the stop (whose own hold
/// replaces it). Rows above `resent_up_to` are this run's.
pub(super) fn keep_snapshots(
    store: actix::Addr<StoreActor>,
    queue: Queue,
    resent_up_to: i64,
    stop: &tokio_util::sync::CancellationToken,
) {
    let until = stop.clone();
    crate::tasks::spawn_until(stop, async move {
        let mut written: Vec<HeldMessage> = Vec::new();
        loop {
            tokio::time::sleep(SNAPSHOT_EVERY).await;
            let now = held_now(&queue, false);
            // Never after the stop's hold, which replaces every snapshot.
            if !until.is_cancelled()
                && now != written
                && let Ok(Ok(())) = store.send(HoldTelegram(now.clone(), resent_up_to, Holding::Snapshot)).await
            {
                written = now;
            }
        }
    });
}

/// What could not be delivered before the last stop goes out first. The rows stay in the journal
/// until the queue has sent them (then they are forgotten), so a crash before that loses none:
/// they go out again at the next start. Returns the last row sent again (0: none; `None`: the
/// journal could not say).
pub(super) async fn resend_held(
    store: &actix::Addr<StoreActor>,
    tx: &Queue,
    stop: &tokio_util::sync::CancellationToken,
) -> Option<i64> {
    let Ok(Ok((held, last))) = store.send(TakeHeldTelegram).await else { return None };
    if held.is_empty() {
        return Some(0);
    }
    info!(messages = held.len(), "Telegram messages held from before the restart are sent first");
    let mut chats: std::collections::BTreeSet<i64> = held.iter().map(|h| h.chat).collect();
    for h in held {
        let class = match h.class {
            HeldClass::Alert => Class::Alert,
            HeldClass::Direct => Class::Direct,
            HeldClass::Routine => Class::Routine,
        };
        // Held over several restarts, it says so once.
        let text = if h.text.starts_with(HELD_NOTE) { h.text } else { format!("{HELD_NOTE} {}", h.text) };
        let m = Outgoing { chat: Some(h.chat), html: h.html, ..Outgoing::text("held", text, class, h.silent) };
        let _ = tx.push(m).await;
    }
    let (queue, store) = (tx.clone(), store.clone());
    crate::tasks::spawn_until(stop, async move {
        // Each chat's rows once it has nothing left to deliver (a parked one's too: until then a
        // crash would lose what it still waits for); not all at once, or a chat that stays
        // parked would have the others' delivered rows sent to them again after a crash.
        while !chats.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if queue.undispatched() > 0 {
                continue;
            }
            let waiting: std::collections::HashSet<i64> = queue.undelivered().into_iter().map(|(c, _)| c).collect();
            // A chat no longer configured has no line: its messages went to every chat's, and
            // are delivered once nothing waits anywhere.
            let done = |c: &i64| !waiting.contains(c) && (queue.has_line(*c) || waiting.is_empty());
            for chat in chats.clone().into_iter().filter(done) {
                if let Ok(Ok(())) = store.send(ForgetHeldTelegram(last, Some(chat))).await {
                    chats.remove(&chat);
                }
            }
        }
    });
    Some(last)
}
