//! Where systemd and the commands would read the installation's `polycopy.env` differently.
//!
//! The service gets its environment from systemd's `EnvironmentFile=`; the commands an operator
//! runs (`check-config`, `doctor`, `reconcile`, ...) read the same file with a `.env` reader. The
//! two disagree on a few constructs, and then `check-config` passes values the daemon never sees:
//! systemd keeps a `# comment` after a value as part of the value (systemd issue 12527), ignores
//! lines that start with `export`, and treats `$` otherwise than the `.env` reader, which expands
//! it. Such a line is refused, by number, so the operator fixes it before the daemon fails on it.

/// Why systemd would read `line` otherwise than the commands do; `None` when both agree.
#[must_use]
pub fn differs_under_systemd(line: &str) -> Option<&'static str> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
        return None;
    }
    if line.strip_prefix("export").is_some_and(|rest| rest.starts_with(char::is_whitespace)) {
        return Some("starts with `export`, which systemd does not take (the daemon would not get the variable)");
    }
    let (name, raw) = line.split_once('=')?;
    // systemd takes only names of letters, digits and `_` (a byte-order mark a Windows editor put
    // before the first name included), and logs any other line whole, value and all, each start.
    let name = name.trim();
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Some(
            "has a name systemd does not take (only letters, digits and `_`; a byte-order mark at the start of the \
             file counts): it would log the whole line, value included, and the daemon would not get the variable",
        );
    }
    const COMMENT: &str = "has a `# comment` after its value, which systemd keeps as part of the value (put the comment on a line of its own)";
    const DOLLAR: &str =
        "has a `$` in its value, which the commands expand and systemd does not read alike (write the value out)";
    let value = raw.trim_start();
    // A comment right after `=` (nothing else on the line) is a comment to the commands only.
    if value.starts_with('#') && raw.len() > value.len() {
        return Some(COMMENT);
    }
    if let Some(q) = value.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = value[1..].find(q)?;
        let (inside, after) = (&value[1..=end], &value[end + 2..]);
        // Single quotes expand nothing for either reader.
        if q == '"' && inside.contains('$') {
            return Some(DOLLAR);
        }
        return (!after.trim().is_empty()).then_some(COMMENT);
    }
    let comment = value.char_indices().any(|(i, c)| c == '#' && value[..i].ends_with(char::is_whitespace));
    if comment {
        return Some(COMMENT);
    }
    value.contains('$').then_some(DOLLAR)
}

/// The first line of `text` that systemd would read otherwise than the commands: its number
/// (from 1) and why. The line itself is never returned: it may hold a secret.
#[must_use]
pub fn first_difference(text: &str) -> Option<(usize, &'static str)> {
    text.lines().enumerate().find_map(|(i, l)| differs_under_systemd(l).map(|why| (i + 1, why)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_systemd_reads_otherwise_are_named() {
        // (line, differs)
        let cases = [
            ("PRIVATE_KEY=0xabc", false),
            ("# a comment", false),
            ("   ", false),
            ("TELEGRAM_CHAT_ID=123  # me", true),
            ("TELEGRAM_CHAT_ID=123\t# me", true),
            ("POLYGON_RPC_URL=https://x.example/v2/KEY#frag", false),
            ("export PRIVATE_KEY=0xabc", true),
            ("exported_var=1", false),
            ("PASS=ab$cd", true),
            ("PASS=\"ab$cd\"", true),
            ("PASS='ab$cd'", false),
            ("PASS=\"a # b\"", false),
            ("PASS='plain'", false),
            ("TELEGRAM_CHAT_ID=\"123\" # me", true),
            ("A= #x", true),
            ("NO_EQUALS_SIGN", false),
            ("\u{feff}PRIVATE_KEY=0xabc", true),
            ("PRIVATE-KEY=0xabc", true),
            ("1KEY=0xabc", true),
            ("_KEY2=0xabc", false),
        ];
        for (line, differs) in cases {
            assert_eq!(differs_under_systemd(line).is_some(), differs, "{line:?}");
        }
        assert_eq!(first_difference("A=1\n\nB=2 # two\n").map(|(n, _)| n), Some(3));
        assert_eq!(first_difference("A=1\n"), None);
    }
}
