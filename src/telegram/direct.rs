//! One message straight to every authorized chat, without the daemon: how the operator hears
//! that it has stopped for good (systemd runs `polycopy alert --direct` when the unit fails).

use std::time::Duration;

use teloxide::RequestError;
use teloxide::prelude::*;
use tokio::time::Instant;

use super::delivery::{Failure, classify};
use crate::config::env::{TelegramReach, scrub};

/// How long the alert keeps trying: within the unit's 60 s start timeout (systemd runs it once).
const TRYING_FOR: Duration = Duration::from_secs(45);

/// Sends `text` to every chat of `to`, as plain text, until each takes it or refuses it for good:
/// a 429's wait, a network error or a 5xx is retried (this is the one message saying nothing is
/// copied any more, and nothing runs it again), a group moved to a supergroup is followed to its
/// new id. Returns how many took it, and what went wrong for the others (the token scrubbed).
pub async fn send(to: &TelegramReach, text: &str) -> (usize, Vec<String>) {
    let token = secrecy::ExposeSecret::expose_secret(&to.token).to_owned();
    let client = match teloxide::net::default_reqwest_settings().timeout(Duration::from_secs(15)).build() {
        Ok(c) => c,
        Err(e) => return (0, vec![scrub(&e.to_string(), &[&token])]),
    };
    let url = match to.api_url.parse() {
        Ok(u) => u,
        Err(e) => return (0, vec![format!("TELEGRAM_API_URL: {e}")]),
    };
    let bot = Bot::with_client(token.clone(), client).set_api_url(url);
    let deadline = Instant::now() + TRYING_FOR;
    let mut took = 0;
    let mut failed = Vec::new();
    for (k, chat) in to.chats.iter().enumerate() {
        // Each chat its share of what is left: one that keeps failing never starves the others.
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(to.chats.len() - k).unwrap_or(1);
        match send_one(&bot, *chat, text, Instant::now() + share, &token).await {
            Ok(()) => took += 1,
            Err(e) => failed.push(format!("chat {chat}: {e}")),
        }
    }
    (took, failed)
}

/// One chat, retried until `deadline` while Telegram's refusal is not for good.
async fn send_one(bot: &Bot, chat: i64, text: &str, deadline: Instant, token: &str) -> Result<(), String> {
    let mut to = chat;
    let mut wait = Duration::from_secs(1);
    loop {
        // Each try within what is left (a send may otherwise hang for the client's 15 s).
        let e = match tokio::time::timeout_at(deadline, bot.send_message(ChatId(to), text)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => return Err("no answer from Telegram in the time left".to_owned()),
        };
        let cause = scrub(&e.to_string(), &[token]);
        let pause = match &e {
            RequestError::MigrateToChatId(new) if to == chat => {
                to = new.0;
                Duration::ZERO
            }
            RequestError::RetryAfter(s) => s.duration(),
            _ => match classify(&e, token) {
                Failure::Transient(_) => {
                    let now = wait;
                    wait = (wait * 2).min(Duration::from_secs(8));
                    now
                }
                Failure::Permanent(_) | Failure::BadMessage(_) => return Err(cause),
            },
        };
        if Instant::now() + pause >= deadline {
            return Err(format!("{cause} (still failing after {} s)", TRYING_FOR.as_secs()));
        }
        tokio::time::sleep(pause).await;
    }
}
