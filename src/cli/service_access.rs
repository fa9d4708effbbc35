//! Whether the service user can read what `check-config` read as root: root reads any file, so a
//! `wallets.json` or settings file saved 0600 root:root passes `sudo polycopy check-config` and then
//! stops the daemon (a refused reload, or exit 78 at the next start).

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
