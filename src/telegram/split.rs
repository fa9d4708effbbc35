//! Telegram's size limits met by splitting, never by cutting: a text longer than one message
//! becomes several, and a report whose text does not fit a picture's caption is sent as the
//! picture with its title, then the text. What an operator asked for arrives whole.

use crate::telegram::outbox::Outgoing;

/// The longest text of one message, in characters (Telegram's limit).
pub const TEXT_MAX: usize = 4096;
/// The longest caption of a picture, in characters (Telegram's limit).
pub const CAPTION_MAX: usize = 1024;

/// `m` as the messages to send, in order, each within Telegram's limits. Buttons go with the
/// last part.
#[must_use]
pub fn parts(m: Outgoing) -> Vec<Outgoing> {
    let mut out = Vec::new();
    let mut rest = m.clone();
    if m.photo.is_some() {
        if m.text.chars().count() <= CAPTION_MAX {
            return vec![m];
        }
        let title = m.text.lines().next().unwrap_or_default();
        out.push(Outgoing { text: chunks(title, CAPTION_MAX).swap_remove(0), buttons: Vec::new(), ..m.clone() });
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

/// `text` in pieces of at most `max` characters, cut between lines where it can (HTML tags are
/// kept within a line), inside a line only when one line alone is too long. Never empty.
fn chunks(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0;
    let mut started = false;
    for line in text.trim_end_matches('\n').split('\n') {
        let len = line.chars().count();
        if started && cur_len + 1 + len <= max {
            cur.push('\n');
            cur.push_str(line);
            cur_len += 1 + len;
            continue;
        }
        if started {
            out.push(std::mem::take(&mut cur));
        }
        let chars: Vec<char> = line.chars().collect();
        let mut pieces = chars.chunks(max.max(1)).map(|p| p.iter().collect::<String>()).collect::<Vec<_>>();
        // The line's last piece may be followed by the next lines.
        cur = pieces.pop().unwrap_or_default();
        cur_len = cur.chars().count();
        out.extend(pieces);
        started = true;
    }
    out.push(cur);
    out
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
        assert!(p.iter().all(|m| m.text.chars().count() <= TEXT_MAX));
        assert_eq!(p.iter().map(|m| m.text.clone()).collect::<Vec<_>>().join("\n"), long, "nothing lost");
        assert!(p[0].buttons.is_empty() && p[1].buttons.is_empty() && p[2].buttons.len() == 1);
    }

    #[test]
    fn a_report_too_long_for_a_caption_is_the_picture_with_its_title_then_the_text() {
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
