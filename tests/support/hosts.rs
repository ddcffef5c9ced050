//! Three "hosts" on one machine: network namespaces whose only link to
//! each other (and to this process, the client's machine) is a TUN device
//! served by the [`DelayLine`], 1 ms each way, with a 1 Gbit/s `tbf` on each
//! host's sending side. Used by `tests/multi_host.rs` and
//! `examples/bench_hosts.rs`; the design and its reasons are in
//! docs/scale.md, "More than one host".
//!
//! Endpoint 0 is this process's own (root) namespace, where the client
//! runs; endpoints 1..=[`HOSTS`] are the namespaces `rdask-hosts<tag>-<i>`.
//! All have an address on `10.251.<tag % 250>.0/24` (host `i` at `.i`, the
//! client at `.254`), which exists only on these devices. Dropping the
//! [`Hosts`] stops the delay line (closing the TUNs removes them) and
//! deletes the namespaces, pass or fail; a namespace left by a killed run
//! is removed by `ip netns del` of its name.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use super::delay_line::{open_tun, DelayLine, Endpoint};

/// Hosts in the cluster (namespaces), besides the client's.
pub const HOSTS: usize = 3;
/// One-way delay of every link (what `tc netem delay 1ms` would add).
pub const DELAY: Duration = Duration::from_millis(1);
/// Each host's sending rate (`tbf` on its TUN).
pub const RATE: &str = "1gbit";
/// The TUNs' MTU: large, so a 1 Gbit/s stream is ~2,000 packets a second
/// through the delay line rather than ~80,000.
pub const MTU: u32 = 65_000;
/// `tbf` bucket: a few full-size packets (must hold at least one).
const TBF_BURST: &str = "256kb";
/// `tbf` queue: packets waiting longer than this for tokens are dropped.
const TBF_LATENCY: &str = "50ms";
/// Longest an RTT probe waits for its peer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `ip ARGS` (in namespace `ns` if given); its stderr on failure.
fn ip(ns: Option<&str>, args: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["netns", "exec", ns, "ip"]);
    }
    run(cmd.args(args))
}

/// Runs `tc ARGS` in namespace `ns` (or here).
fn tc(ns: Option<&str>, args: &[&str]) -> Result<(), String> {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "tc"]);
            c
        }
        None => Command::new("tc"),
    };
    run(cmd.args(args))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let what = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The cluster's network; torn down on drop.
pub struct Hosts {
    tag: u32,
    namespaces: Vec<String>,
    line: Option<DelayLine>,
}

impl Hosts {
    /// Makes the namespaces, TUNs, addresses and rate limits, and starts
    /// the delay line. `tag` keeps names and the subnet apart from other
    /// runs (the process id will do; two runs at once clash only if their
    /// tags agree modulo 250, and then `ip addr add` fails or routes
    /// cross).
    pub fn new(tag: u32) -> Result<Hosts, String> {
        let mut hosts = Hosts {
            tag,
            namespaces: Vec::new(),
            line: None,
        };
        let mut endpoints = Vec::new();
        for i in 0..=HOSTS {
            let dev = hosts.dev(i);
            let tun = open_tun(&dev)?;
            let ns = if i == 0 {
                None
            } else {
                let ns = format!("rdask-hosts{tag}-{i}");
                // One left by a killed run whose pid was the same: no live
                // run can be using it (pids are unique while alive).
                let _ = ip(None, &["netns", "del", &ns]);
                ip(None, &["netns", "add", &ns])?;
                hosts.namespaces.push(ns.clone());
                ip(None, &["link", "set", &dev, "netns", &ns])?;
                ip(Some(&ns), &["link", "set", "lo", "up"])?;
                Some(ns)
            };
            let ns = ns.as_deref();
            let addr = hosts.addr(i);
            ip(ns, &["addr", "add", &format!("{addr}/24"), "dev", &dev])?;
            ip(ns, &["link", "set", &dev, "mtu", &MTU.to_string(), "up"])?;
            tc(
                ns,
                &[
                    "qdisc",
                    "replace",
                    "dev",
                    &dev,
                    "root",
                    "tbf",
                    "rate",
                    RATE,
                    "burst",
                    TBF_BURST,
                    "latency",
                    TBF_LATENCY,
                ],
            )?;
            endpoints.push(Endpoint { addr, tun });
        }
        hosts.line = Some(DelayLine::start(endpoints, DELAY)?);
        Ok(hosts)
    }

    /// TUN device name of endpoint `i` (at most 15 bytes).
    fn dev(&self, i: usize) -> String {
        format!("rdt{}x{i}", self.tag % 100_000)
    }

    /// Namespace of host `i` (1..=HOSTS).
    pub fn ns(&self, i: usize) -> &str {
        &self.namespaces[i - 1]
    }

    /// Address of endpoint `i`: 0 is the client (this process), 1..=HOSTS the hosts.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        let last = if i == 0 { 254 } else { i as u8 };
        Ipv4Addr::new(10, 251, (self.tag % 250) as u8, last)
    }

    /// `ip netns exec <host i's namespace> PROGRAM`: a process on host `i`.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns(i), program]);
        cmd
    }

    /// The delay line, for its counters.
    pub fn line(&self) -> &DelayLine {
        self.line.as_ref().expect("started in new")
    }

    /// `n` round trips of one byte over TCP (Nagle off) from endpoint
    /// `from` to endpoint `to`, measured by threads of this process that
    /// enter those namespaces: the network's RTT, shown, not assumed.
    pub fn tcp_rtt(&self, from: usize, to: usize, n: usize) -> Result<Vec<Duration>, String> {
        let (to_ns, from_ns) = (self.ns_path(to), self.ns_path(from));
        let bind = SocketAddr::from((self.addr(to), 0));
        let (tx, rx) = std::sync::mpsc::channel();
        // The echo side; not joined: it ends by itself after PROBE_TIMEOUT.
        std::thread::spawn(move || {
            let r = enter(to_ns.as_deref()).and_then(|()| {
                let l = TcpListener::bind(bind).map_err(|e| format!("bind {bind}: {e}"))?;
                let _ = tx.send(l.local_addr().map_err(|e| e.to_string()));
                echo(l)
            });
            if let Err(e) = r {
                let _ = tx.send(Err(e));
            }
        });
        let server = rx
            .recv_timeout(PROBE_TIMEOUT)
            .map_err(|_| "the echo side did not start".to_string())??;
        std::thread::spawn(move || {
            enter(from_ns.as_deref())?;
            let mut s =
                TcpStream::connect_timeout(&server, PROBE_TIMEOUT).map_err(|e| format!("connect {server}: {e}"))?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(|e| e.to_string())?;
            let mut rtts = Vec::with_capacity(n);
            let mut b = [0u8; 1];
            for _ in 0..n {
                let t = Instant::now();
                s.write_all(&b)
                    .and_then(|()| s.read_exact(&mut b))
                    .map_err(|e| format!("echo: {e}"))?;
                rtts.push(t.elapsed());
            }
            Ok(rtts)
        })
        .join()
        .map_err(|_| "the probe panicked".to_string())?
    }

    /// `/var/run/netns/<name>` of endpoint `i` (None: this namespace).
    fn ns_path(&self, i: usize) -> Option<String> {
        (i > 0).then(|| format!("/var/run/netns/{}", self.ns(i)))
    }
}

/// Moves this thread into the network namespace at `path`.
fn enter(path: Option<&str>) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    let f = std::fs::File::open(path).map_err(|e| format!("open {path}: {e}"))?;
    // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Accepts one connection (within PROBE_TIMEOUT) and echoes it until it closes.
fn echo(l: TcpListener) -> Result<(), String> {
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut s = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    s.set_nonblocking(false).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut b = [0u8; 1];
    while s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {}
    Ok(())
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Closing the TUNs removes the devices, wherever they are.
        self.line.take();
        for ns in &self.namespaces {
            let _ = ip(None, &["netns", "del", ns]);
        }
    }
}
