//! A process's peak memory and CPU time, from Linux's /proc, for the bench binaries and the
//! reliability tests: every measurement runs in a process of its own and its figures are read
//! from there.

/// The calling process's peak resident set (`VmHWM` in /proc/self/status), in MiB; NaN if it
/// cannot be read.
pub fn peak_rss_mib() -> f64 {
    peak_rss_mib_of("self").unwrap_or(f64::NAN)
}

/// Process `pid`'s peak resident set (`VmHWM` in /proc/`pid`/status), in MiB, or `None` if it
/// cannot be read.
pub fn peak_rss_mib_of(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
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
