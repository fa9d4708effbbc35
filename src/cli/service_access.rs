//! Whether the service user can read what `check-config` read as root: root reads any file, so a
//! `wallets.json` or settings file saved 0600 root:root passes `sudo polycopy check-config` and then
//! stops the daemon (a refused reload, or exit 78 at the next start).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::config::Problem;

/// Whether a file with permission bits `mode`, owned by `file_uid:file_gid`, can be read by a
/// process running as `uid` with primary group `gid` (supplementary groups are not known here).
#[must_use]
pub const fn readable_by(mode: u32, (file_uid, file_gid): (u32, u32), (uid, gid): (u32, u32)) -> bool {
    if uid == 0 {
        return true;
    }
    if uid == file_uid {
        return mode & 0o400 != 0;
    }
    if gid == file_gid {
        return mode & 0o040 != 0;
    }
    mode & 0o004 != 0
}

/// The service user (owner of the journal's directory, as `install.sh` makes it), when this
/// process runs as root on an installation; `None` otherwise (nothing to check: a plain user's
/// command read the files as itself).
#[must_use]
pub fn service_user(journal: &Path) -> Option<(u32, u32)> {
    let me = std::fs::metadata("/proc/self").ok()?.uid();
    if me != 0 {
        return None;
    }
    let dir = journal.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| Path::new("."));
    let m = std::fs::metadata(dir).ok()?;
    (m.uid() != 0).then(|| (m.uid(), m.gid()))
}

/// A problem when `file` exists and the service user certainly cannot read it: the file, or the
/// directory holding it, belongs to root alone (root:root) and shuts others out. Group membership
/// beyond the service user's own group is not known here, so a file of another group is given the
/// benefit of the doubt rather than refused on a guess.
#[must_use]
pub fn unreadable_for_service(file: &Path, user: (u32, u32), what: &str) -> Option<Problem> {
    let m = std::fs::metadata(file).ok()?;
    let root_only = |m: &std::fs::Metadata| m.uid() == 0 && m.gid() == 0;
    if let Some(dir) = file.parent().and_then(|d| std::fs::metadata(d).ok())
        && root_only(&dir)
        && dir.mode() & 0o001 == 0
        && user.0 != 0
    {
        return Some(Problem::new(
            file.display().to_string(),
            what,
            format!(
                "the service user (uid {}) cannot enter its directory (mode {:o}, root:root), so the daemon cannot \
                 read it: `chmod 0755` the directory, or run install.sh again",
                user.0,
                dir.mode() & 0o777
            ),
        ));
    }
    if !root_only(&m) || readable_by(m.mode(), (m.uid(), m.gid()), user) {
        return None;
    }
    Some(Problem::new(
        file.display().to_string(),
        what,
        format!(
            "the service user (uid {}) cannot read this file (mode {:o}, owner {}:{}), so the daemon will refuse it: \
             `chown root:polycopy` and `chmod 0640` it, or run install.sh again",
            user.0,
            m.mode() & 0o777,
            m.uid(),
            m.gid()
        ),
    ))
}

/// Directories an installed service does not see as a shell does (`PrivateTmp`, `ProtectHome`).
const HIDDEN: [&str; 5] = ["/tmp", "/var/tmp", "/home", "/root", "/run/user"];

/// The paths an installed service and the operator's shell must both see as one file: the stop
/// file is touched from a shell, the journals are named by commands run from anywhere.
///
/// On an installed server the unit runs from its state directory (`WorkingDirectory`) with
/// `PrivateTmp=yes` and `ProtectHome=yes`: a relative path names another file for a command run
/// elsewhere, and a path under `/tmp`, `/var/tmp`, `/home`, `/root` or `/run/user` is one the
/// daemon cannot see at all. A stop file there would be touched and never obeyed. An installation
/// staged under another `prefix` than `/` (a test tree) keeps its paths under that prefix.
#[must_use]
pub fn unseen_by_the_service(origin: &str, prefix: &Path, paths: &[(&str, &Path)]) -> Vec<Problem> {
    let mut out = Vec::new();
    for (field, path) in paths {
        if path.as_os_str().is_empty() {
            continue;
        }
        let message = if path.is_relative() {
            format!(
                "must be an absolute path on an installed server ({}): the service runs from its state \
                 directory and your commands from elsewhere, so they would name different files",
                path.display()
            )
        } else if let Some(dir) = HIDDEN.iter().find(|d| path.starts_with(d))
            && !(prefix != Path::new("/") && path.starts_with(prefix))
        {
            format!(
                "is under {dir} ({}), which the service cannot see (PrivateTmp / ProtectHome in its unit): \
                 put it under the state directory (/var/lib/polycopy)",
                path.display()
            )
        } else {
            continue;
        };
        out.push(Problem::new(origin, *field, message));
    }
    out
}

/// The files an installed service writes (the journal, with its lock, WAL and control socket
/// beside it; a socket set apart) that lie outside `state_dir`, its unit's only writable directory
/// (`ProtectSystem=strict`): the service would fail at start with "Read-only file system" and
/// crash-loop into systemd's start limit. Relative paths are [`unseen_by_the_service`]'s.
/// `writable` adds what the unit's drop-ins open ([`drop_in_writable`]).
#[must_use]
pub fn unwritable_by_the_service(
    origin: &str,
    state_dir: &Path,
    writable: &Writable,
    paths: &[(&str, &Path)],
) -> Vec<Problem> {
    if writable.anywhere {
        return Vec::new();
    }
    paths
        .iter()
        // A hidden one is said by `unseen_by_the_service` already.
        .filter(|(_, p)| {
            p.is_absolute()
                && !p.starts_with(state_dir)
                && !writable.dirs.iter().any(|w| p.starts_with(w))
                && !HIDDEN.iter().any(|d| p.starts_with(d))
        })
        .map(|(field, p)| {
            Problem::new(
                origin,
                *field,
                format!(
                    "is outside the service's state directory {} ({}): its unit may write only there \
                     (ProtectSystem=strict), so it would fail at start. Put it there, or add the directory with \
                     ReadWritePaths= in a drop-in (systemctl edit)",
                    state_dir.display(),
                    p.display()
                ),
            )
        })
        .collect()
}

/// What the unit's drop-ins make writable besides its state directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Writable {
    /// Directories opened with `ReadWritePaths=`.
    pub dirs: Vec<PathBuf>,
    /// A drop-in changes what is writable in a way not followed here (`ProtectSystem=` other than
    /// `strict`, `BindPaths=`, another `StateDirectory=`, a specifier such as `%S`): nothing is
    /// named then, rather than refusing a set-up that works.
    pub anywhere: bool,
}

/// What the unit's drop-ins (`<unit>.d/*.conf` under `<prefix>/etc/systemd/system` and
/// `<prefix>/run/systemd/system`, for an instance also the template's, and `service.d` for every
/// service) make writable, read in systemd's order (by file name).
#[must_use]
pub fn drop_in_writable(prefix: &Path, instance: Option<&str>) -> Writable {
    let mut units = vec!["service.d".to_owned()];
    match instance {
        Some(i) => units.extend(["polycopy@.service.d".to_owned(), format!("polycopy@{i}.service.d")]),
        None => units.push("polycopy.service.d".to_owned()),
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for base in ["etc/systemd/system", "run/systemd/system"] {
        for unit in &units {
            let Ok(entries) = std::fs::read_dir(prefix.join(base).join(unit)) else { continue };
            files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "conf")));
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let mut out = Writable::default();
    for f in files {
        read_drop_in(&std::fs::read_to_string(f).unwrap_or_default(), &mut out);
    }
    out
}

/// Folds one drop-in's lines into `w`: `ReadWritePaths=` adds its paths (a leading `-` marks one
/// that may be missing; an empty one resets the list, as in systemd).
fn read_drop_in(unit: &str, w: &mut Writable) {
    for line in unit.lines().map(str::trim) {
        let Some((key, value)) = line.split_once('=') else { continue };
        match key.trim() {
            "ReadWritePaths" if value.trim().is_empty() => w.dirs.clear(),
            "ReadWritePaths" => {
                for p in value.split_whitespace().map(|p| p.trim_matches('"').trim_start_matches(['-', '+'])) {
                    if p.contains('%') || !p.starts_with('/') {
                        w.anywhere = true;
                    } else {
                        w.dirs.push(PathBuf::from(p));
                    }
                }
            }
            "ProtectSystem" if value.trim() != "strict" => w.anywhere = true,
            "BindPaths" | "StateDirectory" => w.anywhere = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_drop_in_makes_writable_is_read_as_systemd_would() {
        let read = |conf: &str| {
            let mut w = Writable::default();
            read_drop_in(conf, &mut w);
            w
        };
        let dirs = |d: &[&str]| Writable { dirs: d.iter().map(PathBuf::from).collect(), anywhere: false };
        let anywhere = Writable { dirs: Vec::new(), anywhere: true };
        for (conf, want) in [
            ("[Service]\nReadWritePaths=/srv/polycopy -/mnt/journals\n", dirs(&["/srv/polycopy", "/mnt/journals"])),
            ("# ReadWritePaths=/nope\n", dirs(&[])),
            ("ReadWritePaths=/a\nReadWritePaths=\nReadWritePaths=/b\n", dirs(&["/b"])),
            ("ReadWritePaths=\"/srv/q\"\n", dirs(&["/srv/q"])),
            ("ReadWritePaths=%S/polycopy-extra\n", anywhere.clone()),
            ("ProtectSystem=full\n", anywhere.clone()),
            ("ProtectSystem=strict\n", dirs(&[])),
            ("BindPaths=/srv:/var/lib/polycopy/srv\n", anywhere),
        ] {
            assert_eq!(read(conf), want, "{conf}");
        }
    }

    #[test]
    fn files_the_service_writes_must_be_in_its_state_directory() {
        let state = Path::new("/var/lib/polycopy/acct1");
        // (path, fine)
        for (path, fine) in [
            ("/var/lib/polycopy/acct1/polycopy-live.db", true),
            ("/var/lib/polycopy/acct1/sub/j.db", true),
            ("/srv/polycopy/live.db", false),
            ("/var/lib/polycopy/acct2/polycopy-live.db", false),
            ("/var/lib/polycopy/acct1x/j.db", false),
            ("relative.db", true),
        ] {
            let problems =
                unwritable_by_the_service("s.toml", state, &Writable::default(), &[("live.db_path", Path::new(path))]);
            assert_eq!(problems.is_empty(), fine, "{path}: {problems:?}");
        }
        let opened = Writable { dirs: vec![PathBuf::from("/srv/polycopy")], anywhere: false };
        let srv = [("live.db_path", Path::new("/srv/polycopy/live.db"))];
        assert!(unwritable_by_the_service("s.toml", state, &opened, &srv).is_empty(), "opened by a drop-in");
        let loosened = Writable { dirs: Vec::new(), anywhere: true };
        assert!(unwritable_by_the_service("s.toml", state, &loosened, &srv).is_empty(), "not followed: not named");
    }

    #[test]
    fn readability_follows_the_permission_bits_for_owner_group_and_others() {
        let (svc, root) = ((999, 999), (0, 0));
        // (mode, file owner, reader, readable)
        let cases = [
            (0o600, root, svc, false),
            (0o640, (0, 999), svc, true),
            (0o640, root, svc, false),
            (0o644, root, svc, true),
            (0o400, svc, svc, true),
            (0o040, svc, svc, false),
            (0o000, svc, root, true),
        ];
        for (mode, owner, reader, want) in cases {
            assert_eq!(readable_by(mode, owner, reader), want, "{mode:o} {owner:?} {reader:?}");
        }
    }

    #[test]
    fn paths_the_service_sees_otherwise_than_a_shell_are_named() {
        let cases: [(&str, bool); 8] = [
            ("/var/lib/polycopy/EMERGENCY_STOP", true),
            ("/srv/polycopy/journal.db", true),
            ("", true),
            ("EMERGENCY_STOP", false),
            ("data/polycopy-live.db", false),
            ("/tmp/polycopy.stop", false),
            ("/home/op/stop", false),
            ("/root/stop", false),
        ];
        for (path, fine) in cases {
            let problems = unseen_by_the_service("s.toml", Path::new("/"), &[("emergency_stop_file", Path::new(path))]);
            assert_eq!(problems.is_empty(), fine, "{path}: {problems:?}");
        }
        let at =
            |prefix: &str, path: &str| unseen_by_the_service("s.toml", Path::new(prefix), &[("f", Path::new(path))]);
        assert!(at("/", "/tmpfiles/x").is_empty(), "a prefix of a name is not a directory");
        assert!(at("/tmp/t/root", "/tmp/t/root/var/lib/polycopy/x").is_empty(), "a staged tree's own paths");
        assert!(!at("/tmp/t/root", "/tmp/elsewhere/x").is_empty(), "outside the staged tree");
    }
}
