//! A delay line between TUN devices: the stand-in for `tc netem delay 1ms`
//! in the multi-host test cluster (`tests/multi_host.rs`,
//! `examples/bench_hosts.rs`), because this machine's kernel has no
//! `sch_netem` (`tc qdisc add ... netem` answers "Specified qdisc kind is
//! unknown") and nothing can load it.
//!
//! Each endpoint (a "host") is a TUN device (IPv4 packets, no packet-info
//! header) whose file descriptor this process holds. A reader thread per
//! endpoint takes every packet the host sends, looks at its IPv4
//! destination, and puts it in the destination's queue with a release time
//! [`DelayLine::delay`] later; a writer thread per endpoint hands each packet
//! to its destination's TUN when its release time has come, never earlier.
//! The queues are ordered by release time (then arrival), so every
//! direction keeps its order, as a wire does. The real kernel TCP of each
//! namespace then sees the delay in both directions: a 2 ms round trip
//! for 1 ms each way. Bandwidth is not limited here: each TUN has a `tbf`
//! qdisc (`support/hosts.rs`).
//!
//! Closing the descriptors (dropping the [`DelayLine`]) removes the TUN
//! devices, wherever they were moved.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `<linux/if_tun.h>`: a layer-3 device (IP packets, no Ethernet header).
const IFF_TUN: libc::c_short = 0x0001;
/// `<linux/if_tun.h>`: no 4-byte packet-info header before each packet.
const IFF_NO_PI: libc::c_short = 0x1000;
/// `<linux/if_tun.h>`: `_IOW('T', 202, int)`, attach the fd to a device.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// Longest interface name with its NUL (`IFNAMSIZ`).
const IFNAMSIZ: usize = 16;
/// Largest packet read from a TUN (the MTU is set below this).
const MAX_PACKET: usize = 65_535;
/// How often an idle thread looks at the stop flag: the bound on how long
/// dropping the delay line waits for its threads.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags.
#[repr(C)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Creates TUN device `name` in this process's network namespace and
/// returns its descriptor (the device lives as long as the descriptor).
pub fn open_tun(name: &str) -> Result<File, String> {
    if name.len() >= IFNAMSIZ {
        return Err(format!("interface name {name:?} is longer than {} bytes", IFNAMSIZ - 1));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| format!("open /dev/net/tun: {e}"))?;
    let mut req = IfReq {
        name: [0; IFNAMSIZ],
        flags: IFF_TUN | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: the fd is open, and `req` is a live ifreq of the size the
    // kernel reads for TUNSETIFF.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(format!("TUNSETIFF {name}: {}", std::io::Error::last_os_error()));
    }
    Ok(file)
}

/// One endpoint: the address its host has, and its TUN's descriptor.
pub struct Endpoint {
    /// The host's IPv4 address on the shared subnet.
    pub addr: Ipv4Addr,
    /// The host's TUN device.
    pub tun: File,
}

/// A packet waiting for its release time.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    release: Instant,
    seq: u64,
    packet: Vec<u8>,
}

/// The packets on their way to one endpoint, earliest release first.
#[derive(Default)]
struct Queue {
    held: Mutex<BinaryHeap<Reverse<Held>>>,
    ready: Condvar,
}

/// Counters, for tests to check which links carried traffic.
struct Stats {
    n: usize,
    /// Packets forwarded, `[from * n + to]`.
    forwarded: Vec<AtomicU64>,
    /// Packets with no endpoint for their destination (or not IPv4).
    dropped: AtomicU64,
}

/// The running delay line; stops its threads and closes the TUNs on drop.
pub struct DelayLine {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    stats: Arc<Stats>,
    delay: Duration,
}

impl DelayLine {
    /// Starts forwarding between `endpoints`, holding each packet `delay`.
    pub fn start(endpoints: Vec<Endpoint>, delay: Duration) -> Result<DelayLine, String> {
        let n = endpoints.len();
        let addrs: Arc<Vec<Ipv4Addr>> = Arc::new(endpoints.iter().map(|e| e.addr).collect());
        let queues: Arc<Vec<Queue>> = Arc::new((0..n).map(|_| Queue::default()).collect());
        let stats = Arc::new(Stats {
            n,
            forwarded: (0..n * n).map(|_| AtomicU64::new(0)).collect(),
            dropped: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let seq = Arc::new(AtomicU64::new(0));
        let mut line = DelayLine {
            stop: stop.clone(),
            threads: Vec::new(),
            stats: stats.clone(),
            delay,
        };
        for (from, ep) in endpoints.into_iter().enumerate() {
            let out = ep.tun.try_clone().map_err(|e| format!("dup TUN fd: {e}"))?;
            let (stop_r, addrs, queues_r, stats, seq) =
                (stop.clone(), addrs.clone(), queues.clone(), stats.clone(), seq.clone());
            line.threads.push(std::thread::spawn(move || {
                read_loop(from, ep.tun, &addrs, &queues_r, &stats, &seq, delay, &stop_r)
            }));
            let (stop_w, queues_w) = (stop.clone(), queues.clone());
            line.threads
                .push(std::thread::spawn(move || write_loop(&queues_w[from], out, &stop_w)));
        }
        Ok(line)
    }

    /// How long each packet is held (one way).
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Packets forwarded from endpoint `from` to endpoint `to` so far.
    pub fn forwarded(&self, from: usize, to: usize) -> u64 {
        self.stats.forwarded[from * self.stats.n + to].load(Ordering::Relaxed)
    }

    /// Packets dropped because no endpoint has their destination.
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Waits up to [`POLL_INTERVAL`] for `tun` to be readable.
fn readable(tun: &File) -> bool {
    let mut pfd = libc::pollfd {
        fd: tun.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, POLL_INTERVAL.as_millis() as libc::c_int) };
    rc > 0 && pfd.revents & libc::POLLIN != 0
}

/// Endpoint `from`'s reader: queues each packet for its destination.
#[allow(clippy::too_many_arguments)]
fn read_loop(
    from: usize,
    mut tun: File,
    addrs: &[Ipv4Addr],
    queues: &[Queue],
    stats: &Stats,
    seq: &AtomicU64,
    delay: Duration,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; MAX_PACKET];
    while !stop.load(Ordering::Relaxed) {
        if !readable(&tun) {
            continue;
        }
        let Ok(len) = tun.read(&mut buf) else { continue };
        let packet = &buf[..len];
        // IPv4 header: version in the high nibble of byte 0, destination
        // address in bytes 16..20. Anything else (IPv6 router
        // solicitations and the like) has nowhere to go.
        let to = (len >= 20 && packet[0] >> 4 == 4)
            .then(|| Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]))
            .and_then(|dst| addrs.iter().position(|a| *a == dst));
        let Some(to) = to else {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let held = Held {
            release: Instant::now() + delay,
            seq: seq.fetch_add(1, Ordering::Relaxed),
            packet: packet.to_vec(),
        };
        let q = &queues[to];
        q.held.lock().unwrap_or_else(|e| e.into_inner()).push(Reverse(held));
        q.ready.notify_one();
        stats.forwarded[from * stats.n + to].fetch_add(1, Ordering::Relaxed);
    }
}

/// An endpoint's writer: hands each packet to the TUN at its release time.
fn write_loop(q: &Queue, mut tun: File, stop: &AtomicBool) {
    let mut held = q.held.lock().unwrap_or_else(|e| e.into_inner());
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wait = match held.peek() {
            Some(Reverse(h)) if h.release <= now => {
                let Some(Reverse(h)) = held.pop() else { continue };
                drop(held);
                // A failed write is a lost packet, as on a wire: TCP resends.
                let _ = tun.write(&h.packet);
                held = q.held.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            Some(Reverse(h)) => (h.release - now).min(POLL_INTERVAL),
            None => POLL_INTERVAL,
        };
        held = q
            .ready
            .wait_timeout(held, wait)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}
