//! Telegram: every action the notifier sees becomes a message to the authorized chats, and the
//! operator commands the bot from them. Three tasks: delivery (paced, prioritized, digests), the
//! command long-poll, and the report schedule. The [`TelegramActor`] is the notifier's sink.
//!
//! Security: only the chats in `TELEGRAM_CHAT_ID` are obeyed and receive reports; inside them, the
//! users in `telegram.allowed_user_ids` when it is set (otherwise a listed group is trusted as a
//! whole). The bot token is never printed: every error text is scrubbed of it before it is logged.

pub mod commands;
pub mod delivery;
pub mod direct;
pub mod format;
mod held;
pub mod operator;
pub mod outbox;
mod polling;
mod replies;
pub mod schedule;
mod split;
pub mod targets;
mod wire;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, Message};
use teloxide::prelude::*;
use teloxide::utils::command::BotCommands;
use tracing::{debug, error, info, warn};

use crate::actors::notifier::Event;
use crate::actors::store::HoldTelegram;
use crate::config::Env;
use crate::config::env::scrub;
use crate::config::settings::{NotifyLevel, TelegramSettings};
use crate::metrics::Metrics;
use crate::store::Holding;
use commands::{Command, Ops};
pub use delivery::Queue;
use outbox::{Class, Outgoing};

/// Event kinds that are alerts: first in line, never merged, retried until delivered.
const ALERT_KINDS: [&str; 8] = [
    "breaker_tripped",
    "breaker_reset",
    "error",
    "alert",
    "warning",
    "operator",
    "reorged_after_copy",
    "wallets_rejected",
];

/// The outcome of one of the operator's own orders (a close).
fn operators_own(ev: &Event) -> bool {
    matches!(ev, Event::Executed { fill, .. } | Event::Rejected { fill, .. } if fill.wallet == crate::domain::OPERATOR)
        || matches!(ev, Event::BookedOnChain { by_operator: true, .. })
}

/// How `ev` waits in the queue. The operator's own close outcomes are answers to a command: each
/// is sent as it is, never merged into an alert digest. Copies of trades that never happened
/// (dropped or reverted before their block) and booked amounts the chain corrected change what
/// we hold: alerts, never summarized among routine reports.
fn class_of(ev: &Event, operators_own: bool) -> Class {
    let copied_orphan = matches!(ev, Event::Orphaned { fills, .. } if fills.iter().any(|f| f.copied));
    if operators_own {
        Class::Direct
    } else if copied_orphan || matches!(ev, Event::Corrected { .. }) || ALERT_KINDS.contains(&ev.kind()) {
        Class::Alert
    } else {
        Class::Routine
    }
}

/// The notifier's Telegram sink: filters by level and queues for delivery without ever waiting.
#[derive(Debug)]
pub struct TelegramActor {
    /// Ends the daemon if this actor dies of a panic (see [`crate::actors::vital`]).
    _vital: crate::actors::vital::Vital,
    settings: TelegramSettings,
    out: Queue,
    metrics: Arc<Metrics>,
}

impl Actor for TelegramActor {
    type Context = Context<Self>;
}

impl Handler<Event> for TelegramActor {
    type Result = ();

    /// Queues the event's message (unless its kind is off); never blocks the notifier.
    fn handle(&mut self, ev: Event, _: &mut Context<Self>) {
        let kind = ev.kind();
        // The outcome of the operator's own close is the answer to a command ("each outcome is
        // reported here"): never turned off with the copies' kinds, never merged into a digest.
        let operators_own = operators_own(&ev);
        let level = match self.settings.level(kind) {
            NotifyLevel::Off if operators_own => NotifyLevel::On,
            level => level,
        };
        if level == NotifyLevel::Off {
            return;
        }
        let class = class_of(&ev, operators_own);
        let tally = match &ev {
            Event::Executed { exec, .. } => outbox::Tally { usdc: Some(exec.usdc), refusal: None },
            Event::Rejected { reason, .. } => outbox::Tally { usdc: None, refusal: Some(reason.code()) },
            _ => outbox::Tally::default(),
        };
        let m = Outgoing {
            html: true,
            tally,
            ..Outgoing::text(kind, format::html(&ev), class, level == NotifyLevel::Silent)
        };
        if let Some(m) = self.out.try_push_or_return(m) {
            if m.class == Class::Routine {
                self.metrics.telegram_send_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                warn!(kind, "Telegram queue full: message dropped");
            } else {
                // An alert or the operator's own outcome is never dropped for a burst: it waits
                // for room beside this actor (whose thread also empties the queue).
                warn!(kind, "Telegram queue full: the message waits for room");
                let out = self.out.clone();
                actix::spawn(async move {
                    let _ = out.push(m).await;
                });
            }
        }
    }
}

/// Replies once every event sent before it was queued (used to flush at shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Sync;

impl Handler<Sync> for TelegramActor {
    type Result = ();

    fn handle(&mut self, _: Sync, _: &mut Context<Self>) {}
}

/// A running Telegram integration.
#[derive(Debug, Clone)]
pub struct Telegram {
    /// The notifier's sink.
    pub sink: Addr<TelegramActor>,
    out: Queue,
    store: Addr<crate::actors::store::StoreActor>,
    /// The last held row this run sent again: at a stop those rows give way to what is undelivered
    /// (`None`: the journal could not say which rows were held, and none is replaced).
    resent_up_to: Option<i64>,
    /// Ends the snapshots of what waits, written while delivery fails ([`held::keep_snapshots`]);
    /// `None` when none are written.
    snapshots: Option<tokio_util::sync::CancellationToken>,
}

impl Telegram {
    /// Waits (at most `timeout`) until everything queued so far was sent; what could not be sent
    /// (Telegram down, a parked chat) is kept in the journal for the next start.
    pub async fn drain(&self, timeout: Duration) {
        let _ = self.sink.send(Sync).await;
        let deadline = tokio::time::Instant::now() + timeout;
        while self.out.pending() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        // No snapshot after the stop's hold: it would replace what the hold kept with only the
        // alerts and answers. One already asked for is ahead of the hold in the journal's queue.
        if let Some(s) = &self.snapshots {
            s.cancel();
        }
        let held = held::held_now(&self.out, true);
        let resent_up_to = self.resent_up_to.unwrap_or(0);
        if !held.is_empty() || resent_up_to > 0 || self.snapshots.is_some() {
            if !held.is_empty() {
                warn!(messages = held.len(), "Telegram messages undelivered at stop are kept for the next start");
            }
            let how = Holding::AtStop { replaces_snapshots: self.snapshots.is_some() };
            let _ = self.store.send(HoldTelegram(held, resent_up_to, how)).await;
        }
    }
}

/// Starts Telegram when a token is configured: checks the token (`getMe`), registers the commands,
/// and starts delivery, commands and the report schedule. Returns `None` (and says why, once) when
/// Telegram is off; trading goes on either way.
pub async fn start(
    env: &Env,
    settings: &TelegramSettings,
    stop: &tokio_util::sync::CancellationToken,
    ops: impl FnOnce(Queue) -> Ops,
) -> Option<Telegram> {
    let (bot, token, username) = connect(env, settings).await?;
    register_menu(stop, bot.clone(), token.clone());
    let (tx, rx) = Queue::new(settings.queue_capacity);
    let ops = ops(tx.clone());
    let metrics = ops.metrics.clone();
    let cfg = delivery::DeliveryConfig {
        per_chat_per_second: settings.per_chat_per_second,
        per_group_per_minute: settings.per_group_per_minute,
        capacity: settings.queue_capacity,
        routine_attempts: settings.routine_attempts,
        parked_retry: Duration::from_secs(u64::from(settings.parked_retry_s)),
    };
    let chats: Vec<i64> = env.telegram_chat_ids.clone();
    crate::tasks::spawn_until(
        stop,
        delivery::run(bot.clone(), chats.clone(), rx, tx.clone(), cfg, metrics.clone(), token.clone()),
    );
    let (store, registry) = (ops.store.clone(), ops.registry.clone());
    let held_store = store.clone();
    let resent_up_to = held::resend_held(&store, &tx, stop).await;
    // Only while the journal says which rows this run sent again: a snapshot replaces the rows above.
    let snapshots = resent_up_to.map(|resent| {
        let until = stop.child_token();
        held::keep_snapshots(store.clone(), tx.clone(), resent, &until);
        until
    });
    crate::tasks::spawn_until(
        stop,
        polling::run(
            bot,
            ops,
            commands::Authorized {
                chats: chats.iter().copied().collect::<HashSet<_>>(),
                users: settings.allowed_user_ids.iter().copied().collect(),
            },
            settings.poll_timeout_s,
            username,
            token,
        ),
    );
    if let (Some(secs), Some(day)) = (settings.daily_report_secs(), settings.weekly_day()) {
        crate::tasks::spawn_until(stop, schedule::run(store, registry, tx.clone(), secs, day));
    }
    metrics.telegram_on.store(true, std::sync::atomic::Ordering::Relaxed);
    let sink = TelegramActor {
        _vital: crate::actors::vital::Vital::new("the Telegram actor"),
        settings: settings.clone(),
        out: tx.clone(),
        metrics,
    }
    .start();
    Some(Telegram { sink, out: tx, store: held_store, resent_up_to, snapshots })
}

/// The bot, with its token (kept only to scrub it from errors) and its username (empty when
/// Telegram could not be reached at start). `None` when Telegram is off or refuses the token.
async fn connect(env: &Env, settings: &TelegramSettings) -> Option<(Bot, String, String)> {
    // teloxide keeps the token as a plain string inside its client; ours is only used for scrubbing.
    let Some(token) = env.telegram_bot_token.as_ref().map(|t| secrecy::ExposeSecret::expose_secret(t).to_owned())
    else {
        info!("Telegram off (TELEGRAM_BOT_TOKEN not set)");
        return None;
    };
    // A few seconds over the long poll's own timeout: a connection that died without a word (a
    // NAT's timeout) holds a /halt typed meanwhile only that long, not a quarter of a minute more.
    let client = teloxide::net::default_reqwest_settings()
        .timeout(Duration::from_secs(u64::from(settings.poll_timeout_s) + 5))
        .build()
        .map_err(|e| error!(cause = scrub(&e.to_string(), &[&token]), "Telegram HTTP client"))
        .ok()?;
    let url = env.telegram_api_url.parse().map_err(|e| error!(cause = %e, "TELEGRAM_API_URL")).ok()?;
    let bot = Bot::with_client(token.clone(), client).set_api_url(url);
    // Bounded: a Telegram that is down must not hold up the daemon's start (trading does not need it).
    let me = tokio::time::timeout(Duration::from_secs(5), bot.get_me())
        .await
        .unwrap_or_else(|_| Err(teloxide::RequestError::Io(std::io::Error::other("getMe timed out after 5 s").into())));
    let username = match me {
        Ok(me) => {
            info!(bot = %me.username(), chats = env.telegram_chat_ids.len(), "Telegram on");
            me.username().to_owned()
        }
        Err(teloxide::RequestError::Api(e @ teloxide::ApiError::InvalidToken)) => {
            error!(
                cause = scrub(&e.to_string(), &[&token]),
                "Telegram refused the bot token (getMe failed): Telegram is off, trading goes on. Check TELEGRAM_BOT_TOKEN"
            );
            return None;
        }
        Err(e) => {
            warn!(cause = scrub(&e.to_string(), &[&token]), "Telegram unreachable at start; messages will be retried");
            String::new()
        }
    };
    Some((bot, token, username))
}

/// Registers the command menu beside the start, retried with backoff until Telegram takes it (it
/// may be down right now).
fn register_menu(stop: &tokio_util::sync::CancellationToken, bot: Bot, token: String) {
    // Telegram wants command names without the leading slash.
    let menu: Vec<teloxide::types::BotCommand> = Command::bot_commands()
        .into_iter()
        .map(|c| teloxide::types::BotCommand::new(c.command.trim_start_matches('/'), c.description))
        .collect();
    crate::tasks::spawn_until(stop, async move {
        let mut wait = Duration::from_secs(2);
        loop {
            match bot.set_my_commands(menu.clone()).await {
                Ok(_) => {
                    debug!("Telegram command menu registered");
                    return;
                }
                Err(e) => warn!(cause = scrub(&e.to_string(), &[&token]), "setMyCommands failed; trying again"),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(120));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OPERATOR, Price, Shares, Side, Usdc, test_fill};
    use crate::risk::DenyReason;
    use crate::store::Orphan;

    fn rejected(wallet: alloy::primitives::Address) -> Event {
        let fill = crate::domain::TargetFill { wallet, ..test_fill(Side::Sell, Shares(1_000_000), Price(500_000)) };
        Event::Rejected { fill, label: "close".into(), reason: DenyReason::NoPosition, market: None }
    }

    fn orphaned(copied: bool) -> Event {
        let fill = test_fill(Side::Buy, Shares(1_000_000), Price(500_000));
        Event::Orphaned {
            tx: alloy::primitives::B256::ZERO,
            fills: vec![Orphan { fill, copied }],
            cause: "dropped".into(),
        }
    }

    #[test]
    fn close_outcomes_are_answers_and_copies_of_trades_that_never_happened_are_alerts() {
        let corrected = Event::Corrected {
            order: "0x01".into(),
            token_id: alloy::primitives::U256::from(7),
            booked: Usdc(5_000_000),
            chain: Usdc(4_990_000),
            realized: Usdc(0),
        };
        let target = alloy::primitives::Address::with_last_byte(1);
        // (event, class)
        let cases = [
            (rejected(OPERATOR), Class::Direct),
            (rejected(target), Class::Routine),
            (orphaned(true), Class::Alert),
            (orphaned(false), Class::Routine),
            (corrected, Class::Alert),
            (Event::Error { message: "x".into() }, Class::Alert),
        ];
        for (ev, want) in cases {
            assert_eq!(class_of(&ev, operators_own(&ev)), want, "{ev:?}");
        }
    }

    #[test]
    fn twelve_close_outcomes_are_twelve_messages() {
        let mut o = outbox::Outbox::new(100);
        for i in 0..12 {
            let ev = rejected(OPERATOR);
            o.push(Outgoing::text("rejected", format!("close {i}"), class_of(&ev, operators_own(&ev)), false));
        }
        let texts: Vec<String> = std::iter::from_fn(|| o.pop()).map(|m| m.text).collect();
        assert_eq!(texts, (0..12).map(|i| format!("close {i}")).collect::<Vec<_>>());
    }
}
