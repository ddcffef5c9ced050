//! The scheduler process's CPU use, from `/proc/self/stat` (Linux; None
//! elsewhere): user plus system time, sampled at each dashboard update.

use std::time::Instant;

/// CPU seconds this process has used so far, if the OS tells.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

/// CPU use between two samples, in percent of one core.
#[derive(Default)]
pub struct CpuMeter {
    last: Option<(Instant, f64)>,
}

impl CpuMeter {
    /// Percent of one core used since the previous call (None the first time).
    pub fn sample(&mut self) -> Option<f64> {
        let now = (Instant::now(), cpu_seconds()?);
        let previous = self.last.replace(now)?;
        let wall = now.0.duration_since(previous.0).as_secs_f64();
        (wall > 0.0).then(|| 100.0 * (now.1 - previous.1) / wall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_use_is_measured_on_linux() {
        if cfg!(target_os = "linux") {
            let a = cpu_seconds().expect("readable /proc/self/stat");
            let mut x = 0u64;
            for i in 0..20_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            assert!(cpu_seconds().expect("again") >= a);
            let mut m = CpuMeter::default();
            assert!(m.sample().is_none());
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(m.sample().is_some());
        }
    }
}
