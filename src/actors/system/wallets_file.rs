//! wallets.json is re-read when it changes on disk, without a restart or a signal.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Addr;
use tracing::warn;

use crate::actors::watcher::{Registry, Reload};

/// Watches the directory holding wallets.json (editors replace files by renaming) and asks for a
/// reload when the file changes. A wallets.json that is a symbolic link is watched where it
/// points too: an edit through the link, or of the file it names, changes only that file. The
/// watcher lives as long as the returned value.
pub(super) fn watch(path: &std::path::Path, registry: Addr<Registry>) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let mut watched = vec![dir_and_name(path)?];
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link
        && let Ok(target) = std::fs::canonicalize(path)
        && let Some(resolved) = dir_and_name(&target)
        && !watched.contains(&resolved)
    {
        watched.push(resolved);
    }
    let names: Vec<std::ffi::OsString> = watched.iter().map(|(_, n)| n.clone()).collect();
    let last = Arc::new(Mutex::new(std::time::Instant::now() - Duration::from_secs(1)));
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if !matches!(ev.kind, EventKind::Create(_) | EventKind::Modify(_)) {
            return;
        }
        if !ev.paths.iter().any(|p| p.file_name().is_some_and(|f| names.iter().any(|n| n == f))) {
            return;
        }
        // Editors write in several steps: let them finish, then read once.
        if let Ok(mut l) = last.lock() {
            *l = std::time::Instant::now();
        }
        let (last, registry) = (last.clone(), registry.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            if last.lock().is_ok_and(|l| l.elapsed() >= Duration::from_millis(140)) {
                registry.do_send(Reload);
            }
        });
    })
    .map_err(|e| warn!(cause = %e, "cannot watch wallets.json; reload with SIGHUP"))
    .ok()?;
    let mut dirs: Vec<&PathBuf> = watched.iter().map(|(d, _)| d).collect();
    dirs.dedup();
    for dir in dirs {
        w.watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| warn!(cause = %e, "cannot watch wallets.json; reload with SIGHUP"))
            .ok()?;
    }
    Some(w)
}

/// The directory holding `path` and its file name.
fn dir_and_name(path: &std::path::Path) -> Option<(PathBuf, std::ffi::OsString)> {
    let name = path.file_name()?.to_owned();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), PathBuf::from);
    Some((dir, name))
}
