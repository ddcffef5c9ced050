//! The dashboard as a person sees it: a scheduler and two workers as real
//! processes run a graph while a real headless Chromium (Debian's
//! `chromium`, driven over the DevTools protocol, tests/browser) shows the
//! status, workers and events pages. The test checks what the pages show
//! (worker count, progress reaching the total, task-stream bars, the
//! workers' table, at 1,000 workers too, the event log and the workers'
//! logs, memory and spills), that the browser reports no JavaScript
//! error, and saves a screenshot of each page (into docs/dashboard/ with
//! `RDASK_UPDATE_SCREENSHOTS=1`).
//! Under CI a missing chromium fails the test (`common::cannot_run`).

use std::path::PathBuf;
use std::process::Command;

use rdask::builtins::{add, fail, inc, make_blob, sleep_ms};
use rdask::wire::messages::StreamKind;
use rdask::{Client, SubmitOptions};

mod browser;
mod common;

use browser::Browser;
use common::{rdask_bin, start_logged, wait_for_workers, TempDir};

/// Where the screenshots go: the build's temporary directory, so that a
/// test run leaves the work tree as it was; with
/// `RDASK_UPDATE_SCREENSHOTS=1`, docs/dashboard/ (the ones the docs show).
fn screenshot_dir() -> PathBuf {
    let dir = if std::env::var_os("RDASK_UPDATE_SCREENSHOTS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots")
    };
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// `rdask scheduler` with its HTTP port; returns it, its address and the
/// dashboard's status page address.
fn scheduler_with_dashboard(dir: &TempDir, extra: &[&str]) -> (common::Proc, String, String) {
    let (p, addrs) = start_logged(
        Command::new(rdask_bin())
            .args(["scheduler", "--host", "127.0.0.1", "--port", "0", "--http-port", "0"])
            .args(extra),
        &["rdask scheduler listening on", "rdask dashboard at"],
        &dir.0.join("scheduler.log"),
    );
    (p, addrs[0].clone(), addrs[1].clone())
}

fn worker(scheduler: &str, name: &str, extra: &[&str]) -> common::Proc {
    common::worker_with(scheduler, name, &[&["--nthreads", "2"], extra].concat()).0
}

#[test]
fn the_dashboard_shows_a_running_cluster_in_a_real_browser() {
    let Some(browser) = Browser::launch() else {
        common::cannot_run("chromium is not installed (Debian package chromium)");
        return;
    };
    let dir = TempDir::new("status");
    let (_s, address, status) = scheduler_with_dashboard(&dir, &[]);
    let _w1 = worker(&address, "alpha", &[]);
    // beta spills: its results past 60 % of 200 MB go to disk.
    let _w2 = worker(&address, "beta", &["--memory-limit", "200MB"]);
    let client = Client::connect(&address).expect("client connects");
    wait_for_workers(&client, 2);

    let mut page = browser.page();
    page.navigate(&status);
    page.wait_for(
        "the page shows two workers",
        "document.getElementById('summary').dataset.workers === '2'",
    );
    assert_eq!(page.eval("document.querySelectorAll('#processing .row').length"), 2);

    // A graph: 40 sleeps of 40-79 ms on 4 threads (about 0.6 s), and
    // an inc of each.
    let sleeps = client.map(sleep_ms, 40..80u64).expect("submit sleeps");
    let incs: Vec<_> = (0..40i64)
        .map(|i| client.submit(inc, (i,)).expect("submit inc"))
        .collect();
    // And a task that fails twice, retried once: the event log says so.
    let failing = client
        .submit_with(
            fail,
            ("on purpose".to_string(),),
            &SubmitOptions {
                retries: 1,
                ..Default::default()
            },
        )
        .expect("submit fail");
    let progress_total = |f: &str| {
        format!(
            "(() => {{ const r = document.querySelector('.progress-row[data-function$=\"{f}\"]'); \
             return r && r.dataset.memory === r.dataset.total && r.dataset.total === '40'; }})()"
        )
    };
    page.wait_for("sleep_ms progress reaches 40 of 40", &progress_total("sleep_ms"));
    page.wait_for("inc progress reaches 40 of 40", &progress_total("inc"));
    client.gather(&sleeps).expect("sleeps ran");
    client.gather(&incs).expect("incs ran");
    assert!(failing.result().is_err(), "fail fails");
    page.wait_for(
        "the failing task shows as erred",
        "(() => { const r = document.querySelector('.progress-row[data-function$=\"fail\"]'); \
         return r && r.dataset.erred === '1'; })()",
    );
    let bars = page.wait_for(
        "the task stream draws a bar per task",
        "Number(document.getElementById('task-stream').dataset.bars) >= 80 && \
         Number(document.getElementById('task-stream').dataset.bars)",
    );
    assert!(bars.as_u64().unwrap_or(0) >= 80, "{bars}");
    // A lane per worker thread: 2 workers of 2 threads.
    assert_eq!(page.eval("document.getElementById('task-stream').dataset.lanes"), "4");

    // Memory: 10 results of 20 MB on beta, more than it keeps in memory,
    // then the oldest read back: spills and a read show in the task
    // stream, and beta's memory bar has results in memory, unmanaged
    // memory and spilled bytes.
    let on_beta = SubmitOptions {
        workers: vec!["beta".to_string()],
        pure: false,
        ..Default::default()
    };
    let blobs: Vec<_> = (0..10u64)
        .map(|seed| {
            client
                .submit_with(make_blob, (20_000_000u64, seed), &on_beta)
                .expect("submit blob")
        })
        .collect();
    client
        .wait(&blobs, rdask::ReturnWhen::AllCompleted, None)
        .expect("blobs made");
    page.wait_for(
        "the task stream shows beta's spills",
        "Number(document.getElementById('task-stream').dataset.spillBars) > 0",
    );
    client.gather(&blobs[..1]).expect("the oldest blob read back");
    page.wait_for(
        "the task stream shows the spilled blob read back",
        "Number(document.getElementById('task-stream').dataset.unspillBars) > 0",
    );
    let beta_memory = "document.querySelector('#memory .memory-row[data-worker=beta]').dataset";
    page.wait_for(
        "beta's memory bar shows results in memory, unmanaged memory and spilled bytes",
        &format!(
            "(() => {{ const d = {beta_memory}; return Number(d.managed) > 0 && Number(d.unmanaged) > 0 && \
             Number(d.spilled) >= 20000000; }})()"
        ),
    );
    page.screenshot(&screenshot_dir().join("status.png"));

    // The workers page: a row per worker, sortable.
    let workers_url = status.replace("/status", "/workers");
    page.navigate(&workers_url);
    page.wait_for(
        "the workers table has both workers",
        "document.querySelectorAll('#workers-table tbody tr').length === 2",
    );
    let first = "document.querySelector('#workers-table tbody tr').dataset.worker";
    assert_eq!(page.eval(first), "alpha");
    page.eval("document.querySelector('#workers-table th[data-key=name]').click()");
    page.wait_for(
        "sorting by name descending puts beta first",
        &format!("{first} === 'beta'"),
    );
    // The load columns come from the heartbeats: beta's spilled bytes and
    // its process memory.
    let beta_cell =
        |i: usize| format!("document.querySelector('#workers-table tr[data-worker=beta]').children[{i}].textContent");
    page.wait_for(
        "beta's row shows spilled bytes",
        &format!("{} !== '0 B' && {} !== '0 B'", beta_cell(7), beta_cell(4)),
    );
    page.screenshot(&screenshot_dir().join("workers.png"));

    // At 1,000 workers (a saved update with made-up rows, not 1,000
    // processes): every row is there, and sorting by CPU works.
    page.eval(&thousand_workers_update());
    page.wait_for(
        "the table has 1,000 rows",
        "document.querySelectorAll('#workers-table tbody tr').length === 1000",
    );
    page.eval("document.querySelector('#workers-table th[data-key=cpu_percent]').click()");
    let first_cpu = "document.querySelector('#workers-table tbody tr').children[3].textContent";
    page.wait_for(
        "sorting by CPU puts the busiest first",
        &format!("{first_cpu} === '399 %'"),
    );
    page.eval("document.querySelector('#workers-table th[data-key=cpu_percent]').click()");
    page.wait_for("and again the idlest first", &format!("{first_cpu} === '0 %'"));
    eprintln!(
        "workers table of 1,000 rows built in {} ms",
        page.eval("document.querySelector('#workers-table tbody').dataset.renderMs")
    );

    // The graph page: every task the scheduler knows, in layers: two
    // adds over the incs make three layers and four dependencies.
    let pair = client.submit(add, (&incs[0], &incs[1])).expect("submit add");
    let total = client.submit(add, (&pair, &incs[2])).expect("submit add");
    // inc(0) + inc(1), plus inc(2).
    assert_eq!(total.result().expect("added"), 6);
    let ntasks = client.scheduler_info().expect("info").ntasks;
    page.navigate(&status.replace("/status", "/graph"));
    page.wait_for(
        "the graph page draws every task",
        &format!("document.getElementById('task-graph').dataset.nodes === '{ntasks}'"),
    );
    let graph_json = page.eval(
        "(() => { const x = new XMLHttpRequest(); x.open('GET', '/api/v1/dashboard/graph', false); \
         x.send(); const g = JSON.parse(x.responseText); \
         return JSON.stringify(g.edges.map(([a, b]) => [g.nodes[a].key, g.nodes[b].key])); })()",
    );
    assert_eq!(
        page.eval("document.getElementById('task-graph').dataset.edges"),
        "4",
        "{graph_json}"
    );
    assert_eq!(page.eval("document.getElementById('task-graph').dataset.layers"), "3");
    assert_eq!(
        page.eval("JSON.parse(document.getElementById('task-graph').dataset.states).erred"),
        1
    );
    page.screenshot(&screenshot_dir().join("graph.png"));

    // The events page: both workers joined.
    page.navigate(&status.replace("/status", "/events"));
    page.wait_for(
        "the event log shows both workers joining",
        "document.querySelectorAll('#events-table tr[data-kind=worker-joined]').length === 2",
    );
    for kind in ["retry", "task-erred"] {
        page.wait_for(
            &format!("the event log shows a {kind} event"),
            &format!("document.querySelectorAll('#events-table tr[data-kind={kind}]').length === 1"),
        );
    }
    // The workers' logs: each worker's process log, through the scheduler.
    for name in ["alpha", "beta"] {
        page.wait_for(
            &format!("{name}'s log lines are shown"),
            &format!(
                "(() => {{ const d = document.querySelector('#worker-logs details[data-worker={name}]'); \
                 return d !== null && d.textContent.includes('registered with the scheduler'); }})()"
            ),
        );
    }
    page.screenshot(&screenshot_dir().join("events.png"));
    drop(blobs);

    let errors = page.errors();
    assert!(errors.is_empty(), "JavaScript errors: {errors:#?}");
}

#[test]
fn with_a_token_the_dashboard_needs_it() {
    let Some(browser) = Browser::launch() else {
        common::cannot_run("chromium is not installed (Debian package chromium)");
        return;
    };
    let dir = TempDir::new("token");
    let (_s, address, status) = scheduler_with_dashboard(&dir, &["--token", "s3cret"]);
    let _w = common::worker_with(&address, "alpha", &["--token", "s3cret"]).0;
    let mut page = browser.page();
    page.navigate(&status);
    let body = page.eval("document.body.innerText");
    assert!(
        body.as_str().unwrap_or("").contains("needs the cluster's token"),
        "{body}"
    );
    page.navigate(&format!("{status}?token=wrong"));
    assert!(page
        .eval("document.body.innerText")
        .as_str()
        .unwrap_or("")
        .contains("needs the cluster's token"));
    page.navigate(&format!("{status}?token=s3cret"));
    page.wait_for(
        "the page, given the token, shows the worker live",
        "document.getElementById('summary').dataset.workers === '1' && \
         document.getElementById('connection').textContent === 'live'",
    );
    // Its links carry the token on.
    assert!(page
        .eval("document.querySelector('nav a[data-page=workers]').href")
        .as_str()
        .unwrap_or("")
        .ends_with("/workers?token=s3cret"));
    // The 401 of a page load is the browser's only console complaint.
    let errors: Vec<String> = page.errors().into_iter().filter(|e| !e.contains("401")).collect();
    assert!(errors.is_empty(), "JavaScript errors: {errors:#?}");
}

#[test]
fn task_stream_and_performance_report_show_the_runs_of_a_graph() {
    let dir = TempDir::new("report");
    let (_s, address, _status) = scheduler_with_dashboard(&dir, &[]);
    let _w1 = worker(&address, "alpha", &[]);
    let _w2 = worker(&address, "beta", &[]);
    let client = Client::connect(&address).expect("client connects");
    wait_for_workers(&client, 2);
    // Something before the report, which it must leave out.
    client
        .gather(&[client.submit(inc, (-1i64,)).expect("submit")])
        .expect("ran");

    let path = dir.0.join("report.html");
    let report = client.performance_report(&path).expect("report starts");
    let sleeps = client.map(sleep_ms, 20..40u64).expect("submit sleeps");
    let incs = client.map(inc, 0..30i64).expect("submit incs");
    client.gather(&sleeps).expect("sleeps ran");
    client.gather(&incs).expect("incs ran");
    assert_eq!(report.finish().expect("report written"), path);

    // The task stream: every run, with its worker, thread and times.
    let stream = client.get_task_stream().expect("task stream");
    let runs: Vec<_> = stream.iter().filter(|r| r.kind == StreamKind::Compute).collect();
    assert_eq!(runs.len(), 51, "{stream:#?}");
    for r in &runs {
        assert!(["alpha", "beta"].contains(&r.worker.as_str()), "{r:?}");
        assert!(r.thread < 2, "{r:?}");
        assert!(r.start_us <= r.stop_us, "{r:?}");
    }
    let sleep = runs
        .iter()
        .find(|r| r.key == sleeps[5].key())
        .expect("a sleep's record");
    assert!(sleep.function.ends_with("sleep_ms"), "{sleep:?}");
    assert!(sleep.stop_us - sleep.start_us >= 25_000, "slept 25 ms: {sleep:?}");
    let seqs: Vec<u64> = stream.iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "oldest first");

    // The report, offline in the browser: the 50 runs it covered.
    let Some(browser) = Browser::launch() else {
        common::cannot_run("chromium is not installed (Debian package chromium)");
        return;
    };
    let mut page = browser.page();
    page.navigate(&format!("file://{}", path.display()));
    page.wait_for(
        "the report draws its bars",
        "document.getElementById('task-stream').dataset.bars === '50'",
    );
    let count = |f: &str| format!("document.querySelector('#function-stats tr[data-function$=\"{f}\"]').dataset.count");
    assert_eq!(page.eval(&count("sleep_ms")), "20");
    assert_eq!(page.eval(&count("inc")), "30");
    page.screenshot(&screenshot_dir().join("report.png"));
    let errors = page.errors();
    assert!(errors.is_empty(), "JavaScript errors: {errors:#?}");
}

/// A script showing a saved update of 1,000 made-up workers on the page
/// (`window.rdaskShow`): worker `i` uses `i * 37 % 400` percent CPU.
fn thousand_workers_update() -> String {
    "window.rdaskShow({ now_us: Date.now() * 1000, tasks_by_state: {}, nclients: 0, tasks_finished: 0, \
     progress: [], stream: [], events: [], rss_bytes: 0, cpu_percent: null, mailbox_latency_seconds: null, \
     workers: Array.from({ length: 1000 }, (_, i) => ({ name: 'w' + String(i).padStart(4, '0'), \
       address: 'tcp://10.0.' + (i >> 8) + '.' + (i & 255) + ':4000', nthreads: 4, memory_limit: 8e9, \
       nbytes: i * 1e6, nkeys: i, processing: i % 7, status: 'running', last_seen_ms: i % 1000, \
       spilled_bytes: (i * 7919) % 1000 * 1e5, rss_bytes: 1e9 + i * 1e6, cpu_percent: (i * 37) % 400, \
       bandwidth: i * 1e4 })) })"
        .to_string()
}
