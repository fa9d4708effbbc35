//! The daemon's environment holds its secrets (the signing key, the bot token, RPC URLs with keys):
//! systemd's `EnvironmentFile=` puts them there. Any process of the same user may read another's
//! `/proc/<pid>/environ`, and the service user also runs the cron jobs and the tools they call. A
//! process that is not dumpable has its `/proc/<pid>` entries owned by root, so only root reads
//! them (and no core dump can spill the key). prctl(2), `PR_SET_DUMPABLE`.

/// Makes this process's environment and memory unreadable to other processes of its user. Only
/// for the daemon: a command line tool that asks `/proc/self` who runs it would then see root.
///
/// # Errors
/// When the kernel refuses the change (not Linux, say).
pub fn hide_from_same_user() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .map_err(std::io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "only on Linux"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_is_no_longer_dumpable() {
        // nextest runs each test in a process of its own: this one only changes itself.
        super::hide_from_same_user().unwrap();
        assert_eq!(rustix::process::dumpable_behavior().unwrap(), rustix::process::DumpableBehavior::NotDumpable);
    }
}
