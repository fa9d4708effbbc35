//! The delivery loop: takes messages from the outbox in priority order and sends them to every
//! authorized chat, paced under Telegram's limits, obeying `retry_after`, retrying failures (alerts
//! until delivered, routine messages a bounded number of times, then counted). It runs on its own
//! task: a slow or unreachable Telegram never holds up trading.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, InputFile};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::config::env::scrub;
use crate::metrics::Metrics;
use crate::telegram::outbox::{Class, Outbox, Outgoing};

/// Pacing and retry settings.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryConfig {
    /// Messages per second to one chat.
    pub per_chat_per_second: u32,
    /// Messages per minute to a group chat.
    pub per_group_per_minute: u32,
    /// Routine texts held before they are reduced to counts.
    pub capacity: usize,
    /// Attempts for a routine message.
    pub routine_attempts: u32,
}

/// Per-chat limiters: one message per `1/per_second` s, and for groups (negative ids) also the
/// per-minute limit, without bursts.
struct Pacer {
    cfg: DeliveryConfig,
    chats: HashMap<i64, (DefaultDirectRateLimiter, Option<DefaultDirectRateLimiter>)>,
}

impl Pacer {
    async fn wait(&mut self, chat: i64) {
        let cfg = self.cfg;
        let (a, b) = self.chats.entry(chat).or_insert_with(|| {
            let per_s = NonZeroU32::new(cfg.per_chat_per_second).unwrap_or(NonZeroU32::MIN);
            let per_min = NonZeroU32::new(cfg.per_group_per_minute).unwrap_or(NonZeroU32::MIN);
            let group =
                (chat < 0).then(|| RateLimiter::direct(Quota::per_minute(per_min).allow_burst(NonZeroU32::MIN)));
            (RateLimiter::direct(Quota::per_second(per_s).allow_burst(NonZeroU32::MIN)), group)
        });
        a.until_ready().await;
        if let Some(b) = b {
            b.until_ready().await;
        }
    }
}

/// The sending side of the delivery queue: counts what is queued and not yet handled, so shutdown
/// can wait for the last messages (the stop notice) to go out.
#[derive(Debug, Clone)]
pub struct Queue {
    tx: mpsc::Sender<Outgoing>,
    pending: Arc<AtomicUsize>,
}

impl Queue {
    /// A queue of `capacity` messages and its receiving end.
    #[must_use]
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx, pending: Arc::default() }, rx)
    }

    /// Queues without waiting; false when the queue is full or closed.
    pub fn try_push(&self, m: Outgoing) -> bool {
        self.pending.fetch_add(1, Ordering::SeqCst);
        let ok = self.tx.try_send(m).is_ok();
        if !ok {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
        ok
    }

    /// Queues, waiting for room; false when delivery has stopped.
    pub async fn push(&self, m: Outgoing) -> bool {
        self.pending.fetch_add(1, Ordering::SeqCst);
        let ok = self.tx.send(m).await.is_ok();
        if !ok {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
        ok
    }

    /// Messages queued and not yet handled.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
}

/// Runs until the sender side is dropped and everything queued was attempted.
pub async fn run(
    bot: Bot,
    chats: Vec<i64>,
    mut rx: mpsc::Receiver<Outgoing>,
    pending: Queue,
    cfg: DeliveryConfig,
    metrics: Arc<Metrics>,
    token: String,
) {
    let mut outbox = Outbox::new(cfg.capacity);
    let mut pacer = Pacer { cfg, chats: HashMap::new() };
    loop {
        if outbox.is_empty() {
            match rx.recv().await {
                Some(m) => outbox.push(m),
                None => return,
            }
        }
        while let Ok(m) = rx.try_recv() {
            outbox.push(m);
        }
        let Some((msg, stands_for)) = outbox.pop_counted() else { continue };
        let targets: Vec<i64> = msg.chat.map_or_else(|| chats.clone(), |c| vec![c]);
        for chat in targets {
            deliver(&bot, chat, &msg, &mut pacer, &metrics, &token).await;
        }
        pending.pending.fetch_sub(stands_for, Ordering::SeqCst);
    }
}

async fn deliver(bot: &Bot, chat: i64, msg: &Outgoing, pacer: &mut Pacer, metrics: &Metrics, token: &str) {
    let mut failures = 0u32;
    loop {
        pacer.wait(chat).await;
        match send(bot, chat, msg).await {
            Ok(()) => {
                metrics.telegram_failing.store(false, Ordering::Relaxed);
                return;
            }
            Err(RequestError::RetryAfter(s)) => {
                warn!(chat, retry_after_s = s.seconds(), "Telegram asks to slow down; waiting");
                tokio::time::sleep(s.duration()).await;
            }
            Err(e) => {
                metrics.telegram_failing.store(true, Ordering::Relaxed);
                failures += 1;
                let cause = scrub(&e.to_string(), &[token]);
                if msg.class != Class::Alert && failures >= pacer.cfg.routine_attempts {
                    metrics.telegram_send_failures.fetch_add(1, Ordering::Relaxed);
                    warn!(chat, kind = msg.kind, cause, "Telegram message dropped after {failures} attempts");
                    return;
                }
                debug!(chat, kind = msg.kind, cause, failures, "Telegram send failed; retrying");
                if failures == 1 {
                    warn!(chat, kind = msg.kind, cause, "Telegram send failed; retrying");
                }
                tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(failures.min(6))).min(Duration::from_secs(15)))
                    .await;
            }
        }
    }
}

async fn send(bot: &Bot, chat: i64, m: &Outgoing) -> Result<(), RequestError> {
    let markup = (!m.buttons.is_empty()).then(|| {
        InlineKeyboardMarkup::new(vec![
            m.buttons
                .iter()
                .map(|(label, data)| InlineKeyboardButton::callback(label.clone(), data.clone()))
                .collect::<Vec<_>>(),
        ])
    });
    if let Some(png) = &m.photo {
        let mut req = bot.send_photo(ChatId(chat), InputFile::memory(png.clone()).file_name("report.png"));
        req = req.caption(truncate(&m.text, 1024)).disable_notification(m.silent);
        req.await?;
        return Ok(());
    }
    let mut req = bot.send_message(ChatId(chat), truncate(&m.text, 4096)).disable_notification(m.silent);
    if let Some(k) = markup {
        req = req.reply_markup(k);
    }
    req.await?;
    Ok(())
}

/// Telegram's limits are in characters; cut at a character boundary with a marker.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}
