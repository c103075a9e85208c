//! Sharded benchmark runs on the CPU demo split: `bench --shard I/N` from one shared setup, a
//! shard killed and resumed, `vosbench merge` equal to one full run (keys and J&F) and each of
//! its refusals, `vosbench plan` against what the shards really ran, and `bench --devices
//! cpu,cpu` equal to a single process.

use crate::bench_demo::{base_args, cmd, json, read_csv, run_ok, COLUMNS};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

type Key = (String, String, String);

fn col(name: &str) -> usize {
    COLUMNS.split(',').position(|c| c == name).unwrap()
}

/// Three videos of ten frames, one object each, two models: six (video, object, model) units,
/// each tracked to the end of its video so that frame 4 is scored (J&F is not empty).
fn args(out: &Path) -> Vec<String> {
    let mut a = base_args(out);
    for (flag, v) in [
        ("--demo-videos", "3"),
        ("--demo-frames", "10"),
        ("--max-clip-frames", "0"),
    ] {
        let i = a.iter().position(|s| s == flag).unwrap();
        a[i + 1] = v.into();
    }
    a
}

/// key -> (J, F, J&F, status) of a CSV.
fn scores(csv: &Path) -> BTreeMap<Key, Vec<String>> {
    let (header, rows) = read_csv(csv);
    assert_eq!(header, COLUMNS);
    let mut out = BTreeMap::new();
    for r in rows {
        let k = (r[0].clone(), r[1].clone(), r[2].clone());
        let v = ["J", "F", "JandF", "status"]
            .iter()
            .map(|c| r[col(c)].clone())
            .collect();
        assert!(out.insert(k, v).is_none(), "duplicate key in {csv:?}");
    }
    out
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `vosbench merge DIRS --out OUT`: Ok(()) or the one-line error (exit code 2 checked).
fn merge(dirs: &[&Path], out: &Path) -> Result<(), String> {
    let mut a: Vec<String> = vec!["merge".into(), "--quiet".into()];
    a.extend(dirs.iter().map(|d| s(d)));
    a.extend(["--out".into(), s(out)]);
    let o = cmd(&a).output().unwrap();
    if o.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    Err(err)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn shard_args(base: &[String], pre: &Path, out: &Path, shard: Option<&str>) -> Vec<String> {
    let mut a = base.to_vec();
    let i = a.iter().position(|s| s == "--out-dir").unwrap();
    a[i + 1] = s(out);
    a.extend(["--skip-setup".into(), "--preprocessed-dir".into(), s(pre)]);
    if let Some(sh) = shard {
        a.extend(["--shard".into(), sh.into()]);
    }
    a
}

#[test]
fn three_shards_merge_into_one_full_run_and_refusals_name_the_problem() {
    let t0 = Instant::now();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("run");
    let base = args(&root);
    let mut setup = base.clone();
    setup.push("--skip-inference".into());
    run_ok(&setup);
    let pre = root.join("preprocessed");

    // One process, everything.
    let full = root.join("full");
    run_ok(&shard_args(&base, &pre, &full, None));
    let want = scores(&full.join("vosbench_summary.csv"));
    assert_eq!(want.len(), 6);
    for (k, v) in &want {
        assert!(v[2].parse::<f64>().is_ok(), "{k:?} has a J&F: {v:?}");
    }

    // Shard 0/3 runs; its shard.json holds the whole partition. The shard with the most units
    // is killed after its first row and resumed; the other runs straight through.
    let dirs: Vec<PathBuf> = (0..3).map(|i| root.join(format!("shard{i}"))).collect();
    run_ok(&shard_args(&base, &pre, &dirs[0], Some("0/3")));
    let sf = json(&dirs[0].join("shard.json"));
    let units = sf["units"].as_array().unwrap();
    assert_eq!(units.len(), 6, "the whole work list");
    let per = |i: u64| units.iter().filter(|u| u["shard"] == i).count();
    let k = if per(1) >= per(2) { 1 } else { 2 };
    let n_k = per(k as u64);
    assert!(n_k >= 2, "{sf}");
    run_ok(&shard_args(
        &base,
        &pre,
        &dirs[3 - k],
        Some(&format!("{}/3", 3 - k)),
    ));
    let one = shard_args(&base, &pre, &dirs[k], Some(&format!("{k}/3")));
    let csv1 = dirs[k].join("vosbench_summary.csv");
    let mut child = cmd(&one)
        .env("VOSBENCH_ROW_DELAY_MS", "3000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("shard {k}/3 exited ({st}) before it could be killed");
        }
        if csv1.exists() && !read_csv(&csv1).1.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no row after 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = read_csv(&csv1).1;
    assert_eq!(killed.len(), 1, "killed after its first row");
    // Not finished: merge names the missing keys and their shard.
    let e = merge(&[&dirs[0], &dirs[1], &dirs[2]], &root.join("early")).unwrap_err();
    assert!(
        e.contains(&format!("{} keys missing", n_k - 1)) && e.contains(&format!("(shard {k}/3)")),
        "{e}"
    );
    assert!(
        !root.join("early").exists(),
        "a refused merge writes nothing"
    );
    run_ok(&one);
    let resumed = read_csv(&csv1).1;
    assert_eq!(resumed.len(), n_k);
    assert_eq!(
        resumed[0], killed[0],
        "the finished row was kept, not recomputed"
    );

    // Every key in exactly one shard; the shards record their spec.
    let mut seen = BTreeSet::new();
    for (i, dir) in dirs.iter().enumerate() {
        let keys = scores(&dir.join("vosbench_summary.csv"));
        assert!(!keys.is_empty(), "LPT gives every shard work");
        for k in keys.keys() {
            assert!(seen.insert(k.clone()), "{k:?} in two shards");
        }
        assert_eq!(json(&dir.join("summary.json"))["shard"], format!("{i}/3"));
        assert_eq!(json(&dir.join("shard.json"))["shard"], format!("{i}/3"));
    }

    // Merge equals the full run: same keys, same J, F and J&F.
    let merged = root.join("merged");
    merge(&[&dirs[2], &dirs[0], &dirs[1]], &merged).unwrap();
    let got = scores(&merged.join("vosbench_summary.csv"));
    assert_eq!(got, want, "merged shards equal one full run");
    let sum = json(&merged.join("summary.json"));
    assert_eq!(sum["shards"], 3);
    assert_eq!(sum["rows"], 6);
    assert_eq!(sum["merged_from"].as_array().unwrap().len(), 3);
    let full_sum = json(&full.join("summary.json"));
    for (a, b) in sum["models"]
        .as_array()
        .unwrap()
        .iter()
        .zip(full_sum["models"].as_array().unwrap())
    {
        assert_eq!(a["model"], b["model"]);
        assert_eq!(a["JandF_mean"], b["JandF_mean"]);
        assert_eq!(a["rows_ok"], b["rows_ok"]);
    }
    // Merging again over its own output is fine; over a foreign CSV it is not.
    merge(&[&dirs[0], &dirs[1], &dirs[2]], &merged).unwrap();
    let e = merge(&[&dirs[0], &dirs[1], &dirs[2]], &full).unwrap_err();
    assert!(e.contains("would drop or change"), "{e}");

    // Plan: the same partition as the shards ran.
    let o = cmd(&[
        "plan".into(),
        "--shards".into(),
        "3".into(),
        "--preprocessed-dir".into(),
        s(&pre),
        "--results".into(),
        s(&full.join("vosbench_summary.csv")),
        "--json".into(),
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for (i, dir) in dirs.iter().enumerate() {
        assert_eq!(
            plan["shards"][i]["units"],
            read_csv(&dir.join("vosbench_summary.csv")).1.len(),
            "plan and shard {i} agree"
        );
    }
    assert!(plan["makespan_seconds"].as_f64().unwrap() > 0.0);

    // Refusals, each a one-line error with exit code 2, each writing nothing.
    let bad = root.join("bad");
    let e = merge(&[&dirs[0], &dirs[2]], &bad).unwrap_err();
    assert!(
        e.contains("missing shard 1/3") && e.contains("keys missing"),
        "{e}"
    );
    for key in scores(&dirs[1].join("vosbench_summary.csv")).keys() {
        assert!(
            e.contains(&format!("{}/{}/{}", key.0, key.1, key.2)),
            "{key:?}: {e}"
        );
    }
    let e = merge(&[&dirs[0], &dirs[1], &dirs[0]], &bad).unwrap_err();
    assert!(e.contains("given twice"), "{e}");
    // a shard with another setting
    let other = root.join("other_setting");
    copy_dir(&dirs[2], &other);
    let mut sf = json(&other.join("shard.json"));
    sf["config"]["options"]["precision"] = "f16".into();
    std::fs::write(other.join("shard.json"), sf.to_string()).unwrap();
    let e = merge(&[&dirs[0], &dirs[1], &other], &bad).unwrap_err();
    assert!(
        e.contains("mixed settings: precision is f32") && e.contains("f16"),
        "{e}"
    );
    // the same key in two out-dirs
    let dup = root.join("dup");
    copy_dir(&dirs[2], &dup);
    let extra = std::fs::read_to_string(dirs[0].join("vosbench_summary.csv")).unwrap();
    let mut text = std::fs::read_to_string(dup.join("vosbench_summary.csv")).unwrap();
    text.push_str(extra.lines().nth(1).unwrap());
    text.push('\n');
    std::fs::write(dup.join("vosbench_summary.csv"), text).unwrap();
    let e = merge(&[&dirs[0], &dirs[1], &dup], &bad).unwrap_err();
    assert!(
        e.contains("in more than one out-dir") && e.contains("different runs"),
        "{e}"
    );
    let e = merge(&[&dup, &dirs[1]], &bad).unwrap_err();
    assert!(e.contains("not in its shard 2/3"), "{e}");
    // shards of another partition
    let two = root.join("two");
    run_ok(&shard_args(&base, &pre, &two, Some("0/2")));
    let e = merge(&[&dirs[0], &dirs[1], &two], &bad).unwrap_err();
    assert!(e.contains("mixed shard counts"), "{e}");
    // a shard's out-dir is refused to another shard
    let o = cmd(&shard_args(&base, &pre, &two, Some("1/2")))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("holds shard 0/2"), "{err}");
    let o = cmd(&shard_args(&base, &pre, &two, Some("2/2")))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.trim().lines().count() == 1 && err.contains("--shard '2/2'"),
        "{err}"
    );
    assert!(!bad.exists(), "no refused merge wrote anything");
    eprintln!("shard test took {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn devices_cpu_cpu_equals_one_process() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("dev");
    let mut a = args(&out);
    let i = a.iter().position(|s| s == "--device").unwrap();
    a.drain(i..i + 2);
    a.extend(["--devices".into(), "cpu,cpu".into()]);
    let pid = run_ok(&a);
    let got = scores(&out.join("vosbench_summary.csv"));
    assert_eq!(got.len(), 6);
    for i in 0..2 {
        assert!(out
            .join(format!("shard-{i}-of-2"))
            .join("shard.json")
            .exists());
    }
    let sum = json(&out.join("summary.json"));
    assert_eq!(sum["shards"], 2);
    let from = sum["merged_from"].as_array().unwrap();
    assert_eq!(from.len(), 2);
    let pids: BTreeSet<u64> = from
        .iter()
        .map(|f| f["inference_pids"][0].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "one process per device");
    assert!(!pids.contains(&(pid as u64)));
    assert!(from.iter().all(|f| f["device"] == "cpu"));

    // One process on the same setup.
    let single = out.join("single");
    run_ok(&shard_args(
        &args(&out),
        &out.join("preprocessed"),
        &single,
        None,
    ));
    assert_eq!(got, scores(&single.join("vosbench_summary.csv")));
}
