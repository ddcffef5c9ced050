//! Tests of the config layer: the shipped `config/rdask.toml` cannot drift
//! from the code's defaults, precedence is flag > env > file > default, file
//! discovery, and errors that name the file, line and key.

use rdask::actors::scheduler::SchedulerOptions;
use rdask::actors::worker::WorkerOptions;
use rdask::config::{self, ConfigError, FlagValue, Inputs, RdaskConfig, Source};

mod common;
use common::*;

fn shipped() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/rdask.toml")).expect("config/rdask.toml")
}

#[test]
fn shipped_rdask_toml_is_the_generated_file() {
    assert_eq!(
        shipped(),
        config::default_file_text(),
        "config/rdask.toml is stale: regenerate it with `cargo run -- config default > config/rdask.toml`"
    );
}

/// `key = value` (not a doc line that happens to contain ` = `, nor an
/// unset optional key).
fn is_setting(line: &str) -> bool {
    line.split_once(" = ").is_some_and(|(key, value)| {
        key.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !value.contains("(unset by default)")
    })
}

#[test]
fn shipped_rdask_toml_uncommented_equals_the_defaults() {
    // Every `# key = value` line uncommented must parse to exactly the defaults.
    let text: String = shipped()
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if is_setting(rest) => rest.to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let parsed: RdaskConfig = toml::from_str(&text).expect("uncommented config parses");
    assert_eq!(parsed, RdaskConfig::default());
    // And as shipped (all commented) it is the defaults too.
    let parsed: RdaskConfig = toml::from_str(&shipped()).expect("shipped config parses");
    assert_eq!(parsed, RdaskConfig::default());
}

#[test]
fn defaults_convert_to_the_code_defaults() {
    let c = RdaskConfig::default();
    let s = c.scheduler_options();
    let d = SchedulerOptions::default();
    assert_eq!(s.worker_timeout, d.worker_timeout);
    assert_eq!(s.max_pending_handshakes, d.max_pending_handshakes);
    assert_eq!(s.limits, d.limits);
    assert_eq!(s.state.heartbeat_ms, d.state.heartbeat_ms);
    assert_eq!(s.state.allowed_failures, d.state.allowed_failures);
    assert_eq!(s.state.max_tasks_per_thread, d.state.max_tasks_per_thread);
    let w = c.worker_options("tcp://x:1", None);
    let d = WorkerOptions::default();
    assert_eq!(w.nthreads, d.nthreads);
    assert_eq!(w.inline_limit, d.inline_limit);
    assert_eq!(w.max_concurrent_fetches, d.max_concurrent_fetches);
    assert_eq!(w.listen_host, d.listen_host);
    assert_eq!(w.limits, d.limits);
    assert_eq!(c.scheduler_address(), "tcp://127.0.0.1:8786");
}

#[test]
fn precedence_is_flag_then_env_then_file_then_default() {
    let dir = TempDir::new("precedence");
    let file = dir.0.join("site.toml");
    std::fs::write(
        &file,
        "[scheduler]\nport = 1111\nhost = \"10.0.0.1\"\nheartbeat_ms = 250\n\n[worker]\nmemory_limit = \"2GB\"\nresources = { GPU = 2 }\n",
    )
    .expect("write");
    let inputs = Inputs {
        explicit_file: Some(file.clone()),
        cwd: dir.0.clone(),
        env: vec![
            ("RDASK_SCHEDULER__PORT".into(), "2222".into()),
            ("RDASK_SCHEDULER__HOST".into(), "10.0.0.2".into()),
            ("RDASK_WORKER__NTHREADS".into(), "4".into()),
            // Not config: no section separator.
            ("RDASK_LOG".into(), "debug".into()),
        ],
        flags: vec![FlagValue::new("scheduler", "port", "--port", 3333i64)],
    };
    let loaded = config::load(&inputs).expect("loads");
    let c = &loaded.config;
    assert_eq!(c.scheduler.port, 3333);
    assert_eq!(c.scheduler.host, "10.0.0.2");
    assert_eq!(c.scheduler.heartbeat_ms, 250);
    assert_eq!(c.worker.nthreads, 4);
    assert_eq!(c.worker.memory_limit, config::MemoryLimit::Bytes(2_000_000_000));
    assert_eq!(c.worker.resources.get("GPU"), Some(&2.0));
    assert_eq!(c.worker.inline_limit, RdaskConfig::default().worker.inline_limit);
    let src = |s: &str, k: &str| loaded.sources.get(&(s.to_string(), k.to_string())).cloned();
    assert_eq!(src("scheduler", "port"), Some(Source::Flag("--port".into())));
    assert_eq!(
        src("scheduler", "host"),
        Some(Source::Env("RDASK_SCHEDULER__HOST".into()))
    );
    assert_eq!(src("scheduler", "heartbeat_ms"), Some(Source::File(file.clone())));
    assert_eq!(src("worker", "inline_limit"), Some(Source::Default));
    let shown = loaded.show();
    assert!(shown.contains("port = 3333  # flag --port"), "{shown}");
    assert!(
        shown.contains("host = \"10.0.0.2\"  # env RDASK_SCHEDULER__HOST"),
        "{shown}"
    );
    assert!(shown.contains("heartbeat_ms = 250  # file "), "{shown}");
    assert!(shown.contains("resources = { GPU = 2 }"), "{shown}");
    // What `show` prints is itself a valid config with the same values.
    let reparsed: RdaskConfig = toml::from_str(&shown).expect("show output parses");
    assert_eq!(&reparsed, c);
}

#[test]
fn config_file_is_found_in_cwd_then_user_config_dir() {
    let dir = TempDir::new("discovery");
    let home = dir.0.join("home");
    let user = home.join(".config/rdask");
    std::fs::create_dir_all(&user).expect("mkdir");
    std::fs::write(user.join("rdask.toml"), "[worker]\nnthreads = 7\n").expect("write");
    let cwd = dir.0.join("work");
    std::fs::create_dir_all(&cwd).expect("mkdir");
    let inputs = Inputs {
        explicit_file: None,
        cwd: cwd.clone(),
        env: vec![("HOME".into(), home.to_string_lossy().into_owned())],
        flags: Vec::new(),
    };
    assert_eq!(config::load(&inputs).expect("loads").config.worker.nthreads, 7);
    std::fs::write(cwd.join("rdask.toml"), "[worker]\nnthreads = 5\n").expect("write");
    let loaded = config::load(&inputs).expect("loads");
    assert_eq!(loaded.config.worker.nthreads, 5);
    assert_eq!(loaded.file, Some(cwd.join("rdask.toml")));
    // XDG_CONFIG_HOME wins over ~/.config when there is no ./rdask.toml.
    std::fs::remove_file(cwd.join("rdask.toml")).expect("rm");
    let xdg = dir.0.join("xdg/rdask");
    std::fs::create_dir_all(&xdg).expect("mkdir");
    std::fs::write(xdg.join("rdask.toml"), "[worker]\nnthreads = 9\n").expect("write");
    let mut inputs = inputs;
    inputs.env.push((
        "XDG_CONFIG_HOME".into(),
        dir.0.join("xdg").to_string_lossy().into_owned(),
    ));
    assert_eq!(config::load(&inputs).expect("loads").config.worker.nthreads, 9);
}

#[test]
fn errors_name_the_file_line_and_key() {
    let dir = TempDir::new("errors");
    let file = dir.0.join("bad.toml");
    let load = |text: &str| {
        std::fs::write(&file, text).expect("write");
        config::load(&Inputs {
            explicit_file: Some(file.clone()),
            cwd: dir.0.clone(),
            ..Default::default()
        })
    };
    let e = load("[scheduler]\nport = 1\n\n[worker]\nntreads = 2\n").expect_err("unknown key");
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::Parse { .. }));
    assert!(
        msg.contains("bad.toml") && msg.contains("line 5") && msg.contains("ntreads"),
        "{msg}"
    );
    let msg = load("[scheduler]\nport = \"high\"\n")
        .expect_err("wrong type")
        .to_string();
    assert!(msg.contains("line 2") && msg.contains("port"), "{msg}");
    let msg = load("[nosuch]\nx = 1\n").expect_err("unknown section").to_string();
    assert!(msg.contains("line 1") && msg.contains("nosuch"), "{msg}");
    // A missing --config file is an error, not silently ignored.
    let missing = config::load(&Inputs {
        explicit_file: Some(dir.0.join("nope.toml")),
        ..Default::default()
    });
    assert!(matches!(missing, Err(ConfigError::Read { .. })));
    // Environment errors name the variable.
    let e = config::load(&Inputs {
        env: vec![("RDASK_WORKER__NTHREADS".into(), "many".into())],
        ..Default::default()
    })
    .expect_err("bad env");
    assert!(e.to_string().contains("RDASK_WORKER__NTHREADS"), "{e}");
    let e = config::load(&Inputs {
        env: vec![("RDASK_WORKER__BOGUS".into(), "1".into())],
        ..Default::default()
    })
    .expect_err("unknown env key");
    assert!(
        e.to_string().contains("RDASK_WORKER__BOGUS") && e.to_string().contains("bogus"),
        "{e}"
    );
}

#[test]
fn env_strings_that_look_like_numbers_stay_strings_where_strings_are_expected() {
    let loaded = config::load(&Inputs {
        env: vec![("RDASK_WORKER__LISTEN_HOST".into(), "10".into())],
        ..Default::default()
    })
    .expect("loads");
    assert_eq!(loaded.config.worker.listen_host, "10");
}

#[test]
fn sizes_parse_in_every_accepted_format() {
    use rdask::config::parse_bytes;
    for (text, bytes) in [
        ("0", 0),
        ("4096", 4096),
        ("4GB", 4_000_000_000),
        ("4gb", 4_000_000_000),
        ("4 GB", 4_000_000_000),
        ("2G", 2_000_000_000),
        ("512MiB", 512 * 1024 * 1024),
        ("1.5GiB", 3 * 512 * 1024 * 1024),
        ("1e9", 1_000_000_000),
        ("2.5e3", 2500),
        (" 10kB ", 10_000),
    ] {
        assert_eq!(parse_bytes(text), Ok(bytes), "{text:?}");
    }
    for bad in ["lots", "5 parsecs", "-1GB", "-5", "", "NaN"] {
        let e = parse_bytes(bad).expect_err(bad);
        assert!(e.starts_with("not a size:") && e.contains(&format!("{bad:?}")), "{e}");
    }
    // The same parser reads the config: a bad size names the key.
    let msg = config::load(&Inputs {
        env: vec![("RDASK_WORKER__MEMORY_LIMIT".into(), "5 parsecs".into())],
        ..Default::default()
    })
    .expect_err("bad size")
    .to_string();
    assert!(
        msg.contains("RDASK_WORKER__MEMORY_LIMIT") && msg.contains("not a size"),
        "{msg}"
    );
}
