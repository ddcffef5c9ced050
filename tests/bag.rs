//! Bags (`rdask::bag`): every operation against a sequential reference on
//! random input (proptest, on the local executor, with random partition
//! counts and reduction trees), text files in and out (gzip, line-aligned
//! blocks), the seed's JSON pipeline on an embedded cluster, and the same
//! pipeline on real `rdask scheduler` / `rdask worker` processes.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use rdask::bag::{self, Bag};
use rdask::delayed::ComputeOptions;
use rdask::{Client, LocalCluster};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod common;
use common::*;

#[rdask::task]
fn double(x: i64) -> i64 {
    x.wrapping_mul(2)
}

#[rdask::task]
fn is_even(x: i64) -> bool {
    x % 2 == 0
}

/// `x mod 3` copies of `x`: some elements vanish, some multiply.
#[rdask::task]
fn repeat(x: i64) -> Vec<i64> {
    vec![x; x.rem_euclid(3) as usize]
}

#[rdask::task]
fn mod3(x: i64) -> i64 {
    x.rem_euclid(3)
}

#[rdask::task]
fn add_acc(acc: i64, x: i64) -> i64 {
    acc.wrapping_add(x)
}

#[rdask::task]
fn add2(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}

#[rdask::task]
fn reverse_part(mut xs: Vec<i64>) -> Vec<i64> {
    xs.reverse();
    xs
}

#[rdask::task]
fn part_len(xs: Vec<i64>) -> u64 {
    xs.len() as u64
}

#[rdask::task]
fn total_len(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

#[rdask::task]
fn neg(x: i64) -> i64 {
    x.wrapping_neg()
}

#[rdask::task]
fn to_line(x: i64) -> String {
    format!("n={x}")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Person {
    name: String,
    age: u8,
}

#[rdask::task]
fn person(x: i64) -> Person {
    Person {
        name: format!("p{}", x.rem_euclid(5)),
        age: x.rem_euclid(90) as u8,
    }
}

fn local<T: serde::de::DeserializeOwned>(b: &Bag<T>) -> Result<Vec<T>, TestCaseError> {
    let opts = ComputeOptions {
        fuse: true,
        local_threads: 2,
    };
    b.compute_local_with(&opts)
        .map_err(|e| TestCaseError::fail(e.to_string()))
}

fn one<T: serde::de::DeserializeOwned>(d: &rdask::delayed::Delayed<T>) -> Result<T, TestCaseError> {
    d.compute_local().map_err(|e| TestCaseError::fail(e.to_string()))
}

/// Items with their first-seen order: `(item, count)` in order of first
/// occurrence.
fn first_seen_counts<T: PartialEq + Clone>(xs: &[T]) -> Vec<(T, u64)> {
    let mut out: Vec<(T, u64)> = Vec::new();
    for x in xs {
        match out.iter_mut().find(|(y, _)| y == x) {
            Some((_, n)) => *n += 1,
            None => out.push((x.clone(), 1)),
        }
    }
    out
}

fn input() -> impl Strategy<Value = (Vec<i64>, usize, usize)> {
    (prop::collection::vec(-20i64..20, 0..80), 1usize..7, 2usize..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn element_wise_operations_match_a_sequential_reference((xs, np, se) in input()) {
        let b = bag::from_sequence(xs.clone(), np).unwrap().split_every(se);
        prop_assert_eq!(local(&b)?, xs.clone());
        prop_assert_eq!(local(&b.map(double))?, xs.iter().map(|x| x * 2).collect::<Vec<_>>());
        prop_assert_eq!(local(&b.filter(is_even))?, xs.iter().copied().filter(|x| x % 2 == 0).collect::<Vec<_>>());
        prop_assert_eq!(local(&b.map_with(add2, 5i64))?, xs.iter().map(|x| x + 5).collect::<Vec<_>>());
        prop_assert_eq!(local(&b.remove(is_even))?, xs.iter().copied().filter(|x| x % 2 != 0).collect::<Vec<_>>());
        prop_assert_eq!(local(&b.flat_map(repeat))?, xs.iter().flat_map(|&x| repeat(x)).collect::<Vec<_>>());
        prop_assert_eq!(local(&b.map(repeat).flatten())?, xs.iter().flat_map(|&x| repeat(x)).collect::<Vec<_>>());
        // A chain: fused into one task per partition, same values.
        let chain = b.map(double).filter(is_even).map(neg);
        prop_assert_eq!(local(&chain)?, xs.iter().map(|x| -(x * 2)).collect::<Vec<_>>());
        let unfused = chain.compute_local_with(&ComputeOptions { fuse: false, local_threads: 2 }).unwrap();
        prop_assert_eq!(unfused, xs.iter().map(|x| -(x * 2)).collect::<Vec<_>>());
        // map_partitions reverses each partition: compare partition by partition.
        let parts: Vec<Vec<i64>> = b.to_delayed().iter().map(|p| p.compute_local().unwrap()).collect();
        prop_assert_eq!(parts.concat(), xs.clone());
        let reversed: Vec<i64> = parts.iter().flat_map(|p| p.iter().rev().copied()).collect();
        prop_assert_eq!(local(&b.map_partitions(reverse_part))?, reversed);
        // take: the first partition only, or the first n of several.
        let n = xs.len() / 2 + 1;
        prop_assert_eq!(one(&b.take(n))?, parts[0].iter().copied().take(n).collect::<Vec<_>>());
        prop_assert_eq!(one(&b.take_from(n, np))?, xs.iter().copied().take(n).collect::<Vec<_>>());
        prop_assert_eq!(one(&b.concat())?, xs.clone());
    }

    #[test]
    fn pluck_matches_a_sequential_reference((xs, np, _se) in input()) {
        let b = bag::from_sequence(xs.clone(), np).unwrap();
        let people = b.map(person);
        let want: Vec<Person> = xs.iter().map(|&x| person(x)).collect();
        prop_assert_eq!(local(&people.pluck::<String>("name"))?, want.iter().map(|p| p.name.clone()).collect::<Vec<_>>());
        prop_assert_eq!(local(&people.pluck::<u8>("age"))?, want.iter().map(|p| p.age).collect::<Vec<_>>());
        let pairs = bag::from_sequence(xs.iter().map(|&x| (x, format!("s{x}"))).collect::<Vec<_>>(), np).unwrap();
        prop_assert_eq!(local(&pairs.pluck::<String>(1))?, xs.iter().map(|x| format!("s{x}")).collect::<Vec<_>>());
        let json = bag::from_sequence(xs.iter().map(|&x| format!("{{\"name\":\"n{}\",\"v\":{x}}}", x % 4)).collect::<Vec<_>>(), np).unwrap();
        let values: Bag<Value> = json.map(bag::json_loads);
        prop_assert_eq!(local(&values.pluck::<Value>("v"))?, xs.iter().map(|&x| Value::from(x)).collect::<Vec<_>>());
    }

    #[test]
    fn reductions_match_a_sequential_reference((xs, np, se) in input()) {
        let b = bag::from_sequence(xs.clone(), np).unwrap().split_every(se);
        prop_assert_eq!(one(&b.count())?, xs.len() as u64);
        prop_assert_eq!(one(&b.sum())?, xs.iter().sum::<i64>());
        let small: Vec<i64> = xs.iter().map(|x| x % 4).collect();
        let sb = bag::from_sequence(small.clone(), np).unwrap().split_every(se);
        prop_assert_eq!(one(&sb.product())?, small.iter().product::<i64>());
        let evens = b.map(is_even);
        prop_assert_eq!(one(&evens.all())?, xs.iter().all(|x| x % 2 == 0));
        prop_assert_eq!(one(&evens.any())?, xs.iter().any(|x| x % 2 == 0));
        prop_assert_eq!(local(&b.frequencies())?, first_seen_counts(&xs));
        let mut distinct = first_seen_counts(&xs).into_iter().map(|(x, _)| x).collect::<Vec<_>>();
        prop_assert_eq!(local(&b.distinct())?, distinct.clone());
        distinct.sort_unstable_by(|a, b| b.cmp(a));
        let mut sorted = xs.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        prop_assert_eq!(local(&b.topk(3))?, sorted.iter().copied().take(3).collect::<Vec<_>>());
        // By a key function: stable, so ties keep input order.
        let mut by_key: Vec<i64> = xs.clone();
        by_key.sort_by_key(|&x| std::cmp::Reverse(x.rem_euclid(3)));
        prop_assert_eq!(local(&b.topk_by_fn(4, mod3))?, by_key.iter().copied().take(4).collect::<Vec<_>>());
        // Dask's frequencies().topk(k, key=1): ties in first-seen order.
        let mut freq = first_seen_counts(&xs);
        freq.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        prop_assert_eq!(local(&b.frequencies().topk_by(2, 1))?, freq.iter().take(2).cloned().collect::<Vec<_>>());
        prop_assert_eq!(one(&b.fold(add_acc, add2, 0i64))?, xs.iter().sum::<i64>());
        prop_assert_eq!(one(&b.reduction(part_len, total_len))?, xs.len() as u64);
        if xs.is_empty() {
            prop_assert!(one(&b.max()).is_err());
            prop_assert!(one(&b.mean()).is_err());
            prop_assert!(one(&b.var(0)).is_err());
        } else {
            prop_assert_eq!(one(&b.max())?, *xs.iter().max().unwrap());
            prop_assert_eq!(one(&b.min())?, *xs.iter().min().unwrap());
            let mean = xs.iter().sum::<i64>() as f64 / xs.len() as f64;
            prop_assert!((one(&b.mean())? - mean).abs() < 1e-9);
            let squares: f64 = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum();
            let var0 = squares / xs.len() as f64;
            prop_assert!((one(&b.var(0))? - var0).abs() < 1e-9 * (1.0 + var0));
            prop_assert!((one(&b.std(0))? - var0.sqrt()).abs() < 1e-9 * (1.0 + var0));
            if xs.len() > 1 {
                let var1 = squares / (xs.len() - 1) as f64;
                prop_assert!((one(&b.var(1))? - var1).abs() < 1e-9 * (1.0 + var1));
            } else {
                prop_assert!(one(&b.var(1)).is_err());
            }
        }
    }

    #[test]
    fn group_reductions_match_a_sequential_reference((xs, np, se) in input()) {
        let b = bag::from_sequence(xs.clone(), np).unwrap().split_every(se);
        let mut groups: Vec<(i64, Vec<i64>)> = Vec::new();
        for &x in &xs {
            let k = x.rem_euclid(3);
            match groups.iter_mut().find(|(g, _)| *g == k) {
                Some((_, v)) => v.push(x),
                None => groups.push((k, vec![x])),
            }
        }
        // A shuffle: each group whole in one partition, elements in input
        // order; which partition holds it is a hash.
        for k in [1, 2, np + 1] {
            let shuffled = b.groupby_into(mod3, k);
            prop_assert_eq!(shuffled.npartitions(), k);
            let mut got = local(&shuffled)?;
            got.sort_by_key(|(g, _)| *g);
            let mut want = groups.clone();
            want.sort_by_key(|(g, _)| *g);
            prop_assert_eq!(got, want);
        }
        let sums: Vec<(i64, i64)> = groups.iter().map(|(k, v)| (*k, v.iter().sum())).collect();
        prop_assert_eq!(local(&b.foldby(mod3, add_acc, 0i64, add2))?, sums);
        let people = b.map(person);
        let mut ages: BTreeMap<String, i64> = BTreeMap::new();
        for &x in &xs {
            let p = person(x);
            *ages.entry(p.name).or_default() += i64::from(p.age);
        }
        #[rdask::task]
        fn add_age(acc: i64, p: Person) -> i64 {
            acc + i64::from(p.age)
        }
        let got: BTreeMap<String, i64> = local(&people.foldby_field("name", add_age, 0i64, add2))?.into_iter().collect();
        prop_assert_eq!(got, ages);
    }

    #[test]
    fn text_files_round_trip_gzipped_or_plain_and_in_blocks(
        lines in prop::collection::vec("[a-z {}:\"0-9]{0,30}", 0..60),
        np in 1usize..6,
        blocksize in 1u64..200,
    ) {
        let dir = TempDir::new("bag-text");
        let b = bag::from_sequence(lines.clone(), np).unwrap();
        for pattern in ["out/*.txt.gz", "zst/*.txt.zst", "plain/*.txt"] {
            let glob = dir.0.join(pattern).to_string_lossy().into_owned();
            let written = one(&b.to_textfiles(&glob))?;
            prop_assert_eq!(written.len(), b.npartitions());
            prop_assert_eq!(local(&bag::read_text(&glob).unwrap())?, lines.clone());
        }
        let glob = dir.0.join("plain/*.txt").to_string_lossy().into_owned();
        let blocks = bag::read_text_blocks(&glob, blocksize).unwrap();
        prop_assert!(blocks.npartitions() >= b.npartitions());
        prop_assert_eq!(local(&blocks)?, lines);
    }
}

fn write_json_lines(dir: &std::path::Path) -> Vec<String> {
    let names = ["alice", "bob", "carol", "dan", "eve"];
    let mut all = Vec::new();
    for day in 1..=3 {
        let path = dir.join(format!("2015-01-0{day}.json.gz"));
        let file = std::fs::File::create(&path).unwrap();
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        for i in 0..(40 * day) {
            let name = names[(i * i + day) % names.len()];
            all.push(name.to_string());
            use std::io::Write;
            writeln!(gz, "{{\"name\":\"{name}\",\"n\":{i}}}").unwrap();
        }
        gz.finish().unwrap();
    }
    all
}

/// The seed's `read_text(…).map(json.loads).pluck('name').frequencies().topk(k, key=1)`.
fn seed_pipeline(glob: &str) -> Bag<(Value, u64)> {
    bag::read_text(glob)
        .unwrap()
        .map(bag::json_loads)
        .pluck::<Value>("name")
        .frequencies()
        .topk_by(3, 1)
}

fn expected_top(names: &[String]) -> Vec<(Value, u64)> {
    let mut freq = first_seen_counts(names);
    freq.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    freq.into_iter().take(3).map(|(n, c)| (Value::from(n), c)).collect()
}

#[test]
fn the_seeds_json_pipeline_runs_on_an_embedded_cluster() -> anyhow::Result<()> {
    let dir = TempDir::new("bag-seed");
    let names = write_json_lines(&dir.0);
    let glob = dir.0.join("2015-*-*.json.gz").to_string_lossy().into_owned();
    let cluster = LocalCluster::new(2)?;
    assert!(cluster.wait_for_workers(2, Duration::from_secs(10)));
    let client = cluster.client()?;
    let top = seed_pipeline(&glob);
    let want = expected_top(&names);
    assert_eq!(top.compute(&client)?, want);
    assert_eq!(top.compute_local()?, want);
    let b = bag::read_text(&glob)?;
    assert_eq!(b.npartitions(), 3);
    assert_eq!(b.count().compute(&client)?, names.len() as u64);
    // A changed file is a new key, read anew (the same file, the same key).
    let plain = dir.0.join("plain.txt");
    std::fs::write(&plain, "a\nb\n")?;
    let before = bag::read_text(&plain.to_string_lossy())?.count();
    assert_eq!(before.key(), bag::read_text(&plain.to_string_lossy())?.count().key());
    assert_eq!(before.compute(&client)?, 2);
    std::fs::write(&plain, "a\nb\nc\n")?;
    let after = bag::read_text(&plain.to_string_lossy())?.count();
    assert_ne!(after.key(), before.key());
    assert_eq!(after.compute(&client)?, 3);
    // A graph of many partitions and a deep tree on the cluster.
    let xs: Vec<i64> = (0..1000).collect();
    let many = bag::from_sequence(xs.clone(), 50)?.split_every(3);
    assert_eq!(many.map(double).sum().compute(&client)?, 999_000);
    assert_eq!(many.map(to_line).compute(&client)?.len(), 1000);
    // A bag of no partitions computes to nothing; its reductions to their
    // empty values.
    let empty: Bag<i64> = Bag::from_delayed(Vec::new());
    assert_eq!(empty.map(double).compute(&client)?, Vec::<i64>::new());
    assert_eq!(empty.count().compute(&client)?, 0);
    assert_eq!(empty.frequencies().compute(&client)?, Vec::<(i64, u64)>::new());
    assert!(empty.max().compute(&client).is_err());
    // A failing element function fails the compute with its message.
    let bad = bag::from_sequence(vec!["{".to_string()], 1)?.map(bag::json_loads);
    let err = bad.compute(&client).unwrap_err().to_string();
    assert!(err.contains("not JSON"), "{err}");
    let err = bag::read_text(&dir.0.join("nothing-*.txt").to_string_lossy())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no files match"), "{err}");
    Ok(())
}

#[test]
fn the_seeds_pipeline_runs_on_real_scheduler_and_worker_processes() -> anyhow::Result<()> {
    let dir = TempDir::new("bag-real");
    let names = write_json_lines(&dir.0);
    let glob = dir.0.join("2015-*-*.json.gz").to_string_lossy().into_owned();
    let (_s, addr) = scheduler();
    let (_w1, _) = worker_with(&addr, "w1", &["--nthreads", "1"]);
    let (_w2, _) = worker_with(&addr, "w2", &["--nthreads", "1"]);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 2);
    // Plain `rdask worker`s have the bag runners and `json_loads` built in.
    assert_eq!(seed_pipeline(&glob).compute(&client)?, expected_top(&names));
    let out = dir.0.join("names-*.txt.gz").to_string_lossy().into_owned();
    let written = bag::read_text(&glob)?
        .map(bag::json_loads)
        .pluck::<String>("name")
        .to_textfiles(&out)
        .compute(&client)?;
    assert_eq!(written.len(), 3);
    assert_eq!(bag::read_text(&out)?.compute(&client)?, names);
    // groupby shuffles between the two workers, with a built-in key.
    let xs: Vec<i64> = (0..300).map(|i| (i * 7) % 11).collect();
    let shuffled = bag::from_sequence(xs.clone(), 6)?.groupby_into(rdask::builtins::inc, 4);
    let parts = shuffled
        .to_delayed()
        .iter()
        .map(|d| d.compute(&client))
        .collect::<Result<Vec<_>, _>>()?;
    assert!(parts.iter().filter(|p| !p.is_empty()).count() > 1, "{parts:?}");
    // 11 keys, each once over all partitions: no group is split.
    assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 11, "{parts:?}");
    let mut got: Vec<(i64, Vec<i64>)> = shuffled.compute(&client)?;
    got.sort_by_key(|(k, _)| *k);
    let want: Vec<(i64, Vec<i64>)> = (0..11)
        .map(|g| (g + 1, xs.iter().copied().filter(|&x| x == g).collect()))
        .collect();
    assert_eq!(got, want);
    // An element function the workers lack: the error says so.
    let err = bag::from_sequence(vec![1i64], 1)?
        .map(double)
        .compute(&client)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not have"), "{err}");
    Ok(())
}

fn bag_names_example() -> Option<std::path::PathBuf> {
    // The example binary sits next to the test's `rdask` binary's folder.
    std::path::Path::new(rdask_bin())
        .parent()
        .map(|d| d.join("examples").join("bag_names"))
        .filter(|p| p.exists())
}

#[test]
fn the_bag_names_example_runs_embedded_and_against_real_processes() -> anyhow::Result<()> {
    let Some(example) = bag_names_example() else {
        cannot_run("the bag_names example is not built (cargo test builds it)");
        return Ok(());
    };
    let dir = TempDir::new("bag-example");
    let data = dir.0.to_string_lossy().into_owned();
    let small = ["--files", "3", "--lines", "2000", "--dir", &data];
    let out = std::process::Command::new(&example).args(small).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("results agree") && text.contains("Alice"), "{text}");
    let (_s, addr) = scheduler();
    let (_w, _) = worker_with(&addr, "w1", &[]);
    wait_for_workers(&Client::connect(&addr)?, 1);
    let out = std::process::Command::new(&example)
        .args(small)
        .args(["--scheduler", &addr])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("results agree"), "{text}");
    Ok(())
}

#[test]
fn element_wise_chains_are_one_call_and_fuse_into_one_task_per_partition() -> anyhow::Result<()> {
    let b = bag::from_sequence(0..100i64, 4)?;
    let chain = b.map(double).filter(is_even).map(neg);
    assert_eq!(chain.task_count(&ComputeOptions::default())?, 4);
    // Unfused: the partitions, then one pipeline call each for all three
    // operations.
    assert_eq!(chain.task_count(&ComputeOptions::default().fuse(false))?, 8);
    // 16 partitions, split_every 4: 16 fused chains, then 4 + 1 combiners.
    let sum = bag::from_sequence(0..100i64, 16)?.split_every(4).map(double).sum();
    assert_eq!(sum.task_count(&ComputeOptions::default())?, 16 + 4 + 1);
    assert_eq!(sum.compute_local()?, 9900);
    Ok(())
}

#[test]
fn compressed_files_interoperate_with_the_gzip_and_zstd_tools() -> anyhow::Result<()> {
    for tool in ["gzip", "zstd"] {
        let found = std::process::Command::new(tool).arg("--version").output().is_ok();
        if !found {
            cannot_run(&format!("the {tool} tool is not installed"));
            return Ok(());
        }
    }
    let dir = TempDir::new("bag-tools");
    let lines: Vec<String> = (0..500).map(|i| format!("line {i} {}", "x".repeat(i % 7))).collect();
    for (ext, tool) in [("gz", "gzip"), ("zst", "zstd")] {
        // Ours, unpacked by the tool.
        let glob = dir.0.join(format!("ours-*.txt.{ext}")).to_string_lossy().into_owned();
        let paths = bag::from_sequence(lines.clone(), 2)?
            .to_textfiles(&glob)
            .compute_local()?;
        let mut unpacked = String::new();
        for p in &paths {
            let out = std::process::Command::new(tool).args(["-dc", p]).output()?;
            assert!(
                out.status.success(),
                "{tool} -dc {p}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            unpacked.push_str(&String::from_utf8(out.stdout)?);
        }
        assert_eq!(unpacked, lines.iter().map(|l| format!("{l}\n")).collect::<String>());
        // The tool's, two members / frames in one file, read by us.
        let theirs = dir.0.join(format!("theirs.txt.{ext}"));
        let mut packed = Vec::new();
        for half in lines.chunks(250) {
            let text = half.iter().map(|l| format!("{l}\n")).collect::<String>();
            let mut child = std::process::Command::new(tool)
                .arg("-c")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()?;
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(text.as_bytes())?;
            let out = child.wait_with_output()?;
            assert!(out.status.success());
            packed.extend(out.stdout);
        }
        std::fs::write(&theirs, packed)?;
        assert_eq!(bag::read_text(&theirs.to_string_lossy())?.compute_local()?, lines);
    }
    Ok(())
}

/// Size of the on-disk input of the streaming test: several times what
/// each worker may peak at.
const STREAM_INPUT: usize = 96 << 20;
/// Block size of that test's partitions.
const STREAM_BLOCK: u64 = 2 << 20;

#[test]
fn a_bag_several_times_the_workers_peak_memory_streams_through_in_blocks() -> anyhow::Result<()> {
    let dir = TempDir::new("bag-stream");
    let path = dir.0.join("big.json");
    let mut names: BTreeMap<String, u64> = BTreeMap::new();
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let (mut written, mut i) = (0usize, 0u64);
        while written < STREAM_INPUT {
            let name = format!("name{}", (i * 7919) % 23);
            let line = format!(
                "{{\"name\":\"{name}\",\"i\":{i},\"pad\":\"{}\"}}\n",
                "p".repeat((i % 50) as usize)
            );
            out.write_all(line.as_bytes())?;
            written += line.len();
            *names.entry(name).or_default() += 1;
            i += 1;
        }
    }
    let (_s, addr) = scheduler();
    let (w1, _) = worker_with(&addr, "w1", &["--nthreads", "1"]);
    let (w2, _) = worker_with(&addr, "w2", &["--nthreads", "1"]);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 2);
    let b = bag::read_text_blocks(&path.to_string_lossy(), STREAM_BLOCK)?;
    let size = std::fs::metadata(&path)?.len();
    assert_eq!(b.npartitions() as u64, size.div_ceil(STREAM_BLOCK));
    let got: BTreeMap<String, u64> = b
        .map(bag::json_loads)
        .pluck::<String>("name")
        .frequencies()
        .compute(&client)?
        .into_iter()
        .collect();
    assert_eq!(got, names);
    for w in [&w1, &w2] {
        let peak = proc_memory(w.pid(), "VmHWM");
        eprintln!(
            "worker {} peak RSS {} MiB for {} MiB of input",
            w.pid(),
            peak >> 20,
            STREAM_INPUT >> 20
        );
        assert!(
            peak < STREAM_INPUT as u64 / 2,
            "a worker peaked at {peak} bytes for {STREAM_INPUT} bytes of input"
        );
    }
    Ok(())
}
