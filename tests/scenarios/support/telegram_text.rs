//! What Telegram checks in a message's text before it sends it, as the real Bot API does: with
//! `parse_mode` HTML the tags must be supported and balanced, and the length limits (4096 for a
//! text, 1024 for a caption) count UTF-16 code units of the text after its entities are parsed
//! (an emoji outside the Basic Multilingual Plane counts two). A refusal carries Telegram's own
//! words ("Bad Request: message is too long").

/// The tags Telegram's HTML style accepts.
const TAGS: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "a",
    "code",
    "pre",
    "tg-spoiler",
    "span",
    "blockquote",
    "tg-emoji",
];

/// The text as Telegram shows it, or its refusal.
fn parsed(text: &str, html: bool) -> Result<String, String> {
    if !html {
        return Ok(text.to_owned());
    }
    let mut out = String::new();
    let mut open: Vec<String> = Vec::new();
    let mut rest = text;
    let at = |r: &str| text.len() - r.len();
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            let Some(end) = rest.find('>') else {
                return Err(format!(
                    "Bad Request: can't parse entities: Can't find end of the tag at byte offset {}",
                    at(rest)
                ));
            };
            let tag = &rest[1..end];
            let (closing, body) = tag.strip_prefix('/').map_or((false, tag), |b| (true, b));
            // A name right after the bracket: "< b>" is no tag.
            let name = if body.starts_with(char::is_whitespace) {
                String::new()
            } else {
                body.split_whitespace().next().unwrap_or("").to_ascii_lowercase()
            };
            if !TAGS.contains(&name.as_str()) {
                return Err(format!(
                    "Bad Request: can't parse entities: Unsupported start tag \"{name}\" at byte offset {}",
                    at(rest)
                ));
            }
            if closing {
                match open.pop() {
                    Some(o) if o == name => {}
                    _ => {
                        return Err(format!(
                            "Bad Request: can't parse entities: Unmatched end tag at byte offset {}, expected \"</{}>\", found \"</{name}>\"",
                            at(rest),
                            open.last().cloned().unwrap_or_default()
                        ));
                    }
                }
            } else {
                open.push(name);
            }
            rest = &rest[end + 1..];
        } else if c == '&' {
            let entity = rest.find(';').map(|e| &rest[..=e]);
            let decoded = match entity {
                Some("&lt;") => Some(("<", 4)),
                Some("&gt;") => Some((">", 4)),
                Some("&amp;") => Some(("&", 5)),
                Some("&quot;") => Some(("\"", 6)),
                _ => None,
            };
            match decoded {
                Some((s, n)) => {
                    out.push_str(s);
                    rest = &rest[n..];
                }
                None => {
                    out.push('&');
                    rest = &rest[1..];
                }
            }
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if let Some(o) = open.last() {
        return Err(format!(
            "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"{o}\""
        ));
    }
    Ok(out)
}

/// Telegram's refusal of a message's text (`caption`: a picture's) under `parse_mode`, if any.
pub fn refusal(text: &str, parse_mode: Option<&str>, caption: bool) -> Option<String> {
    let html = parse_mode.is_some_and(|m| m.eq_ignore_ascii_case("html"));
    let shown = match parsed(text, html) {
        Ok(s) => s,
        Err(e) => return Some(e),
    };
    let units = shown.encode_utf16().count();
    if caption && units > 1024 {
        return Some("Bad Request: message caption is too long".into());
    }
    if !caption && units > 4096 {
        return Some("Bad Request: message is too long".into());
    }
    if !caption && shown.trim().is_empty() {
        return Some("Bad Request: message text is empty".into());
    }
    None
}

#[test]
fn telegram_refuses_what_the_real_one_refuses() {
    // (text, parse mode, caption, refused)
    let long_emoji = "🐋".repeat(2049);
    let cases: &[(&str, Option<&str>, bool, bool)] = &[
        ("<b>whale</b> &amp; co", Some("HTML"), false, false),
        ("<b>whale", Some("HTML"), false, true),
        ("a < b", Some("HTML"), false, true),
        ("a < b", None, false, false),
        ("<b><i>x</b></i>", Some("HTML"), false, true),
        ("AT&T", Some("HTML"), false, false),
        ("< b>x</b>", Some("HTML"), false, true),
        (&long_emoji, None, false, true),
        (&long_emoji[..4 * 2048], None, false, false),
        ("", None, false, true),
    ];
    for (text, mode, caption, refused) in cases {
        assert_eq!(refusal(text, *mode, *caption).is_some(), *refused, "{text:.40}");
    }
}
