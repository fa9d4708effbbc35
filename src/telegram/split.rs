//! Telegram's size limits met by splitting, never by cutting: a text longer than one message
//! becomes several, and a report whose text does not fit a picture's caption is sent as the
//! picture with its title, then the text. What an operator asked for arrives whole.
//!
//! Lengths are measured in UTF-16 code units, the unit of the Bot API's entity offsets (an emoji
//! such as 🟢 is two): never less than a count of characters, so a part fits whichever of the two
//! Telegram applies. Counted in characters, a reply full of emoji could pass for 4096 and be
//! refused as too long, and with it the whole reply.

use crate::telegram::outbox::Outgoing;

/// The longest text of one message, in UTF-16 code units (Telegram's limit).
pub const TEXT_MAX: usize = 4096;
/// The longest caption of a picture, in UTF-16 code units (Telegram's limit).
pub const CAPTION_MAX: usize = 1024;

/// The length of `s` as Telegram counts it: UTF-16 code units. Tags and entities of an HTML text
/// are counted too, which Telegram does not: a part is at most as long as measured, never longer.
#[must_use]
pub fn units(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// `m` as the messages to send, in order, each within Telegram's limits. Buttons go with the
/// last part.
#[must_use]
pub fn parts(mut m: Outgoing) -> Vec<Outgoing> {
    // Measured as it will leave: a secret redacted can grow (`&lt;redacted&gt;` for a short one).
    m.text = if m.html { crate::config::env::redact_html(&m.text) } else { crate::config::env::redact(&m.text) };
    // Nothing to say is not sent (Telegram refuses an empty text).
    if m.photo.is_none() && m.text.trim().is_empty() {
        return Vec::new();
    }
    // A line cut in two would cut its tags (`<b>` in one part, `</b>` in the next), which Telegram
    // refuses: such a text goes as plain text, whole, rather than formatted and refused.
    if m.html && m.text.split('\n').any(|l| units(l) > TEXT_MAX) {
        m.text = super::format::plain(&m.text);
        m.html = false;
    }
    let mut out = Vec::new();
    let mut rest = m.clone();
    if m.photo.is_some() {
        if units(&m.text) <= CAPTION_MAX {
            return vec![m];
        }
        let title = m.text.lines().next().unwrap_or_default();
        // A title cut in its tags would be refused: one too long goes plain.
        let (title, html) = if m.html && units(title) > CAPTION_MAX {
            (super::format::plain(title), false)
        } else {
            (title.to_owned(), m.html)
        };
        let caption = chunks(&title, CAPTION_MAX).swap_remove(0);
        out.push(Outgoing { text: caption, buttons: Vec::new(), html, ..m.clone() });
        rest.photo = None;
    }
    let texts = chunks(&rest.text, TEXT_MAX);
    let last = texts.len() - 1;
    for (i, text) in texts.into_iter().enumerate() {
        let buttons = if i == last { rest.buttons.clone() } else { Vec::new() };
        out.push(Outgoing { text, buttons, photo: None, ..rest.clone() });
    }
    out
}

/// `text` in pieces of at most `max` UTF-16 units, cut between lines where it can (HTML tags are
/// kept within a line), inside a line only when one line alone is too long, never inside a
/// character. Never empty.
fn chunks(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0;
    let mut started = false;
    for line in text.trim_end_matches('\n').split('\n') {
        let len = units(line);
        if started && cur_len + 1 + len <= max {
            cur.push('\n');
            cur.push_str(line);
            cur_len += 1 + len;
            continue;
        }
        if started {
            out.push(std::mem::take(&mut cur));
        }
        let mut pieces = cut(line, max.max(2));
        // The line's last piece may be followed by the next lines.
        cur = pieces.pop().unwrap_or_default();
        cur_len = units(&cur);
        out.extend(pieces);
        started = true;
    }
    out.push(cur);
    out
}

/// One line in pieces of at most `max` (≥ 2) UTF-16 units, whole characters each. Never empty.
fn cut(line: &str, max: usize) -> Vec<String> {
    let mut pieces = vec![String::new()];
    let mut len = 0;
    for c in line.chars() {
        if len + c.len_utf16() > max {
            pieces.push(String::new());
            len = 0;
        }
        len += c.len_utf16();
        if let Some(p) = pieces.last_mut() {
            p.push(c);
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telegram::outbox::Class;

    fn text(t: &str) -> Outgoing {
        Outgoing::text("reply", t.into(), Class::Direct, false)
    }

    #[test]
    fn chunks_cut_between_lines_and_lose_nothing() {
        // (text, max, pieces)
        let cases: &[(&str, usize, &[&str])] = &[
            ("", 10, &[""]),
            ("short", 10, &["short"]),
            ("aaaa\nbbbb\ncccc", 10, &["aaaa\nbbbb", "cccc"]),
            ("aaaa\nbbbb\n", 10, &["aaaa\nbbbb"]),
            ("abcdefghijklmnopqrstuvwxyz", 10, &["abcdefghij", "klmnopqrst", "uvwxyz"]),
            ("ab\ncdefghijklmn\nop", 5, &["ab", "cdefg", "hijkl", "mn\nop"]),
            ("ééééé\néé", 5, &["ééééé", "éé"]),
            // An emoji outside the BMP is two units, and is never cut in half.
            ("🐋🐋🐋", 4, &["🐋🐋", "🐋"]),
            ("a🐋🐋", 4, &["a🐋", "🐋"]),
            ("🐋🐋\n🐋", 4, &["🐋🐋", "🐋"]),
            ("ab\n🐋", 5, &["ab\n🐋"]),
            ("ab\n🐋", 4, &["ab", "🐋"]),
        ];
        for (text, max, want) in cases {
            assert_eq!(chunks(text, *max), *want, "{text:?}");
        }
    }

    #[test]
    fn a_long_reply_is_several_messages_with_its_buttons_on_the_last() {
        let line = "x".repeat(100);
        let long = vec![line.as_str(); 100].join("\n");
        let mut m = text(&long);
        m.buttons = vec![("Resume".into(), "resume:1".into())];
        let p = parts(m);
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|m| units(&m.text) <= TEXT_MAX));
        assert_eq!(p.iter().map(|m| m.text.clone()).collect::<Vec<_>>().join("\n"), long, "nothing lost");
        assert!(p[0].buttons.is_empty() && p[1].buttons.is_empty() && p[2].buttons.len() == 1);
    }

    #[test]
    fn an_empty_text_is_not_sent() {
        assert!(parts(text("")).is_empty());
        assert!(parts(text("\n\n")).is_empty());
        let mut chart = text("");
        chart.photo = Some(vec![1]);
        assert_eq!(parts(chart).len(), 1, "a picture without a caption is still sent");
    }

    #[test]
    fn a_report_title_too_long_for_a_caption_goes_plain_rather_than_cut_in_its_tags() {
        let title = format!("<b>{}</b>", "r".repeat(1100));
        let mut m = text(&format!("{title}\nP&amp;L 3 USDC"));
        (m.html, m.photo) = (true, Some(vec![1]));
        let p = parts(m);
        assert!(!p[0].html && p[0].photo.is_some() && units(&p[0].text) <= CAPTION_MAX, "{:?}", p[0].html);
        assert!(!p[0].text.contains('<'));
        assert!(p[1].html && p[1].text.ends_with("P&amp;L 3 USDC"), "the text keeps its formatting");
    }

    #[test]
    fn a_reply_of_emoji_is_split_by_what_telegram_counts() {
        // 100 lines of 30 whales and a name: 3,100 characters, 6,100 UTF-16 units.
        let line = format!("{} {}", "🐋".repeat(30), "whale");
        let long = vec![line.as_str(); 100].join("\n");
        assert!(long.chars().count() < TEXT_MAX, "one message if counted in characters");
        let p = parts(text(&long));
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|m| units(&m.text) <= TEXT_MAX));
        assert_eq!(p.iter().map(|m| m.text.clone()).collect::<Vec<_>>().join("\n"), long, "nothing lost");
    }

    #[test]
    fn an_html_text_with_a_line_too_long_for_one_message_goes_plain_and_whole() {
        let long = format!("<b>Targets</b>\n{}", "&lt;🐋&gt;".repeat(2000));
        let mut m = text(&long);
        m.html = true;
        let p = parts(m);
        assert!(p.iter().all(|m| !m.html && units(&m.text) <= TEXT_MAX));
        assert_eq!(p[0].text, "Targets");
        let line: String = p[1..].iter().map(|m| m.text.clone()).collect();
        assert_eq!(line, "<🐋>".repeat(2000), "nothing lost");
        // Lines that fit keep their formatting.
        let mut short = text("<b>Targets</b>\nwhale");
        short.html = true;
        assert!(parts(short)[0].html);
    }

    #[test]
    fn a_report_for_a_caption_is_the_picture_with_its_title_then_the_text() {
        let mut short = text("Daily report\nP&L 3 USDC");
        short.photo = Some(vec![1, 2, 3]);
        assert_eq!(parts(short.clone()).len(), 1, "a short caption stays with its picture");
        let long = format!("Daily report\n{}", "quality line\n".repeat(200));
        let mut m = text(&long);
        m.photo = Some(vec![1, 2, 3]);
        let p = parts(m);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].text.as_str(), p[0].photo.is_some()), ("Daily report", true));
        assert_eq!((p[1].text.as_str(), p[1].photo.is_none()), (long.trim_end(), true));
    }
}
