//! A process's peak memory and CPU time, from Linux's /proc, for the bench binaries (each
//! includes this file with `#[path]`): every measurement runs in a child process of its own
//! and reports its own figures.

/// The calling process's peak resident set (`VmHWM` in /proc/self/status), in MiB; NaN if it
/// cannot be read.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// CPU seconds (user + system) used so far by process `pid` (`self`: the calling one), or
/// `None` if /proc/`pid`/stat cannot be read.
pub fn process_cpu_seconds(pid: &str) -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds (user + system) in the text of a process's or a thread's `stat` file (the
/// same format for /proc/`pid`/stat and /proc/`pid`/task/`tid`/stat).
pub fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace().skip(11);
    let mut ticks = || fields.next()?.parse::<f64>().ok();
    let (user, system) = (ticks()?, ticks()?);
    // Clock ticks are 1/100 s on Linux (USER_HZ).
    Some((user + system) / 100.0)
}
