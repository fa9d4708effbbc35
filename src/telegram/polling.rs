//! The long poll for commands: updates fetched from Telegram, each handled on its own task. A
//! webhook left on the token is removed (it would refuse every poll while sends still work), and
//! polls failing for a minute are said once and shown in `/health`: a /halt typed in Telegram is
//! not received meanwhile.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::AllowedUpdate;
use tracing::{debug, error, info, warn};

use super::commands::{Authorized, Ops, handle_update};
use crate::config::env::scrub;
use crate::telegram::outbox::{Class, Outgoing};

/// Long-polls for updates until the process ends.
pub async fn run(bot: Bot, ops: Ops, chats: Authorized, poll_timeout_s: u32, username: String, token: String) {
    let chats = Arc::new(chats);
    let mut offset: i32 = 0;
    let mut backoff = Duration::from_millis(500);
    let mut username = username;
    // When Telegram last answered 409 (another process polls this bot).
    let mut last_conflict: Option<std::time::Instant> = None;
    // Since when polls have failed without a break (a /halt typed in Telegram is not received).
    let mut failing_since: Option<std::time::Instant> = None;
    // A webhook on the token (another tool, an earlier bot) makes every poll fail with 409, while
    // sends still work: the reports would flow and no command would ever arrive. As teloxide's own
    // polling does, it is removed first (pending updates kept).
    // Bounded: the first poll, which may bring a /halt, must not wait long behind it.
    match tokio::time::timeout(Duration::from_secs(2), bot.delete_webhook()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => debug!(cause = scrub(&e.to_string(), &[&token]), "deleteWebhook failed; polling anyway"),
        Err(_) => debug!(
            "deleteWebhook did not answer within 2 s; polling anyway (a webhook is removed when a poll meets it)"
        ),
    }
    // When the bot's name was last asked for (while unknown).
    let mut name_asked: Option<std::time::Instant> = None;
    loop {
        // Unknown when Telegram was down at start: "/cmd@ourbot" needs our name to be recognised.
        // Asked now and then, briefly: teloxide holds a 5xx answer 10 s, and a poll must not wait.
        if username.is_empty() && name_asked.is_none_or(|t| t.elapsed() >= NAME_ASKED_EVERY) {
            name_asked = Some(std::time::Instant::now());
            if let Ok(Ok(me)) = tokio::time::timeout(NAME_WAIT, bot.get_me()).await {
                username = me.username().to_owned();
                info!(bot = %username, "Telegram answers: bot name known");
            }
        }
        let req = bot.get_updates().offset(offset).timeout(poll_timeout_s).allowed_updates(vec![
            AllowedUpdate::Message,
            AllowedUpdate::EditedMessage,
            AllowedUpdate::CallbackQuery,
        ]);
        match req.await {
            Ok(updates) => {
                backoff = Duration::from_millis(500);
                if failing_since.take().is_some()
                    && ops.metrics.telegram_commands_failing.swap(false, Ordering::Relaxed)
                {
                    info!("Telegram: commands are fetched again");
                }
                // Two pollers take turns: one poll of ours answered says little. Only a while
                // without any 409 says the other one is gone.
                let quiet = Duration::from_secs(u64::from(poll_timeout_s) * 2 + 5);
                if last_conflict.is_some_and(|t| t.elapsed() > quiet)
                    && ops.metrics.telegram_poll_conflict.swap(false, Ordering::Relaxed)
                {
                    last_conflict = None;
                    info!("Telegram: this process alone polls the bot's commands again");
                }
                for u in updates {
                    offset = i32::try_from(u.id.0).unwrap_or(i32::MAX).saturating_add(1);
                    // Each update on its own task: a /halt never waits behind a /balance asking
                    // the CLOB, a close button, or a Bot API call that hangs.
                    let (bot, ops, chats, username, token) =
                        (bot.clone(), ops.clone(), chats.clone(), username.clone(), token.clone());
                    actix::spawn(async move { handle_update(&bot, &ops, &chats, &username, u.kind, &token).await });
                }
            }
            Err(teloxide::RequestError::RetryAfter(s)) => tokio::time::sleep(s.duration()).await,
            // Another process polls this bot: each command reaches only one of us (a /halt maybe
            // the other instance). Said once, shown in /health, and polled again at once, so this
            // instance keeps getting its share rather than backing off from it.
            Err(teloxide::RequestError::Api(teloxide::ApiError::TerminatedByOtherGetUpdates)) => {
                last_conflict = Some(std::time::Instant::now());
                if !ops.metrics.telegram_poll_conflict.swap(true, Ordering::Relaxed) {
                    let message = "another process polls this Telegram bot's commands (409 Conflict): each \
                                   command reaches only one of them. Give each instance its own bot token"
                        .to_owned();
                    error!("{message}");
                    let alert = Outgoing::text("error", format!("ERROR: {message}"), Class::Alert, false);
                    let _ = ops.out.try_push(alert);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                let cause = scrub(&e.to_string(), &[&token]);
                warn!(cause, "Telegram getUpdates failed; retrying");
                if webhook_active(&e) {
                    info!("a webhook is set on this bot's token: removing it, so that commands are polled");
                    match tokio::time::timeout(Duration::from_secs(5), bot.delete_webhook()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => warn!(cause = scrub(&e.to_string(), &[&token]), "deleteWebhook failed"),
                        Err(_) => warn!("deleteWebhook did not answer within 5 s"),
                    }
                }
                commands_failing(&ops, *failing_since.get_or_insert_with(std::time::Instant::now), &cause);
                tokio::time::sleep(backoff).await;
                // A long poll costs Telegram little: a /halt typed while it comes back is fetched
                // within seconds, not half a minute.
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// How long the bot's name is waited for, while unknown, before a poll or a command goes on.
pub(super) const NAME_WAIT: Duration = Duration::from_millis(500);
/// How often the bot's name is asked for while unknown.
const NAME_ASKED_EVERY: Duration = Duration::from_secs(30);

/// How long polls for commands may fail before the operator is told (once) and `/health` says so.
const COMMANDS_FAILING_AFTER: Duration = Duration::from_secs(60);

/// Whether Telegram refused a poll because a webhook is set on the token ("Conflict: can't use
/// getUpdates method while webhook is active"; teloxide names it only without the prefix).
fn webhook_active(e: &teloxide::RequestError) -> bool {
    match e {
        teloxide::RequestError::Api(teloxide::ApiError::CantGetUpdates) => true,
        teloxide::RequestError::Api(teloxide::ApiError::Unknown(text)) => text.contains("webhook is active"),
        _ => false,
    }
}

/// Polls have failed since `since`: past [`COMMANDS_FAILING_AFTER`], shown in `/health` and said
/// once (the alert waits in the outbox if Telegram is down altogether).
fn commands_failing(ops: &Ops, since: std::time::Instant, cause: &str) {
    if since.elapsed() < COMMANDS_FAILING_AFTER || ops.metrics.telegram_commands_failing.swap(true, Ordering::Relaxed) {
        return;
    }
    let message = format!(
        "Telegram commands cannot be fetched for {} s ({cause}): a /halt typed here is not received until they \
         are; `polycopy halt` on the server works",
        since.elapsed().as_secs()
    );
    error!("{message}");
    let _ = ops.out.try_push(Outgoing::text("error", format!("ERROR: {message}"), Class::Alert, false));
}
