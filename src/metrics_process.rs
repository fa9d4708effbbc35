//! Process metrics in Prometheus' standard names, read from `/proc/self` (Linux; elsewhere none).

use crate::domain::format_micros;

/// (name, type, help, value) for each process metric that could be read.
#[must_use]
pub fn sample() -> Vec<(&'static str, &'static str, &'static str, String)> {
    let mut out = Vec::new();
    let ticks_per_s = 100; // USER_HZ: 100 on every Linux architecture polycopy runs on.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<i64>().ok());
    // utime and stime are fields 14 and 15 of stat, indexes 11 and 12 after the name.
    if let (Some(u), Some(s)) = (field(11), field(12)) {
        let micros = (u + s) * 1_000_000 / ticks_per_s;
        out.push(("process_cpu_seconds_total", "counter", "User and system CPU time, seconds.", format_micros(micros)));
    }
    // starttime is field 22 (index 19), in ticks since boot.
    if let (Some(start), Some(boot)) = (field(19), boot_time_s()) {
        let t = boot * 1_000_000 + start * 1_000_000 / ticks_per_s;
        out.push(("process_start_time_seconds", "gauge", "Start time of the process, unix seconds.", format_micros(t)));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(kb) = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<i64>().ok())
    {
        out.push(("process_resident_memory_bytes", "gauge", "Resident memory, bytes.", (kb * 1024).to_string()));
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        out.push(("process_open_fds", "gauge", "Open file descriptors.", dir.count().to_string()));
    }
    out
}

fn boot_time_s() -> Option<i64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let names: Vec<_> = super::sample().into_iter().map(|m| m.0).collect();
        if cfg!(target_os = "linux") {
            for n in [
                "process_cpu_seconds_total",
                "process_start_time_seconds",
                "process_resident_memory_bytes",
                "process_open_fds",
            ] {
                assert!(names.contains(&n), "{n} missing: {names:?}");
            }
        }
    }
}
