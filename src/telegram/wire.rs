//! The wire to Telegram for one chat: its pacing under Telegram's per-chat and per-group limits,
//! and one message (text, buttons or a picture) sent as one request. Retries and parking are the
//! delivery worker's.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, InputFile, ParseMode};

use crate::telegram::delivery::DeliveryConfig;
use crate::telegram::outbox::Outgoing;

/// One chat's limiters: one message per `1/per_second` s, and for groups (negative ids) also the
/// per-minute limit, without bursts.
pub(super) struct Pacer {
    per_chat: DefaultDirectRateLimiter,
    per_group: Option<DefaultDirectRateLimiter>,
}

impl Pacer {
    /// The limiters for `chat` under `cfg`.
    pub(super) fn new(cfg: DeliveryConfig, chat: i64) -> Self {
        let per_s = NonZeroU32::new(cfg.per_chat_per_second).unwrap_or(NonZeroU32::MIN);
        let per_min = NonZeroU32::new(cfg.per_group_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            per_chat: RateLimiter::direct(Quota::per_second(per_s).allow_burst(NonZeroU32::MIN)),
            per_group: (chat < 0).then(|| RateLimiter::direct(Quota::per_minute(per_min).allow_burst(NonZeroU32::MIN))),
        }
    }

    /// Waits until both limiters allow the next message.
    pub(super) async fn wait(&self) {
        self.per_chat.until_ready().await;
        if let Some(g) = &self.per_group {
            g.until_ready().await;
        }
    }
}

/// Sends `m` to `chat` as one request: a picture with its caption, or text with its buttons.
pub(super) async fn send(bot: &Bot, chat: i64, m: &Outgoing) -> Result<(), RequestError> {
    // The last stop before a message leaves the host: no secret this process knows goes with it,
    // whatever error text a report quotes.
    let text = if m.html { crate::config::env::redact_html(&m.text) } else { crate::config::env::redact(&m.text) };
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
        req = req.caption(truncate(&text, 1024)).disable_notification(m.silent);
        if m.html {
            req = req.parse_mode(ParseMode::Html);
        }
        req.await?;
        return Ok(());
    }
    let mut req = bot.send_message(ChatId(chat), truncate(&text, 4096)).disable_notification(m.silent);
    if m.html {
        req = req.parse_mode(ParseMode::Html).link_preview_options(teloxide::types::LinkPreviewOptions {
            is_disabled: true,
            url: None,
            prefer_small_media: false,
            prefer_large_media: false,
            show_above_text: false,
        });
    }
    if let Some(k) = markup {
        req = req.reply_markup(k);
    }
    req.await?;
    Ok(())
}

/// A last guard (the parts were already measured): cut to `max` UTF-16 units, as Telegram counts,
/// at a character boundary, with a marker.
fn truncate(s: &str, max: usize) -> String {
    if super::split::units(s) <= max {
        return s.to_owned();
    }
    let mut t = String::new();
    let mut len = 0;
    for c in s.chars() {
        // Room for the '…' (one unit) at the end.
        if len + c.len_utf16() >= max {
            break;
        }
        len += c.len_utf16();
        t.push(c);
    }
    t.push('…');
    t
}
