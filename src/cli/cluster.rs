//! `rdask cluster up/status/down`: the command-line face of [`crate::launch`].

use std::path::PathBuf;

use super::{load_config, ClusterAction};
use crate::config::FlagValue;
use crate::launch;

/// Runs `rdask cluster ACTION`; returns the exit code.
pub(super) fn run_cluster(config_file: Option<PathBuf>, action: ClusterAction) -> i32 {
    let (ClusterAction::Up { state, .. } | ClusterAction::Status { state } | ClusterAction::Down { state }) = &action;
    let mut flags = Vec::new();
    if let Some(s) = state {
        let s = s.to_string_lossy().into_owned();
        flags.push(FlagValue::new("cluster", "state_file", "--state", s));
    }
    let config = match load_config(config_file, flags) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut options = launch::LaunchOptions::from(&config.cluster);
    options.client.security = match config.client_security() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match action {
        ClusterAction::Up { file, .. } => {
            let result = launch::ClusterSpec::from_file(&file).and_then(|spec| launch::up(&spec, &options));
            match result {
                Ok(state) => {
                    println!("scheduler: {}", state.scheduler_address);
                    if let Some(h) = &state.http_address {
                        println!("http: {h}");
                    }
                    for p in &state.processes {
                        println!(
                            "  {} {} on {} pid {} log {}",
                            p.role,
                            p.name,
                            p.host,
                            p.pid,
                            p.log.display()
                        );
                    }
                    if let Some((_, jobs)) = &state.slurm {
                        for j in jobs {
                            println!("  worker {} slurm job {}", j.name, j.job_id);
                        }
                    }
                    println!("state: {}", options.state_file.display());
                    0
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
        ClusterAction::Status { .. } => match launch::status(&options) {
            Ok(st) => {
                println!("scheduler: {}", st.state.scheduler_address);
                if let Some(h) = &st.state.http_address {
                    println!("http: {h}");
                }
                println!("processes:");
                for (p, up) in &st.processes {
                    let what = if *up { "running" } else { "NOT RUNNING" };
                    println!("  {} {} on {} pid {} {what}", p.role, p.name, p.host, p.pid);
                }
                let jobs_ok = match &st.jobs {
                    Ok(jobs) if jobs.is_empty() => true,
                    Ok(jobs) => {
                        println!("slurm jobs:");
                        for (j, queued) in jobs {
                            let what = queued.as_deref().unwrap_or("NOT QUEUED");
                            println!("  {} job {} {what}", j.name, j.job_id);
                        }
                        jobs.iter().all(|(_, q)| q.is_some())
                    }
                    Err(e) => {
                        println!("slurm jobs unknown: {e}");
                        false
                    }
                };
                match &st.info {
                    Ok(info) => {
                        println!("workers: {}", info.workers.len());
                        for w in &info.workers {
                            println!(
                                "  {} {} nthreads={} keys={} bytes={} processing={}",
                                w.name, w.address, w.nthreads, w.nkeys, w.nbytes, w.processing
                            );
                        }
                        println!("tasks: {}", info.ntasks);
                    }
                    Err(e) => println!("scheduler unreachable: {e}"),
                }
                let healthy = st.info.is_ok() && jobs_ok && st.processes.iter().all(|(_, up)| *up);
                if healthy {
                    0
                } else {
                    1
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        ClusterAction::Down { .. } => match launch::down(&options) {
            Ok(notes) => {
                for n in &notes {
                    eprintln!("warning: {n}");
                }
                println!("cluster stopped");
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
    }
}
