//! CPU and memory figures read from `/proc`: per process, per task thread,
//! the machine's busy time and load average.

use super::*;

pub(super) fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// utime + stime in seconds from a `/proc/.../stat` file (0 if unreadable).
pub(super) fn stat_cpu_s(path: &str) -> f64 {
    let Ok(s) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after "pid (comm)": state is [0], utime [11], stime [12].
    let Some(rest) = s.rfind(')').map(|i| &s[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / clk_tck()
}

pub(super) fn pid_cpu_s(pid: u32) -> f64 {
    stat_cpu_s(&format!("/proc/{pid}/stat"))
}

/// CPU seconds of this process's threads whose name marks a worker's task
/// thread (`<worker>-task-<i>`, truncated to 15 bytes by the kernel).
pub(super) fn task_threads_cpu_s() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut total = 0.0;
    for e in dir.flatten() {
        let p = e.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if comm.starts_with("local-worker") || comm.contains("-task-") {
            total += stat_cpu_s(&p.join("stat").to_string_lossy());
        }
    }
    total
}

/// Busy CPU seconds of the whole machine, from `/proc/stat`.
pub(super) fn sys_busy_s() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() < 8 {
        return 0.0;
    }
    let idle = f[3] + f[4];
    (f[..8].iter().sum::<f64>() - idle) / clk_tck()
}

/// A `kB` field of `/proc/<pid>/status` (pid may be `self`), in bytes.
pub(super) fn status_kb(pid: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

pub(super) fn loadavg1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0.0)
}

pub(super) fn mem_gib() -> f64 {
    status_meminfo_total()
        .map(|b| b as f64 / (1u64 << 30) as f64)
        .unwrap_or(0.0)
}

pub(super) fn status_meminfo_total() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line["MemTotal:".len()..].split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

pub(super) const MIB: f64 = 1048576.0;
