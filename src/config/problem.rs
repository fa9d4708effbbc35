//! One configuration problem: where it is (file, entry, field) and what is wrong.

use std::fmt;

use serde::Serialize;

/// A configuration problem, precise enough to fix without guessing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file (or "environment") the problem is in.
    pub file: String,
    /// The entry, e.g. `wallets[2] (whale-1)`, when the problem is inside one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// The field, e.g. `sizing.multiplier`.
    pub field: String,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl Problem {
    /// A problem in `file` at `field`.
    pub fn new(file: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { file: file.into(), entry: None, field: field.into(), message: message.into() }
    }

    /// The same problem, inside `entry`.
    #[must_use]
    pub fn in_entry(mut self, entry: impl Into<String>) -> Self {
        self.entry = Some(entry.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if let Some(e) = &self.entry {
            write!(f, "{e}: ")?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A value the operator wrote where it does not belong, for a message: quoted when short, named by
/// its length when long (a long string in the wrong place may be a key or a token).
#[must_use]
pub fn quoted(s: &str) -> String {
    let n = s.chars().count();
    if n > 24 { format!("a string of {n} characters") } else { format!("{s:?}") }
}

/// An unknown key as a message names it: as written when short and plain, escaped otherwise (a
/// newline in it must not forge a line of the log or of a Telegram message), and never when it has
/// a private key's shape (pasted as a key by mistake).
#[must_use]
pub fn shown_key(k: &str) -> String {
    if looks_like_key(k) {
        return "(a key of 64 hex digits, not shown)".to_owned();
    }
    if k.chars().count() <= 40 && !k.chars().any(char::is_control) {
        return k.to_owned();
    }
    quoted(&k.escape_debug().to_string())
}

/// Whether `s` has the shape of a private key (64 hex digits, with or without 0x).
#[must_use]
pub fn looks_like_key(s: &str) -> bool {
    let bare = s.trim().strip_prefix("0x").unwrap_or(s.trim());
    bare.len() == 64 && bare.chars().all(|c| c.is_ascii_hexdigit())
}

/// What to say of a value that has the shape of a private key.
pub const KEY_SHAPED: &str =
    "64 hex digits, the length of a private key: never put a key there, and if it was one, treat it as exposed";

/// Why `s` is not an address, without quoting it: what an operator pastes in an address field is
/// sometimes the private key, and this text is printed, logged, journaled and sent to Telegram.
#[must_use]
pub fn not_an_address(s: &str) -> String {
    let bare = s.strip_prefix("0x").unwrap_or(s);
    let all_hex = bare.chars().all(|c| c.is_ascii_hexdigit());
    let got = if looks_like_key(s) {
        KEY_SHAPED.to_owned()
    } else if !s.starts_with("0x") {
        format!("{} characters not starting with 0x", s.chars().count())
    } else if all_hex {
        format!("0x and {} hex digits", bare.len())
    } else {
        format!("{} characters, not all hex digits", s.chars().count())
    };
    format!("is not an address: expected 0x followed by 40 hex digits, got {got} (the value is not repeated here)")
}

/// `text` with every run of exactly 64 hex digits (with or without 0x) masked: for files copied
/// whole into evidence (an incident bundle), where a private key pasted by mistake may sit. A
/// market's condition id has the same shape and is masked too; a longer or shorter run is kept.
#[must_use]
pub fn mask_key_shaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphanumeric()) {
        let (before, word) = rest.split_at(start);
        out.push_str(before);
        let end = word.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(word.len());
        let (w, after) = word.split_at(end);
        out.push_str(if looks_like_key(w) { "<64 hex digits masked>" } else { w });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Formats a list of problems, one per line.
#[must_use]
pub fn render(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shaped_runs_are_masked_and_nothing_else() {
        let key = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
        // (text, masked)
        for (text, masked) in [
            (format!("\"label\": \"{key}\""), "\"label\": \"<64 hex digits masked>\""),
            (format!("0x{key},"), "<64 hex digits masked>,"),
            (format!("{key}0"), ""),
            ("0x000000000000000000000000000000000000dEaD é".to_owned(), "0x000000000000000000000000000000000000dEaD é"),
            (String::new(), ""),
        ] {
            let want = if masked.is_empty() { text.clone() } else { masked.to_owned() };
            assert_eq!(mask_key_shaped(&text), want, "{text}");
        }
    }
}
