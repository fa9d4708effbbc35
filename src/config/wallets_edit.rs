//! Appending entries to `wallets.json` without rewriting what the operator wrote: the new entries
//! go into the text just before the `wallets` list closes, so their comments, key order and
//! layout stay as they were (a parse-and-reprint would sort every key). The result is validated
//! before it is written, and written atomically.

use serde_json::Value;

/// Where the top-level `"wallets": [ ... ]` list closes, and whether it is empty.
fn wallets_list_end(text: &str) -> Option<(usize, bool)> {
    let b = text.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    let mut last_string: Option<(usize, usize)> = None;
    let mut list: Option<(usize, bool)> = None; // (depth inside the list, seen content)
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            let start = i + 1;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            last_string = Some((start, i.min(b.len())));
            if let Some((_, seen)) = list.as_mut() {
                *seen = true;
            }
            i += 1;
            continue;
        }
        match c {
            b'{' | b'[' => {
                if let Some((_, seen)) = list.as_mut() {
                    *seen = true;
                }
                let is_wallets = c == b'['
                    && depth == 1
                    && last_string.is_some_and(|(s, e)| &text[s..e] == "wallets")
                    && text[..i].trim_end().ends_with(':');
                depth += 1;
                if is_wallets {
                    list = Some((depth, false));
                }
            }
            b'}' | b']' => {
                if let Some((d, seen)) = list
                    && d == depth
                    && c == b']'
                {
                    return Some((i, !seen));
                }
                depth = depth.checked_sub(1)?;
            }
            c if !c.is_ascii_whitespace() && c != b',' && c != b':' => {
                if let Some((_, seen)) = list.as_mut() {
                    *seen = true;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `text` with `entries` appended to its `wallets` list, each indented as the shipped file is.
///
/// # Errors
/// When the text has no top-level `wallets` list (the `target_wallets` format, or not JSON).
pub fn append_entries(text: &str, entries: &[Value]) -> Result<String, String> {
    let (end, empty) = wallets_list_end(text).ok_or_else(|| {
        "no top-level \"wallets\" list found (the target_wallets format cannot hold disabled entries): add them by \
         hand"
            .to_owned()
    })?;
    let body = text[..end].trim_end();
    let mut out = String::with_capacity(text.len() + entries.len() * 200);
    out.push_str(body);
    for (k, e) in entries.iter().enumerate() {
        if k > 0 || !empty {
            out.push(',');
        }
        out.push('\n');
        let pretty = serde_json::to_string_pretty(e).map_err(|e| e.to_string())?;
        let indented: Vec<String> = pretty.lines().map(|l| format!("    {l}")).collect();
        out.push_str(&indented.join("\n"));
    }
    out.push_str("\n  ");
    out.push_str(&text[end..]);
    Ok(out)
}

/// Appends `entries` to the wallets file at `path`: validated as the daemon would read it, then
/// written to a temporary file beside it and renamed over it (a crash leaves the old or the new
/// file, never half of one).
///
/// # Errors
/// When the file cannot be read, has no `wallets` list, would not validate, or cannot be written.
pub fn append_to_file(path: &std::path::Path, entries: &[Value]) -> Result<(), String> {
    let name = path.display().to_string();
    // A symlinked wallets.json is edited where it really is; the link stays a link.
    let real = std::fs::canonicalize(path).map_err(|e| format!("{name}: {e}"))?;
    let path = real.as_path();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let mut new = append_entries(&text, entries).map_err(|e| format!("{name}: {e}"))?;
    if text.contains("\r\n") {
        // Keep a Windows-edited file's line endings.
        new = new.replace("\r\n", "\n").replace('\n', "\r\n");
    }
    if new.len() as u64 > super::wallets::MAX_FILE_BYTES {
        return Err(format!(
            "{name}: with the new entries it would be larger than the daemon reads ({} MiB), nothing was written",
            super::wallets::MAX_FILE_BYTES / (1024 * 1024)
        ));
    }
    super::Wallets::parse(&new, &name).map_err(|p| {
        format!("{name}: the new entries would not validate, nothing was written:\n{}", super::problem::render(&p))
    })?;
    // A name of this run's own, created new: two runs at once never write into each other's file.
    let tmp = path.with_extension(format!("json.new.{}", std::process::id()));
    // Synced before the rename, and the directory after it: a power cut must leave the old file or
    // the new one, never an empty one (the daemon would then refuse to start without its targets).
    // Readable by this user alone until it takes the old file's mode.
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let mut file = open.open(&tmp).map_err(|e| format!("{}: cannot write: {e}", tmp.display()))?;
    let written = std::io::Write::write_all(&mut file, new.as_bytes()).and_then(|()| file.sync_all());
    if let Err(e) = written {
        // A full disk leaves no half-written file behind.
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: cannot write: {e}", tmp.display()));
    }
    let replaced = keep_like(&tmp, path, &text)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| format!("{name}: cannot replace: {e}")));
    if let Err(e) = replaced {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Readies `tmp` to replace `path`: the old file's mode and owner (an installed wallets.json is
/// root:polycopy 0640, which the daemon must still read), and `path` still as it was read (`read`):
/// an edit saved meanwhile (an editor, another run) is not overwritten.
fn keep_like(tmp: &std::path::Path, path: &std::path::Path, read: &str) -> Result<(), String> {
    let name = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{name}: {e}"))?;
    std::fs::set_permissions(tmp, meta.permissions()).map_err(|e| format!("{}: {e}", tmp.display()))?;
    crate::store::same_owner_of(tmp, path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let have = std::fs::metadata(tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        if (have.uid(), have.gid()) != (meta.uid(), meta.gid()) {
            return Err(format!(
                "{name}: the new file could not keep its owner and group (run this as root or as its owner): \
                 nothing was written, or the daemon might not read it"
            ));
        }
    }
    if std::fs::read_to_string(path).ok().as_deref() != Some(read) {
        return Err(format!("{name} changed while it was being edited: nothing was written; run this again"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_edit_saved_meanwhile_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (path, tmp) = (dir.path().join("wallets.json"), dir.path().join("wallets.json.new.1"));
        std::fs::write(&path, "{\"wallets\": []}").unwrap();
        std::fs::write(&tmp, "{\"wallets\": [1]}").unwrap();
        assert_eq!(keep_like(&tmp, &path, "{\"wallets\": []}"), Ok(()));
        let e = keep_like(&tmp, &path, "what was read before someone saved").unwrap_err();
        assert!(e.contains("changed while it was being edited"), "{e}");
    }

    #[test]
    fn appends_inside_the_wallets_list_and_keeps_everything_else() {
        let entry = json!({"address": "0x3333333333333333333333333333333333333333", "enabled": false});
        let cases = [
            // A list with entries: a comma, the entry, the list closed as before.
            (
                "{\n  \"defaults\": {\"copy_sells\": true},\n  \"wallets\": [\n    {\"address\": \"0x1111111111111111111111111111111111111111\"}\n  ]\n}\n",
                2,
            ),
            // An empty list: no comma.
            ("{\"wallets\": []}", 1),
            // "wallets" inside a comment string or a nested object is not the list.
            ("{\"comment\": \"the wallets: [x]\", \"defaults\": {\"wallets\": 1}, \"wallets\": [ ]}", 1),
        ];
        for (text, n) in cases {
            let out = append_entries(text, std::slice::from_ref(&entry)).unwrap();
            let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
            assert_eq!(v["wallets"].as_array().unwrap().len(), n, "{out}");
            assert_eq!(v["wallets"][n - 1], entry, "{out}");
            // What was there is there, in its own words.
            let before: Value = serde_json::from_str(text).unwrap();
            for k in ["defaults", "comment"] {
                assert_eq!(v.get(k), before.get(k), "{out}");
            }
        }
        assert!(append_entries("{\"target_wallets\": []}", std::slice::from_ref(&entry)).is_err());
        assert!(append_entries("not json", &[entry]).is_err());
    }

    #[test]
    fn the_shipped_file_takes_new_entries_and_still_validates() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/wallets.json")).unwrap();
        let e = json!({"address": "0x3333333333333333333333333333333333333333", "label": "new", "enabled": false});
        let out = append_entries(
            &text,
            &[e.clone(), json!({"address": "0x4444444444444444444444444444444444444444", "enabled": false})],
        )
        .unwrap();
        let w = crate::config::Wallets::parse(&out, "wallets.json").unwrap();
        assert_eq!(w.targets.len(), 4);
        assert!(w.targets.iter().all(|t| !t.enabled));
        assert!(out.starts_with(text.trim_end().split("\n    }\n  ]").next().unwrap()), "the head is untouched");
    }
}
