"""Per-hop breakdown of rdask's round trip (`roundtrip_latency`), from a
system-wide `perf record` of syscall and wake-up tracepoints; see
docs/benchmarks.md, "Round trip breakdown (issue 15)". Standard library only.

    perf record -q -a -o rt.perf -e syscalls:sys_enter_sendto \
        -e syscalls:sys_exit_recvfrom -e syscalls:sys_enter_write \
        -e syscalls:sys_enter_futex -e syscalls:sys_exit_futex \
        -e syscalls:sys_exit_epoll_wait -e sched:sched_wakeup -- \
        target/release/examples/bench --processes roundtrip_latency
    perf script -i rt.perf -F comm,tid,time,event,trace > rt.txt
    python3 benches/round_trip_hops.py rt.txt

Threads are told apart by name: `bench` (the user's thread), `rdask-client`
(the client's I/O thread), `rdask` (scheduler and worker processes' I/O
threads), `wN-task` (a worker's task threads); messages by their frame
length (`UpdateGraph`, `ComputeTask`, `TaskFinished` and `KeyInMemory` of
one `inc` have distinct sizes). Round trips over 2 ms are left out (a
descheduled process, not a hop).
"""
import re, statistics, sys
rows = []
pat = re.compile(r'^\s*(\S+)\s+(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)$')
for line in open(sys.argv[1]):
    m = pat.match(line)
    if not m:
        continue
    comm, tid, t, ev, rest = m.groups()
    ev = ev.replace('syscalls:sys_', '').replace('sched:sched_', '')
    ln = re.search(r'len: (0x[0-9a-f]+)', rest)
    ret = re.search(r'^(0x[0-9a-f]+)', rest)
    rows.append((comm, int(tid), float(t) * 1e6, ev, int(ln.group(1), 16) if ln else (int(ret.group(1), 16) if ret else None)))
steps = [
    ("user thread queues the submit (eventfd)", lambda r: r[0] == 'bench' and r[3] == 'enter_write' and r[4] is None),
    ("client I/O thread sends UpdateGraph", lambda r: r[0] == 'rdask-client' and r[3] == 'enter_sendto' and r[4] >= 0xd9),
    ("scheduler reads it", lambda r: r[0] == 'rdask' and r[3] == 'exit_recvfrom' and r[4] >= 0xd9),
    ("scheduler sends ComputeTask", lambda r: r[0] == 'rdask' and r[3] == 'enter_sendto' and 0xc0 <= r[4] <= 0xe0),
    ("worker reads it", lambda r: r[0] == 'rdask' and r[3] == 'exit_recvfrom' and 0xc0 <= r[4] <= 0xe0),
    ("task thread done (eventfd to the worker's I/O thread)", lambda r: r[0].endswith('-task') and r[3] == 'enter_write'),
    ("worker sends TaskFinished", lambda r: r[0] == 'rdask' and r[3] == 'enter_sendto' and 0x60 <= r[4] <= 0x80),
    ("scheduler reads it", lambda r: r[0] == 'rdask' and r[3] == 'exit_recvfrom' and 0x60 <= r[4] <= 0x80),
    ("scheduler sends KeyInMemory", lambda r: r[0] == 'rdask' and r[3] == 'enter_sendto' and 0x70 <= r[4] <= 0x90),
    ("client I/O thread reads it", lambda r: r[0] == 'rdask-client' and r[3] == 'exit_recvfrom' and 0x70 <= r[4] <= 0x90),
    ("user thread wakes with the result", lambda r: r[0] == 'bench' and r[3] == 'exit_futex'),
]
trips = []
i = 0
while i < len(rows):
    if not steps[0][1](rows[i]):
        i += 1
        continue
    times, j = [rows[i][2]], i + 1
    for name, ok in steps[1:]:
        while j < len(rows) and not ok(rows[j]):
            j += 1
        if j == len(rows):
            break
        times.append(rows[j][2])
        j += 1
    if len(times) == len(steps) and times[-1] - times[0] < 2000:
        trips.append(times)
    i += 1
print(f"{len(trips)} round trips")
for k in range(1, len(steps)):
    d = [t[k] - t[k - 1] for t in trips]
    print(f"{statistics.median(d):7.1f} us  {steps[k][0]}")
tot = [t[-1] - t[0] for t in trips]
print(f"{statistics.median(tot):7.1f} us  total (median); min {min(tot):.1f}")
