//! Running scripts on this machine or over `ssh`: starting a detached
//! process, checking and signalling pids, reading its log.

use super::*;

/// `[user@]host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SshTarget {
    pub(super) destination: String,
    pub(super) host: String,
    pub(super) port: Option<String>,
}

impl SshTarget {
    pub(super) fn parse(target: &str) -> SshTarget {
        let (dest, port) = match target.rsplit_once(':') {
            Some((d, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => (d, Some(p.to_string())),
            _ => (target, None),
        };
        let host = dest.rsplit_once('@').map_or(dest, |(_, h)| h).to_string();
        SshTarget {
            destination: dest.to_string(),
            host,
            port,
        }
    }
}

/// Quotes a word for `sh`.
pub(super) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs a `sh` script on `target` (here, or through ssh); returns stdout.
pub(super) fn run_script(target: &str, ssh: &SshSpec, script: &str) -> Result<String, LaunchError> {
    let mut cmd = if target == LOCAL {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    } else {
        let t = SshTarget::parse(target);
        let mut c = Command::new(&ssh.command);
        c.args(&ssh.options);
        if let Some(p) = &t.port {
            c.arg("-p").arg(p);
        }
        // The remote login shell may not be sh: hand it one quoted command.
        c.arg(&t.destination).arg(format!("sh -c {}", sh_quote(script)));
        c
    };
    let what = if target == LOCAL {
        "sh".to_string()
    } else {
        format!("{} {target}", ssh.command)
    };
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| LaunchError::Command {
        what: what.clone(),
        message: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(LaunchError::Command {
            what,
            message: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts `binary args` detached on `target` with its output in `log`;
/// returns its pid.
pub(super) fn spawn_detached(
    target: &str,
    ssh: &SshSpec,
    binary: &Path,
    args: &[String],
    log: &Path,
) -> Result<u32, LaunchError> {
    let mut command = sh_quote(&binary.to_string_lossy());
    for a in args {
        command.push(' ');
        command.push_str(&sh_quote(a));
    }
    let log_dir = log.parent().unwrap_or(Path::new("/"));
    // `exec` keeps the pid `$!` names; setsid puts the process in its own
    // session so a terminal's ^C or hang-up does not reach it.
    let script = format!(
        "mkdir -p {dir} && {{ if command -v setsid >/dev/null 2>&1; then exec setsid {command}; \
         else exec nohup {command}; fi; }} >{log} 2>&1 </dev/null & echo $!",
        dir = sh_quote(&log_dir.to_string_lossy()),
        log = sh_quote(&log.to_string_lossy()),
    );
    let out = run_script(target, ssh, &script)?;
    out.trim().parse().map_err(|_| LaunchError::Command {
        what: format!("starting {} on {target}", binary.display()),
        message: format!("expected a pid, got {:?}", out.trim()),
    })
}

/// The pids of `pids` still alive on `target`.
pub(super) fn alive(target: &str, ssh: &SshSpec, pids: &[u32]) -> Result<Vec<u32>, LaunchError> {
    if pids.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    let script = format!(
        "for p in {}; do kill -0 $p 2>/dev/null && echo $p; done; true",
        list.join(" ")
    );
    Ok(run_script(target, ssh, &script)?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

pub(super) fn signal(target: &str, ssh: &SshSpec, pids: &[u32], sig: &str) -> Result<(), LaunchError> {
    if pids.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    // Some may have exited already: that is not an error here.
    run_script(
        target,
        ssh,
        &format!("kill -{sig} {} 2>/dev/null; true", list.join(" ")),
    )?;
    Ok(())
}

/// The log's text (empty if it cannot be read yet).
pub(super) fn read_log(target: &str, ssh: &SshSpec, log: &Path) -> String {
    if target == LOCAL {
        return std::fs::read_to_string(log).unwrap_or_default();
    }
    run_script(
        target,
        ssh,
        &format!("cat {} 2>/dev/null; true", sh_quote(&log.to_string_lossy())),
    )
    .unwrap_or_default()
}

pub(super) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// Replaces the host of `scheme://host:port` by `host`.
pub(super) fn with_host(address: &str, host: &str) -> String {
    let (scheme, rest) = address.split_once("://").unwrap_or(("tcp", address));
    let port = rest.rsplit_once(':').map_or("", |(_, p)| p);
    format!("{scheme}://{host}:{port}")
}
