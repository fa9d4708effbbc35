//! One message straight to every authorized chat, without the daemon: how the operator hears
//! that it has stopped for good (systemd runs `polycopy alert --direct` when the unit fails).

use std::time::Duration;

use teloxide::prelude::*;

use crate::config::env::{TelegramReach, scrub};

/// Sends `text` to every chat of `to`, each once, as plain text. Returns how many took it, and
/// what went wrong for the others (the token scrubbed).
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
    let mut took = 0;
    let mut failed = Vec::new();
    for chat in &to.chats {
        match bot.send_message(ChatId(*chat), text).await {
            Ok(_) => took += 1,
            Err(e) => failed.push(format!("chat {chat}: {}", scrub(&e.to_string(), &[&token]))),
        }
    }
    (took, failed)
}
