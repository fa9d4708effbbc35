//! Where an installation keeps its settings: one place every command reads, so the daemon, the CLI an
//! operator runs and the cron scripts always agree on the mode and the journal.
//!
//! A binary installed at `<P>/usr/local/bin/polycopy` reads `<P>/etc/polycopy/polycopy.toml` (and, for
//! `--instance NAME`, `<P>/etc/polycopy/NAME/polycopy.toml`). On a server `P` is `/`; a staged install
//! (`install.sh --root R`) is self-contained under `R`. Any other binary (a cargo build) uses `/`.

use std::path::{Component, Path, PathBuf};

use crate::config::Problem;

/// The installation a command acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The install prefix (`/` on a server).
    pub prefix: PathBuf,
    /// The named instance (`polycopy@NAME`), if any.
    pub instance: Option<String>,
}

/// How many directories above `exe` its install prefix is: 3 for `P/usr/local/bin/polycopy`, 2
/// for `P/usr/bin/polycopy`; `None` for a binary run from anywhere else (a cargo build).
fn install_depth(dirs: &[Component<'_>]) -> Option<usize> {
    let names: Vec<&str> = dirs.iter().rev().take(3).filter_map(|c| c.as_os_str().to_str()).collect();
    match names.as_slice() {
        ["bin", "local", "usr", ..] => Some(3),
        ["bin", "usr", ..] => Some(2),
        _ => None,
    }
}

/// Whether this process's binary is where `install.sh` puts it (not a cargo build).
#[must_use]
pub fn installed_binary() -> bool {
    let exe = std::env::current_exe().ok().and_then(|e| e.canonicalize().ok());
    exe.as_deref().and_then(Path::parent).is_some_and(|p| install_depth(&p.components().collect::<Vec<_>>()).is_some())
}

/// The install prefix of a binary at `exe`: `P` for `P/usr/local/bin/polycopy` or `P/usr/bin/polycopy`,
/// else `/`.
#[must_use]
pub fn prefix_of(exe: &Path) -> PathBuf {
    let dirs: Vec<Component<'_>> = exe.parent().map(|p| p.components().collect()).unwrap_or_default();
    let Some(depth) = install_depth(&dirs) else { return PathBuf::from("/") };
    let keep = dirs.len().saturating_sub(depth);
    let p: PathBuf = dirs[..keep].iter().collect();
    if p.as_os_str().is_empty() { PathBuf::from("/") } else { p }
}

/// Checks an instance name: letters, digits, `-` and `_` (it becomes a directory and a unit name).
///
/// # Errors
/// A problem naming `--instance`.
pub fn check_instance(name: &str) -> Result<(), Problem> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Problem::new(
            "command line",
            "--instance",
            format!("must be 1-64 letters, digits, '-' or '_', got {name:?}"),
        ))
    }
}

impl Location {
    /// The installation of the running binary, for `instance`.
    ///
    /// # Errors
    /// When the instance name is not valid.
    pub fn discover(instance: Option<&str>) -> Result<Self, Problem> {
        if let Some(i) = instance {
            check_instance(i)?;
        }
        let exe = std::env::current_exe().ok().and_then(|e| e.canonicalize().ok());
        let prefix = exe.as_deref().map_or_else(|| PathBuf::from("/"), prefix_of);
        Ok(Self { prefix, instance: instance.map(str::to_owned) })
    }

    /// `<P>/etc/polycopy` or `<P>/etc/polycopy/NAME`.
    #[must_use]
    pub fn config_dir(&self) -> PathBuf {
        let base = self.prefix.join("etc/polycopy");
        match &self.instance {
            Some(i) => base.join(i),
            None => base,
        }
    }

    /// The settings file every command of this installation reads.
    #[must_use]
    pub fn settings_file(&self) -> PathBuf {
        self.config_dir().join("polycopy.toml")
    }

    /// The service's environment file (endpoints and secrets), read when readable.
    #[must_use]
    pub fn env_file(&self) -> PathBuf {
        self.config_dir().join("polycopy.env")
    }

    /// `<P>/var/lib/polycopy` or `<P>/var/lib/polycopy/NAME`: the unit's `StateDirectory=`, the
    /// only place it may write (`ProtectSystem=strict`).
    #[must_use]
    pub fn state_dir(&self) -> PathBuf {
        let base = self.prefix.join("var/lib/polycopy");
        match &self.instance {
            Some(i) => base.join(i),
            None => base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_comes_from_where_the_binary_is_installed() {
        for (exe, want) in [
            ("/usr/local/bin/polycopy", "/"),
            ("/usr/bin/polycopy", "/"),
            ("/tmp/stage/usr/local/bin/polycopy", "/tmp/stage"),
            ("/tmp/stage/usr/bin/polycopy", "/tmp/stage"),
            ("/home/me/polycopy/target/release/polycopy", "/"),
            ("/opt/bin/polycopy", "/"),
            ("polycopy", "/"),
        ] {
            assert_eq!(prefix_of(Path::new(exe)), PathBuf::from(want), "{exe}");
        }
    }

    #[test]
    fn instances_have_their_own_settings() {
        let l = Location { prefix: PathBuf::from("/r"), instance: Some("acct2".into()) };
        assert_eq!(l.settings_file(), PathBuf::from("/r/etc/polycopy/acct2/polycopy.toml"));
        assert_eq!(l.env_file(), PathBuf::from("/r/etc/polycopy/acct2/polycopy.env"));
        let l = Location { prefix: PathBuf::from("/"), instance: None };
        assert_eq!(l.settings_file(), PathBuf::from("/etc/polycopy/polycopy.toml"));
        for (name, ok) in [("a", true), ("acct-2_x", true), ("", false), ("../x", false), ("a b", false)] {
            assert_eq!(check_instance(name).is_ok(), ok, "{name}");
        }
    }
}
