//! Splitting a benchmark into shards: the work list of (video, object, model) units, its
//! deterministic partition into N shards balanced by tracked frames, and the `shard.json` file a
//! shard's inference process writes into its out-dir so that `vosbench merge` can check and join
//! the shards.
//!
//! The partition uses only what `metadata.json` and the options say (frames per unit), never
//! timing or directory order: units are sorted by (tracked frames, descending; then the key) and
//! each goes to the shard with the least frames so far (the lowest index on a tie), the
//! longest-processing-time rule. Every process that reads the same setup computes the same
//! partition.

use crate::bench::plan::{write_json, Fnv, InferenceConfig, Metadata};
use crate::config::ShardSpec;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file a shard's inference process writes into its out-dir.
pub const SHARD_FILE: &str = "shard.json";

/// One (video, object, model) of the work list and the frames it tracks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkUnit {
    pub video: String,
    pub object: String,
    pub model: String,
    /// Tracked frames: from the prompt frame to the clip end.
    pub frames: usize,
}

impl WorkUnit {
    pub fn key(&self) -> (String, String, String) {
        (self.video.clone(), self.object.clone(), self.model.clone())
    }

    /// `video/object/model`, as errors and listings name a unit.
    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.video, self.object, self.model)
    }
}

/// The clip end of an object (as phase B tracks it): `max_clip_frames` after the prompt frame,
/// at most the video's end (0 = the video's end). Saturating: both numbers come from files
/// (metadata.json, inference_config.json) and their sum must not overflow.
pub fn clip_end(video_frames: usize, prompt_frame: usize, max_clip_frames: usize) -> usize {
    if max_clip_frames > 0 {
        prompt_frame
            .saturating_add(max_clip_frames)
            .min(video_frames)
    } else {
        video_frames
    }
}

/// The whole work list of a setup, in run order (model by model, then videos and objects in
/// metadata order).
pub fn work_units(cfg: &InferenceConfig, meta: &Metadata) -> Vec<WorkUnit> {
    let mc = cfg.options.max_clip_frames;
    let mut out = Vec::new();
    for m in &cfg.models {
        for v in &meta.videos {
            for o in &v.objects {
                out.push(WorkUnit {
                    video: v.name.clone(),
                    object: o.id.clone(),
                    model: m.name.clone(),
                    frames: clip_end(v.frames.len(), o.prompt_frame, mc)
                        .saturating_sub(o.prompt_frame),
                });
            }
        }
    }
    out
}

/// The shard of every unit (same order as `units`): longest-processing-time on the frame counts,
/// with the key breaking ties, so the result depends only on the set of units.
pub fn partition(units: &[WorkUnit], count: usize) -> Vec<usize> {
    let count = count.max(1);
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by(|&a, &b| {
        let (ua, ub) = (&units[a], &units[b]);
        ub.frames.cmp(&ua.frames).then_with(|| {
            (&ua.video, &ua.object, &ua.model).cmp(&(&ub.video, &ub.object, &ub.model))
        })
    });
    let mut load = vec![0usize; count];
    let mut assign = vec![0usize; units.len()];
    for i in order {
        let s = (0..count).min_by_key(|&s| (load[s], s)).unwrap_or(0);
        // a unit of 0 frames still costs a model load and a prompt
        load[s] += units[i].frames.max(1);
        assign[i] = s;
    }
    assign
}

/// Frames and units per shard of a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardLoad {
    pub shard: usize,
    pub units: usize,
    pub frames: usize,
}

pub fn loads(units: &[WorkUnit], assign: &[usize], count: usize) -> Vec<ShardLoad> {
    let mut out: Vec<ShardLoad> = (0..count)
        .map(|shard| ShardLoad {
            shard,
            units: 0,
            frames: 0,
        })
        .collect();
    for (u, &s) in units.iter().zip(assign) {
        if let Some(l) = out.get_mut(s) {
            l.units += 1;
            l.frames += u.frames;
        }
    }
    out
}

/// A fingerprint of a work list and its partition (FNV-1a over the sorted units): shards of one
/// run have the same one.
pub fn work_hash(units: &[WorkUnit], assign: &[usize]) -> String {
    let mut lines: Vec<String> = units
        .iter()
        .zip(assign)
        .map(|(u, s)| {
            format!(
                "{}\t{}\t{}\t{}\t{s}\n",
                u.video, u.object, u.model, u.frames
            )
        })
        .collect();
    lines.sort();
    let mut h = Fnv::default();
    for l in &lines {
        h.write(l.as_bytes());
    }
    format!("{:016x}", h.0)
}

/// A unit and the shard it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedUnit {
    #[serde(flatten)]
    pub unit: WorkUnit,
    pub shard: usize,
}

/// `shard.json`: which shard this out-dir holds, the settings it ran with (the inference config
/// as this process used it), and the whole partition, so a merge can name every missing key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardFile {
    pub shard: ShardSpec,
    pub work_hash: String,
    pub config: InferenceConfig,
    pub units: Vec<AssignedUnit>,
}

impl ShardFile {
    pub fn new(cfg: &InferenceConfig, meta: &Metadata, shard: ShardSpec) -> Self {
        let units = work_units(cfg, meta);
        let assign = partition(&units, shard.count);
        let work_hash = work_hash(&units, &assign);
        ShardFile {
            shard,
            work_hash,
            config: cfg.clone(),
            units: units
                .into_iter()
                .zip(assign)
                .map(|(unit, shard)| AssignedUnit { unit, shard })
                .collect(),
        }
    }

    /// The keys of this file's own shard.
    pub fn own_keys(&self) -> std::collections::BTreeSet<(String, String, String)> {
        self.units
            .iter()
            .filter(|u| u.shard == self.shard.index)
            .map(|u| u.unit.key())
            .collect()
    }

    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(SHARD_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::Input(format!(
                "{} is not a shard's out-dir: cannot read {} ({e})",
                dir.display(),
                path.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Input(format!("{} does not parse: {e}", path.display())))
    }

    /// Write this file into `dir`, refusing a dir that holds another shard or another partition
    /// (its CSV would mix two runs).
    pub fn claim(&self, dir: &Path) -> Result<()> {
        let path = dir.join(SHARD_FILE);
        if path.exists() {
            let old = Self::read(dir)?;
            if old.shard != self.shard || old.work_hash != self.work_hash {
                return Err(Error::Input(format!(
                    "{} holds shard {} of another work list or partition (this process runs shard {}); use one fresh --out-dir per shard",
                    dir.display(),
                    old.shard,
                    self.shard
                )));
            }
        }
        write_json(&path, self)
    }
}

/// A uniform work list for planning without a split: `videos` videos with the objects spread
/// over them in turn (`objects` in all), the video lengths spread evenly over
/// `frames_min..=frames_max`, every object prompted on its first frame, for `models` models.
pub fn uniform_units(
    videos: usize,
    objects: usize,
    frames_min: usize,
    frames_max: usize,
    models: &[String],
) -> Result<Vec<WorkUnit>> {
    if videos == 0 || objects < videos || frames_min == 0 || frames_max < frames_min {
        return Err(Error::Input(format!(
            "bad work list: {videos} videos, {objects} objects, {frames_min}-{frames_max} frames (need videos >= 1, objects >= videos, 1 <= min frames <= max frames)"
        )));
    }
    let mut out = Vec::new();
    for m in models {
        for v in 0..videos {
            let frames = if videos == 1 {
                frames_min
            } else {
                frames_min + (frames_max - frames_min) * v / (videos - 1)
            };
            let n_obj = objects / videos + usize::from(v < objects % videos);
            for o in 0..n_obj {
                out.push(WorkUnit {
                    video: format!("video{v:04}"),
                    object: format!("{o:03}"),
                    model: m.clone(),
                    frames,
                });
            }
        }
    }
    Ok(out)
}

/// One shard of a plan: its work and the time it should take.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedShard {
    pub shard: usize,
    pub units: usize,
    pub frames: usize,
    pub seconds: f64,
}

/// What `vosbench plan` predicts for N shards.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub shards: Vec<PlannedShard>,
    pub total_units: usize,
    pub total_frames: usize,
    /// One process doing everything, seconds.
    pub serial_seconds: f64,
    /// The slowest shard, seconds: the wall time of the whole run.
    pub makespan_seconds: f64,
}

impl Plan {
    /// serial time / (shards x makespan): 1 when every shard finishes together.
    pub fn efficiency(&self) -> f64 {
        let n = self.shards.len().max(1) as f64;
        if self.makespan_seconds > 0.0 {
            self.serial_seconds / (n * self.makespan_seconds)
        } else {
            1.0
        }
    }
}

/// Partition `units` into `count` shards and predict each shard's time from the tracking speed
/// of each model (`fps(model)`, frames per second of one process).
pub fn plan(units: &[WorkUnit], count: usize, fps: &dyn Fn(&str) -> Result<f64>) -> Result<Plan> {
    if count == 0 {
        return Err(Error::Input("--shards must be at least 1".into()));
    }
    let assign = partition(units, count);
    let mut shards: Vec<PlannedShard> = (0..count)
        .map(|shard| PlannedShard {
            shard,
            units: 0,
            frames: 0,
            seconds: 0.0,
        })
        .collect();
    let mut serial = 0.0;
    for (u, &s) in units.iter().zip(&assign) {
        let f = fps(&u.model)?;
        let t = u.frames as f64 / f;
        let sh = &mut shards[s];
        sh.units += 1;
        sh.frames += u.frames;
        sh.seconds += t;
        serial += t;
    }
    let makespan = shards.iter().map(|s| s.seconds).fold(0.0, f64::max);
    Ok(Plan {
        total_units: units.len(),
        total_frames: units.iter().map(|u| u.frames).sum(),
        shards,
        serial_seconds: serial,
        makespan_seconds: makespan,
    })
}

/// `1h02m03s`
pub fn hms(seconds: f64) -> String {
    let s = seconds.round() as u64;
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

/// The table `vosbench plan` prints.
pub fn format_plan(p: &Plan) -> String {
    let mut out = format!(
        "{:>5} {:>7} {:>10} {:>12}\n",
        "shard", "units", "frames", "time"
    );
    for s in &p.shards {
        out.push_str(&format!(
            "{:>5} {:>7} {:>10} {:>12}\n",
            s.shard,
            s.units,
            s.frames,
            hms(s.seconds)
        ));
    }
    out.push_str(&format!(
        "{} units, {} frames; one process: {}; {} shards: makespan {} (efficiency {:.1} %)\n",
        p.total_units,
        p.total_frames,
        hms(p.serial_seconds),
        p.shards.len(),
        hms(p.makespan_seconds),
        100.0 * p.efficiency()
    ));
    out
}

/// The lock file of a shard's out-dir while an inference process writes it.
pub const LOCK_FILE: &str = "shard.lock";

/// An out-dir held by this process: `shard.lock` holds its pid and goes away on drop. A second
/// process on the same out-dir is refused while the holder lives; the lock of a process that is
/// gone (killed) is taken over.
#[derive(Debug)]
pub struct ShardLock {
    path: std::path::PathBuf,
}

impl ShardLock {
    pub fn acquire(dir: &Path) -> Result<Self> {
        use std::io::Write;
        let path = dir.join(LOCK_FILE);
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    write!(f, "{}", std::process::id()).map_err(|e| Error::io(&path, e))?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let holder = text.trim().parse::<u32>().ok();
                    // A holder whose launcher was killed stops within a moment
                    // (`launch::exit_with_parent`): wait a little for it before refusing.
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
                    let mut alive = holder.is_some_and(process_alive);
                    while alive && std::time::Instant::now() < deadline {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        alive = holder.is_some_and(process_alive);
                    }
                    if alive {
                        return Err(Error::Input(format!(
                            "{} is in use by process {} ({}); one process per shard out-dir",
                            dir.display(),
                            text.trim(),
                            path.display()
                        )));
                    }
                    // left by a process that is gone
                    std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::Input(format!(
            "{} is being claimed by another process; one process per shard out-dir",
            dir.display()
        )))
    }
}

/// Whether process `pid` runs: it has a /proc entry and is not a zombie (a killed process
/// whose parent is gone may stay a zombie where nothing reaps it).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // the state is the first field after the parenthesised command name
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

impl Drop for ShardLock {
    fn drop(&mut self) {
        // nothing to report if it is already gone
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &str, o: &str, m: &str, frames: usize) -> WorkUnit {
        WorkUnit {
            video: v.into(),
            object: o.into(),
            model: m.into(),
            frames,
        }
    }

    #[test]
    fn shard_specs_parse_and_refuse_bad_text() {
        assert_eq!(
            "1/3".parse::<ShardSpec>().unwrap(),
            ShardSpec::new(1, 3).unwrap()
        );
        assert_eq!(ShardSpec::new(0, 1).unwrap().to_string(), "0/1");
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2", "1/2/3", ""] {
            let e = bad.parse::<ShardSpec>().unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("--shard"), "{e}");
        }
        let s: ShardSpec = serde_json::from_str("\"2/5\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"2/5\"");
        assert!(serde_json::from_str::<ShardSpec>("\"5/5\"").is_err());
    }

    #[test]
    fn partition_is_balanced_complete_and_independent_of_order() {
        let mut units = Vec::new();
        for v in 0..7 {
            for o in 0..(1 + v % 3) {
                for m in ["a", "b"] {
                    units.push(unit(
                        &format!("v{v}"),
                        &format!("{o:03}"),
                        m,
                        10 + 37 * v % 50,
                    ));
                }
            }
        }
        for n in 1..=5 {
            let assign = partition(&units, n);
            assert!(assign.iter().all(|&s| s < n));
            let l = loads(&units, &assign, n);
            assert_eq!(l.iter().map(|l| l.units).sum::<usize>(), units.len());
            let biggest = units.iter().map(|u| u.frames).max().unwrap();
            let (lo, hi) = (
                l.iter().map(|l| l.frames).min().unwrap(),
                l.iter().map(|l| l.frames).max().unwrap(),
            );
            // LPT: no shard is more than one unit above another
            assert!(hi - lo <= biggest, "{n}: {l:?}");
            // the same set in another order gets the same shard per key
            let mut rev = units.clone();
            rev.reverse();
            let ra = partition(&rev, n);
            for (u, s) in rev.iter().zip(&ra) {
                let i = units.iter().position(|x| x == u).unwrap();
                assert_eq!(assign[i], *s);
            }
            assert_eq!(work_hash(&units, &assign), work_hash(&rev, &ra));
        }
        // a different partition has a different fingerprint
        let a2 = partition(&units, 2);
        let a3 = partition(&units, 3);
        assert_ne!(work_hash(&units, &a2), work_hash(&units, &a3));
    }

    #[test]
    fn lpt_puts_the_long_units_apart() {
        let units = vec![
            unit("a", "0", "m", 100),
            unit("b", "0", "m", 90),
            unit("c", "0", "m", 60),
            unit("d", "0", "m", 40),
            unit("e", "0", "m", 10),
        ];
        let assign = partition(&units, 2);
        assert_eq!(assign, vec![0, 1, 1, 0, 0]);
        let l = loads(&units, &assign, 2);
        assert_eq!((l[0].frames, l[1].frames), (150, 150));
        assert_eq!(clip_end(10, 2, 0), 10);
        assert_eq!(clip_end(10, 2, 5), 7);
        assert_eq!(clip_end(10, 8, 5), 10);
    }

    #[test]
    fn plans_predict_each_shard_and_the_makespan() {
        let models = vec!["a".to_string(), "b".to_string()];
        let u = uniform_units(4, 6, 100, 400, &models).unwrap();
        assert_eq!(u.len(), 12);
        // objects 2,2,1,1 over videos of 100, 200, 300, 400 frames
        assert_eq!(
            u.iter().map(|x| x.frames).sum::<usize>(),
            2 * (200 + 400 + 300 + 400)
        );
        let fps = |m: &str| Ok(if m == "a" { 10.0 } else { 20.0 });
        let p1 = plan(&u, 1, &fps).unwrap();
        assert_eq!(p1.shards.len(), 1);
        assert!((p1.makespan_seconds - (1300.0 / 10.0 + 1300.0 / 20.0)).abs() < 1e-9);
        assert!((p1.efficiency() - 1.0).abs() < 1e-12);
        let p3 = plan(&u, 3, &fps).unwrap();
        assert_eq!(p3.shards.iter().map(|s| s.units).sum::<usize>(), 12);
        assert_eq!(p3.shards.iter().map(|s| s.frames).sum::<usize>(), 2600);
        assert!((p3.serial_seconds - p1.serial_seconds).abs() < 1e-9);
        assert!(p3.makespan_seconds < p1.makespan_seconds);
        assert!(p3.makespan_seconds >= p1.serial_seconds / 3.0);
        assert!(format_plan(&p3).contains("makespan"));
        assert!(plan(&u, 0, &fps).is_err());
        let unknown = |m: &str| Err(Error::Input(format!("no fps for {m}")));
        assert!(plan(&u, 2, &unknown).is_err());
        assert!(uniform_units(3, 2, 10, 10, &models).is_err());
        assert!(uniform_units(2, 2, 10, 5, &models).is_err());
        assert_eq!(hms(3723.4), "1h02m03s");
    }

    #[test]
    fn one_process_per_out_dir_and_stale_locks_are_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let lock = ShardLock::acquire(d.path()).unwrap();
        let e = ShardLock::acquire(d.path()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("in use by process"), "{e}");
        drop(lock);
        assert!(!d.path().join(LOCK_FILE).exists());
        // a lock left by a process that has exited
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(d.path().join(LOCK_FILE), dead.to_string()).unwrap();
        let again = ShardLock::acquire(d.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join(LOCK_FILE)).unwrap(),
            std::process::id().to_string()
        );
        drop(again);
    }
}
