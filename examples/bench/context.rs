//! What every case gets: the client, the cluster's processes and the CPU
//! accounting since the case started; small helpers shared by the cases.

use super::*;

#[derive(Clone, Copy, Default)]
pub(super) struct AcctStart {
    pub(super) sys: f64,
    pub(super) own: f64,
    pub(super) sched: f64,
    pub(super) workers: f64,
    pub(super) load: f64,
}

pub(super) struct Ctx {
    pub(super) client: Client,
    pub(super) processes: bool,
    /// `--scheduler`: the cluster's processes are not ours to account.
    pub(super) external: bool,
    /// Scheduler child pid (`--processes`).
    pub(super) sched_pid: Option<u32>,
    pub(super) worker_pids: Vec<u32>,
    pub(super) acct: Option<AcctStart>,
}

impl Ctx {
    /// (this process [less task threads in-process], scheduler, workers).
    pub(super) fn cpu_now(&self) -> (f64, f64, f64) {
        let own = stat_cpu_s("/proc/self/stat");
        if self.processes {
            let sched = self.sched_pid.map(pid_cpu_s).unwrap_or(0.0);
            let workers = self.worker_pids.iter().map(|p| pid_cpu_s(*p)).sum();
            (own, sched, workers)
        } else {
            let tasks = task_threads_cpu_s();
            (own - tasks, 0.0, tasks)
        }
    }

    pub(super) fn acct_start(&mut self) {
        let (own, sched, workers) = self.cpu_now();
        self.acct = Some(AcctStart {
            sys: sys_busy_s(),
            own,
            sched,
            workers,
            load: loadavg1(),
        });
    }

    pub(super) fn acct_fields(&self) -> Vec<(String, J)> {
        let Some(a) = self.acct else {
            return Vec::new();
        };
        let (own, sched, workers) = self.cpu_now();
        let (d_own, d_sched, d_workers) = (own - a.own, sched - a.sched, workers - a.workers);
        let d_sys = sys_busy_s() - a.sys;
        let mut out = Vec::new();
        let mut put = |k: &str, v: f64, d: i32| out.push((k.to_string(), J::Num(round(v, d))));
        if self.external {
            put("cpu_client_s", d_own, 3);
            put("cpu_others_s", (d_sys - d_own).max(0.0), 3);
            put("loadavg1_at_start", a.load, 2);
            return out;
        }
        if self.processes {
            put("cpu_client_s", d_own, 3);
            put("cpu_sched_s", d_sched, 3);
        } else {
            put("cpu_client_sched_s", d_own, 3);
        }
        put("cpu_workers_s", d_workers, 3);
        put("cpu_foreign_s", (d_sys - d_own - d_sched - d_workers).max(0.0), 3);
        put("loadavg1_at_start", a.load, 2);
        out
    }

    pub(super) fn emit(&self, rec: Rec, acct: bool) {
        let rec = if acct { rec.extend(self.acct_fields()) } else { rec };
        print_line(&rec.to_json());
    }

    pub(super) fn settle(&self, timeout: Duration) -> Result<()> {
        let t0 = Instant::now();
        loop {
            let n = self.client.scheduler_info()?.ntasks;
            if n == 0 {
                return Ok(());
            }
            if t0.elapsed() > timeout {
                bail!("scheduler did not settle: {n} tasks left after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Scheduler RSS as the scheduler reports it, or from `/proc` where it
    /// reports 0; the second value says which.
    pub(super) fn sched_rss(&self) -> Result<(u64, &'static str)> {
        let rss = self.client.scheduler_info()?.rss_bytes;
        if rss > 0 {
            return Ok((rss, "scheduler_info"));
        }
        let rss = status_kb(&self.sched_proc(), "VmRSS").ok_or_else(|| anyhow!("no scheduler RSS"))?;
        Ok((rss, "proc_status"))
    }

    /// `/proc/<pid>` name of the scheduler's process.
    pub(super) fn sched_proc(&self) -> String {
        self.sched_pid.map(|p| p.to_string()).unwrap_or_else(|| "self".into())
    }
}

pub(super) fn wait_all<T>(client: &Client, futures: &[Future<T>], secs: u64) -> Result<()> {
    client
        .wait(futures, ReturnWhen::AllCompleted, Some(Duration::from_secs(secs)))
        .map_err(|e| anyhow!("{e} (after {secs} s)"))?;
    Ok(())
}

pub(super) fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

pub(super) fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}
