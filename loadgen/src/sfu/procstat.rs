//! CPU time and resident memory of another process (the edge under test),
//! from `/proc/<pid>/stat` and `/proc/<pid>/status`. Linux only; `None`
//! where the files cannot be read or parsed.

/// User + system CPU seconds of the whole process (all threads).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_ticks(&stat)?;
    // SAFETY: sysconf takes an integer name and has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}

/// `utime + stime` in clock ticks. The command name (field 2) is in
/// parentheses and may hold spaces or `)`, so fields are counted from the
/// last `)`: state is field 3, utime 14, stime 15.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size in MiB (`VmRSS`).
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss_kib(&status).map(|kib| kib as f64 / 1024.0)
}

fn parse_vmrss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_and_status() {
        let stat = "1234 (we ird) name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(parse_stat_ticks(stat), Some(300));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(
            parse_vmrss_kib("Name:\tedge\nVmRSS:\t  20480 kB\n"),
            Some(20480)
        );
        assert_eq!(parse_vmrss_kib("Name:\tedge\n"), None);
    }

    #[test]
    fn reads_our_own_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        assert!(rss_mib(pid).unwrap() > 0.0);
        assert_eq!(rss_mib(u32::MAX), None);
    }
}
