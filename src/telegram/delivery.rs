//! Delivery: one worker per authorized chat, each with its own outbox, pacing and retries, so one
//! chat that cannot be reached never holds up another. Nothing an operator would want to read is
//! dropped: while Telegram fails, messages wait (routine ones are merged into a digest when it
//! answers again); a chat that refuses us for good (blocked the bot, chat not found) is parked
//! with one log line and a notice to the other chats, and tried again now and then. What is still
//! undelivered at shutdown is kept in the journal and sent after the next start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use teloxide::prelude::*;
use teloxide::{ApiError, RequestError};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::env::scrub;
use crate::metrics::Metrics;
use crate::telegram::outbox::{Class, Outbox, Outgoing};
use crate::telegram::wire::{Pacer, send};

/// Pacing and retry settings.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryConfig {
    /// Messages per second to one chat.
    pub per_chat_per_second: u32,
    /// Messages per minute to a group chat.
    pub per_group_per_minute: u32,
    /// Routine texts held per chat before they are reduced to counts.
    pub capacity: usize,
    /// Failures of one message before the chat counts as failing (reported in `/health`).
    pub routine_attempts: u32,
    /// How often a parked chat is tried again.
    pub parked_retry: Duration,
}

/// What one chat's worker shows the rest: how much it still has to send, and whether it is parked.
#[derive(Debug, Default)]
struct ChatState {
    backlog: AtomicUsize,
    parked: AtomicBool,
    outbox: Mutex<Outbox>,
    /// The message being sent (and retried) now.
    current: Mutex<Option<Outgoing>>,
    /// Rung when a message is put in the outbox (a permit is kept when no one waits).
    bell: tokio::sync::Notify,
    /// Rung when the chat, parked, is heard from (it unblocked the bot, its rights came back):
    /// its held messages go at once rather than at the next parked retry.
    heard: tokio::sync::Notify,
}

impl ChatState {
    /// Puts a message straight in the outbox, where a shutdown's snapshot finds it even while
    /// the worker is busy sending or waiting to retry.
    /// A message too long for one is split here, so each part is sent, retried and kept alone.
    fn take(&self, m: Outgoing) {
        let Ok(mut o) = self.outbox.lock() else { return };
        for part in super::split::parts(m) {
            self.backlog.fetch_add(1, Ordering::SeqCst);
            o.push(part);
        }
        drop(o);
        self.bell.notify_one();
    }
}

/// Authorized groups that became supergroups since the start (Telegram gives an upgraded group a
/// new id): their messages go to the new id, and commands from the new id are theirs, until the
/// operator names the new id in `TELEGRAM_CHAT_ID`.
#[derive(Debug, Clone, Default)]
pub struct Moves(Arc<Mutex<HashMap<i64, i64>>>);

impl Moves {
    /// Notes that `old` is now `new`; true the first time.
    pub fn record(&self, old: i64, new: i64) -> bool {
        self.0.lock().is_ok_and(|mut m| m.insert(old, new) != Some(new))
    }

    /// Where a message for `chat` goes now.
    #[must_use]
    pub fn to(&self, chat: i64) -> i64 {
        self.0.lock().ok().and_then(|m| m.get(&chat).copied()).unwrap_or(chat)
    }

    /// The authorized chat `chat` was before it moved, if it is one that moved.
    #[must_use]
    pub fn from(&self, chat: i64) -> Option<i64> {
        self.0.lock().ok()?.iter().find(|(_, new)| **new == chat).map(|(old, _)| *old)
    }
}

/// The sending side of delivery: queues without blocking and knows how much is still to send.
#[derive(Debug, Clone)]
pub struct Queue {
    tx: mpsc::Sender<Outgoing>,
    /// Queued and not yet handed to a chat's worker.
    undispatched: Arc<AtomicUsize>,
    chats: Arc<Mutex<Vec<(i64, Arc<ChatState>)>>>,
    /// Authorized groups that moved to a new id.
    pub moves: Moves,
}

impl Queue {
    /// A queue of `capacity` messages and its receiving end.
    #[must_use]
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { tx, undispatched: Arc::default(), chats: Arc::default(), moves: Moves::default() }, rx)
    }

    /// Queues without waiting; false when the queue is full or closed.
    pub fn try_push(&self, m: Outgoing) -> bool {
        self.try_push_or_return(m).is_none()
    }

    /// Queues without waiting; the message back (`Some`) when the queue is full or closed.
    #[must_use]
    pub fn try_push_or_return(&self, m: Outgoing) -> Option<Outgoing> {
        self.undispatched.fetch_add(1, Ordering::SeqCst);
        self.tx.try_send(m).err().map(|e| {
            self.undispatched.fetch_sub(1, Ordering::SeqCst);
            match e {
                mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
            }
        })
    }

    /// Queues, waiting for room; false when delivery has stopped.
    pub async fn push(&self, m: Outgoing) -> bool {
        self.undispatched.fetch_add(1, Ordering::SeqCst);
        let ok = self.tx.send(m).await.is_ok();
        if !ok {
            self.undispatched.fetch_sub(1, Ordering::SeqCst);
        }
        ok
    }

    /// An authorized chat wrote to us, so Telegram delivers there again: a parked chat is tried
    /// at once.
    pub fn heard_from(&self, chat: i64) {
        let chats = self.chats.lock().map(|c| c.clone()).unwrap_or_default();
        for (_, s) in chats.iter().filter(|(c, s)| *c == chat && s.parked.load(Ordering::SeqCst)) {
            s.heard.notify_one();
        }
    }

    /// Messages still to be sent to a chat that is not parked (what a shutdown waits for).
    #[must_use]
    pub fn pending(&self) -> usize {
        let chats = self.chats.lock().map(|c| c.clone()).unwrap_or_default();
        self.undispatched.load(Ordering::SeqCst)
            + chats
                .iter()
                .filter(|(_, s)| !s.parked.load(Ordering::SeqCst))
                .map(|(_, s)| s.backlog.load(Ordering::SeqCst))
                .sum::<usize>()
    }

    /// Whether `chat` has a delivery line of its own (a configured chat, or a group's new id).
    #[must_use]
    pub fn has_line(&self, chat: i64) -> bool {
        self.chats.lock().is_ok_and(|c| c.iter().any(|(id, _)| *id == chat))
    }

    /// Messages queued and not yet handed to a chat's outbox.
    #[must_use]
    pub fn undispatched(&self) -> usize {
        self.undispatched.load(Ordering::SeqCst)
    }

    /// Everything not yet delivered, per chat (for the journal at shutdown).
    #[must_use]
    pub fn undelivered(&self) -> Vec<(i64, Vec<Outgoing>)> {
        let chats = self.chats.lock().map(|c| c.clone()).unwrap_or_default();
        chats
            .iter()
            .filter_map(|(chat, s)| {
                let mut held: Vec<Outgoing> = s.current.lock().ok()?.iter().cloned().collect();
                held.extend(s.outbox.lock().ok()?.snapshot());
                (!held.is_empty()).then_some((*chat, held))
            })
            .collect()
    }
}

/// What every worker shares.
struct Shared {
    bot: Bot,
    cfg: DeliveryConfig,
    metrics: Arc<Metrics>,
    token: String,
    /// Notices about one chat, for the others (a parked chat).
    notices: mpsc::UnboundedSender<(i64, String)>,
    /// Authorized groups that moved to a new id.
    moves: Moves,
}

/// Runs until the sending side is dropped: hands each message to its chats' workers.
pub async fn run(
    bot: Bot,
    chats: Vec<i64>,
    mut rx: mpsc::Receiver<Outgoing>,
    queue: Queue,
    cfg: DeliveryConfig,
    metrics: Arc<Metrics>,
    token: String,
) {
    let (notices_tx, mut notices) = mpsc::unbounded_channel();
    let moves = queue.moves.clone();
    let shared = Arc::new(Shared { bot, cfg, metrics, token, notices: notices_tx, moves: moves.clone() });
    let mut lines: HashMap<i64, Arc<ChatState>> = HashMap::new();
    for chat in &chats {
        let state = Arc::new(ChatState { outbox: Mutex::new(Outbox::new(cfg.capacity)), ..ChatState::default() });
        if let Ok(mut c) = queue.chats.lock() {
            c.push((*chat, state.clone()));
        }
        tokio::spawn(worker(shared.clone(), *chat, state.clone()));
        lines.insert(*chat, state);
    }
    let route = |m: Outgoing, lines: &HashMap<i64, Arc<ChatState>>| {
        // A reply to a group that moved goes to its line; a message for a chat no longer
        // authorized (held from before a restart that changed TELEGRAM_CHAT_ID) to every chat,
        // never dropped.
        let targets: Vec<i64> = match m.chat.map(|c| moves.from(c).unwrap_or(c)) {
            Some(c) if lines.contains_key(&c) => vec![c],
            _ => chats.clone(),
        };
        for chat in targets {
            if let Some(state) = lines.get(&chat) {
                state.take(Outgoing { chat: Some(chat), ..m.clone() });
            }
        }
    };
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => {
                    route(m, &lines);
                    queue.undispatched.fetch_sub(1, Ordering::SeqCst);
                }
                None => return,
            },
            Some((about, text)) = notices.recv() => {
                for other in chats.iter().filter(|c| **c != about) {
                    route(Outgoing { chat: Some(*other), ..Outgoing::text("error", text.clone(), Class::Alert, false) }, &lines);
                }
            }
        }
    }
}

/// One chat: takes its messages in priority order and sends them, paced, until they are delivered.
async fn worker(shared: Arc<Shared>, chat: i64, state: Arc<ChatState>) {
    let mut pacer = Pacer::new(shared.cfg, chat);
    loop {
        let next = state.outbox.lock().ok().and_then(|mut o| o.pop_counted());
        let Some((msg, stands_for)) = next else {
            state.bell.notified().await;
            continue;
        };
        if let Ok(mut c) = state.current.lock() {
            *c = Some(msg.clone());
        }
        deliver(&shared, chat, msg, &mut pacer, &state).await;
        if let Ok(mut c) = state.current.lock() {
            *c = None;
        }
        state.backlog.fetch_sub(stands_for, Ordering::SeqCst);
    }
}

/// Why a send failed.
pub(super) enum Failure {
    /// Telegram will not deliver to this chat until something changes on its side.
    Permanent(String),
    /// Worth retrying (network, 5xx, a timeout).
    Transient(String),
    /// Telegram refuses this message itself (its markup, its length): retrying it cannot work.
    BadMessage(String),
}

pub(super) fn classify(e: &RequestError, token: &str) -> Failure {
    let cause = scrub(&e.to_string(), &[token]);
    match e {
        // A group upgraded to a supergroup has a new id, which delivery follows before it asks
        // here; refused again at the new id (it cannot be followed), the chat is parked.
        RequestError::MigrateToChatId(to) => Failure::Permanent(format!(
            "the group became a supergroup with id {}, which refuses our messages too: set TELEGRAM_CHAT_ID to it",
            to.0
        )),
        RequestError::Api(api) => classify_api(api, cause),
        _ => Failure::Transient(cause),
    }
}

/// An answer Telegram gave: about the chat (permanent), about this message (bad), or neither. By
/// the answer's own words as well as by name: teloxide names many refusals ("Bad Request:
/// IMAGE_PROCESS_FAILED", "Forbidden: bot was kicked from the channel chat"), and one not listed
/// here taken as transient would be retried for ever, holding every later message to its chat.
fn classify_api(api: &ApiError, cause: String) -> Failure {
    let text = match api {
        ApiError::Unknown(d) => d.clone(),
        named => named.to_string(),
    };
    let about_the_chat = matches!(
        api,
        ApiError::BotBlocked
            | ApiError::ChatNotFound
            | ApiError::UserDeactivated
            | ApiError::BotKicked
            | ApiError::BotKickedFromSupergroup
            | ApiError::BotKickedFromChannel
            | ApiError::GroupDeactivated
            | ApiError::CantInitiateConversation
            | ApiError::CantTalkWithBots
    );
    // Refusals about the bot's standing in the chat ("need administrator rights in the channel
    // chat", "not enough rights to send text messages to the chat", a muted bot's
    // CHAT_WRITE_FORBIDDEN, a closed forum topic's TOPIC_CLOSED) hold for every message to it:
    // taken for a bad message, each would be dropped in turn, never held for later.
    let lower = text.to_ascii_lowercase();
    let no_rights = [
        "rights",
        "administrator",
        "not a member",
        "chat not found",
        "deactivated",
        "kicked",
        "blocked",
        "forbidden",
        "topic_closed",
        "topic_deleted",
        "chat_restricted",
    ]
    .iter()
    .any(|w| lower.contains(w));
    if about_the_chat || text.starts_with("Forbidden") || no_rights {
        Failure::Permanent(cause)
    } else if text.starts_with("Bad Request") || matches!(api, ApiError::RequestEntityTooLarge) {
        Failure::BadMessage(cause)
    } else {
        Failure::Transient(cause)
    }
}

/// What the operator is told when an authorized group moved to a new id.
#[must_use]
pub fn moved_notice(old: i64, new: i64) -> String {
    format!(
        "the Telegram group {old} became a supergroup with id {new}: its commands are obeyed and messages go there \
         from now on; set TELEGRAM_CHAT_ID to {new} in place of {old} before the next restart"
    )
}

/// Sends `msg` until it is delivered; never gives up on it. Meanwhile new messages for the chat
/// go on arriving in its outbox (where they are merged, counted and kept, never lost).
async fn deliver(shared: &Shared, chat: i64, mut msg: Outgoing, pacer: &mut Pacer, state: &ChatState) {
    let mut failures = 0u32;
    loop {
        pacer.wait().await;
        // Where it goes, read once: a move recorded while this send is under way (a command from
        // the new group) must not make its refusal look like a chat that refuses us for good.
        let to = shared.moves.to(chat);
        let wait = match send(&shared.bot, to, &msg).await {
            Ok(()) => {
                shared.metrics.telegram_failing.store(false, Ordering::Relaxed);
                if state.parked.swap(false, Ordering::SeqCst) {
                    shared.metrics.telegram_parked_chats.fetch_sub(1, Ordering::Relaxed);
                    info!(chat, "Telegram chat reachable again: its held messages follow");
                }
                return;
            }
            Err(RequestError::RetryAfter(s)) => {
                warn!(chat, retry_after_s = s.seconds(), "Telegram asks to slow down; waiting");
                s.duration()
            }
            // The group became a supergroup: the message (and every later one) goes to its new id.
            Err(RequestError::MigrateToChatId(new)) if to != new.0 => {
                if shared.moves.record(chat, new.0) {
                    let _ = shared.notices.send((new.0, moved_notice(chat, new.0)));
                    warn!(chat, to = new.0, "the Telegram group became a supergroup: its messages go to its new id");
                }
                Duration::ZERO
            }
            Err(e) => {
                failures += 1;
                match after_failure(shared, chat, &mut msg, state, failures, &e) {
                    Some(wait) => wait,
                    None => return,
                }
            }
        };
        if state.parked.load(Ordering::SeqCst) {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = state.heard.notified() => info!(chat, "a parked Telegram chat wrote to us: trying it now"),
            }
        } else {
            tokio::time::sleep(wait).await;
        }
    }
}

/// What a failed send leads to: how long to wait before the next try (`msg` may have been made
/// plain), or `None` when the message is given up.
fn after_failure(
    shared: &Shared,
    chat: i64,
    msg: &mut Outgoing,
    state: &ChatState,
    failures: u32,
    e: &RequestError,
) -> Option<Duration> {
    match classify(e, &shared.token) {
        // Retrying the same message would loop and hold up the chat: send it once more as plain
        // text without buttons or picture (a report's chart refused still leaves its figures), and
        // if Telegram refuses that too, count it and move on.
        Failure::BadMessage(cause) if msg.html || !msg.buttons.is_empty() || msg.photo.is_some() => {
            warn!(chat, kind = msg.kind, cause, "Telegram refused the message as it was; sending its text alone");
            if msg.html {
                // Only markup is taken out: a plain text's "<" and "&" (a label, a typed
                // argument) are its own.
                msg.text = super::format::plain(&msg.text);
            }
            msg.html = false;
            msg.buttons = Vec::new();
            msg.photo = None;
            Some(Duration::ZERO)
        }
        // A chat that takes text but not pictures (a group's member rights: "not enough rights to
        // send photos"): the figures go alone, and the chat is parked only if it refuses them too.
        Failure::Permanent(cause)
            if msg.photo.is_some() && ["photo", "media"].iter().any(|w| cause.to_ascii_lowercase().contains(w)) =>
        {
            warn!(chat, kind = msg.kind, cause, "Telegram refused the picture in this chat; sending the text alone");
            msg.photo = None;
            Some(Duration::ZERO)
        }
        Failure::BadMessage(cause) => {
            shared.metrics.telegram_send_failures.fetch_add(1, Ordering::Relaxed);
            warn!(chat, kind = msg.kind, cause, "Telegram refused the message itself; it is not sent");
            None
        }
        Failure::Permanent(cause) => {
            if !state.parked.swap(true, Ordering::SeqCst) {
                shared.metrics.telegram_parked_chats.fetch_add(1, Ordering::Relaxed);
                warn!(
                    chat,
                    cause,
                    "Telegram will not deliver to this chat; it is parked and tried again every {} s",
                    shared.cfg.parked_retry.as_secs()
                );
                let notice = format!(
                    "Telegram refuses messages to chat {chat} ({cause}); they are held and tried again every {} min",
                    shared.cfg.parked_retry.as_secs().div_ceil(60)
                );
                let _ = shared.notices.send((chat, notice));
            }
            Some(shared.cfg.parked_retry)
        }
        Failure::Transient(cause) => {
            shared.metrics.telegram_failing.store(true, Ordering::Relaxed);
            if failures == shared.cfg.routine_attempts {
                shared.metrics.telegram_send_failures.fetch_add(1, Ordering::Relaxed);
            }
            if failures == 1 {
                warn!(chat, kind = msg.kind, cause, "Telegram send failed; retrying until it is delivered");
            } else {
                debug!(chat, kind = msg.kind, cause, failures, "Telegram send failed; retrying");
            }
            Some(Duration::from_millis(500 * 2u64.pow(failures.min(6))).min(Duration::from_secs(15)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full queue hands the message back (an alert then waits for room instead of being lost).
    #[test]
    fn a_full_queue_gives_the_message_back() {
        let (q, _rx) = Queue::new(1);
        let m = |kind| Outgoing::text(kind, "x".into(), Class::Alert, false);
        assert!(q.try_push_or_return(m("first")).is_none());
        assert_eq!(q.try_push_or_return(m("second")).map(|m| m.kind), Some("second"));
    }

    #[test]
    fn failures_are_classed_by_what_a_retry_can_change() {
        use teloxide::types::ChatId;
        // (error, permanent, bad message)
        let cases: Vec<(RequestError, bool, bool)> = vec![
            (RequestError::Api(ApiError::BotBlocked), true, false),
            (RequestError::Api(ApiError::ChatNotFound), true, false),
            (RequestError::MigrateToChatId(ChatId(-100_123)), true, false),
            (RequestError::Api(ApiError::MessageIsTooLong), false, true),
            (RequestError::Api(ApiError::Unknown("Bad Request: something".into())), false, true),
            (RequestError::Api(ApiError::Unknown("Internal Server Error".into())), false, false),
            // Named by teloxide, refused for good all the same.
            (RequestError::Api(ApiError::ImageProcessFailed), false, true),
            (RequestError::Api(ApiError::WrongHttpUrl), false, true),
            (RequestError::Api(ApiError::RequestEntityTooLarge), false, true),
            (RequestError::Api(ApiError::GroupDeactivated), true, false),
            (RequestError::Api(ApiError::BotKickedFromChannel), true, false),
            (RequestError::Api(ApiError::Unknown("Forbidden: something new".into())), true, false),
            (RequestError::Api(ApiError::NotEnoughRightsToPostMessages), true, false),
            (
                RequestError::Api(ApiError::Unknown(
                    "Bad Request: not enough rights to send text messages to the chat".into(),
                )),
                true,
                false,
            ),
            // A muted bot, a chat taking no text, a closed forum topic: every message to it fails
            // the same way, so the chat is parked (its messages held), not each message dropped.
            (RequestError::Api(ApiError::Unknown("Bad Request: CHAT_WRITE_FORBIDDEN".into())), true, false),
            (RequestError::Api(ApiError::Unknown("Bad Request: CHAT_SEND_PLAIN_FORBIDDEN".into())), true, false),
            (RequestError::Api(ApiError::Unknown("Bad Request: TOPIC_CLOSED".into())), true, false),
            (RequestError::Api(ApiError::Unknown("Bad Request: CHAT_RESTRICTED".into())), true, false),
        ];
        for (e, permanent, bad) in cases {
            let got = classify(&e, "TOKEN");
            let (p, b) = (matches!(got, Failure::Permanent(_)), matches!(got, Failure::BadMessage(_)));
            assert_eq!((p, b), (permanent, bad), "{e}");
        }
        let Failure::Permanent(cause) = classify(&RequestError::MigrateToChatId(ChatId(-100_123)), "TOKEN") else {
            unreachable!()
        };
        assert!(cause.contains("-100123") && cause.contains("TELEGRAM_CHAT_ID"), "{cause}");
    }
}
