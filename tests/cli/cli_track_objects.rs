//! `vosbench track` with several objects in one session (`--prompts`, `--object`,
//! `--davis-palette`) on the multi-object fixture scene (three objects, one joining on frame 6):
//! the per-object PNGs equal what a library session with the same prompts gives, the `--object`
//! flags equal the prompts file, the palette layout agrees with the per-object masks, and bad
//! input is one line with exit code 2.

use crate::common::{assert_bad_input, converted_sam2_test, fixture_dir, root, vosbench};
use candle_core::{DType, Device};
use std::path::{Path, PathBuf};
use vosbench::data::masks::{read_label_png, read_mask_png, write_mask_png, Mask};
use vosbench::data::prompt_file::read_prompts_file;
use vosbench::sam2::sam2_base::Sam2Base;
use vosbench::tracker::prompts::{apply_step, load_steps};
use vosbench::tracker::session::{Session, SessionOptions};

fn scene() -> PathBuf {
    fixture_dir("multi_object")
}

fn frames() -> PathBuf {
    scene().join("JPEGImages_24fps/multi3")
}

fn cfg() -> PathBuf {
    root().join("tests/models/sam2.1_test.json")
}

fn track(weights: &str, out: &Path, extra: &[&str]) {
    let (cfg, frames) = (cfg(), frames());
    let mut args = vec![
        "track",
        "--model",
        cfg.to_str().unwrap(),
        "--frames",
        frames.to_str().unwrap(),
        "--weights",
        weights,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = vosbench(&args);
    assert!(
        o.status.success(),
        "track {extra:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The masks of a library session with the `masks` run's prompts: [object][frame].
fn library_masks(weights: &str) -> (Vec<u32>, Vec<Vec<Mask>>) {
    let cfg = vosbench::config::Registry::builtin()
        .unwrap()
        .resolve(cfg().to_str().unwrap())
        .unwrap();
    let vb =
        vosbench::weights::load_var_builder(Path::new(weights), &cfg, DType::F32, &Device::Cpu)
            .unwrap();
    let model = Sam2Base::new(&cfg, vb).unwrap();
    let mut s = Session::open(&model, &frames(), &Device::Cpu, SessionOptions::default()).unwrap();
    let objects = read_prompts_file(&scene().join("prompts.json"), Some("masks")).unwrap();
    let (h, w) = s.video_size();
    let n = s.num_frames();
    for st in load_steps(&objects, n, w, h).unwrap() {
        apply_step(&mut s, &st).unwrap();
    }
    let ids = s.obj_ids();
    let mut masks = vec![vec![Mask::empty(w, h); n]; ids.len()];
    s.propagate(Some(0), None, false, |r| {
        let fg = r
            .video_res_masks
            .gt(0f32)?
            .to_dtype(DType::U8)?
            .flatten_all()?
            .to_vec1::<u8>()?;
        for (i, m) in masks.iter_mut().enumerate() {
            m[r.frame_idx] = Mask::from_vec(
                w,
                h,
                fg[i * w * h..(i + 1) * w * h]
                    .iter()
                    .map(|&v| v > 0)
                    .collect(),
            )
            .unwrap();
        }
        Ok(())
    })
    .unwrap();
    (ids, masks)
}

fn read_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn several_objects_in_one_session_in_the_sav_and_davis_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = converted_sam2_test(tmp.path());
    let prompts = scene().join("prompts.json");

    // the prompts file
    let out = tmp.path().join("file");
    track(
        &weights,
        &out,
        &[
            "--prompts",
            prompts.to_str().unwrap(),
            "--prompts-run",
            "masks",
        ],
    );
    let (ids, want) = library_masks(&weights);
    assert_eq!(ids, [1, 2, 3]);
    let mut late_empty = 0;
    for (i, id) in ids.iter().enumerate() {
        for (f, want) in want[i].iter().enumerate() {
            let p = out.join(format!("multi3/{id:03}/{f:05}.png"));
            let got = read_mask_png(&p).unwrap();
            assert_eq!(&got, want, "{}", p.display());
            if *id == 3 && f < 6 {
                assert!(got.is_empty(), "object 3 joins on frame 6");
                late_empty += 1;
            }
        }
    }
    assert_eq!(late_empty, 6);
    assert!(want.iter().all(|m| m.iter().any(|f| !f.is_empty())));

    // the same prompts as --object flags: the same files
    let m = |id: u32, f: usize| {
        scene()
            .join(format!("Annotations_6fps/multi3/{id:03}/{f:05}.png"))
            .display()
            .to_string()
    };
    let specs = [
        format!("1:mask={}", m(1, 0)),
        format!("2:mask={}@frame=0", m(2, 0)),
        format!("3:mask={}@frame=6", m(3, 6)),
    ];
    let out_flags = tmp.path().join("flags");
    let mut extra = Vec::new();
    for s in &specs {
        extra.extend(["--object", s.as_str()]);
    }
    track(&weights, &out_flags, &extra);
    assert_eq!(read_tree(&out), read_tree(&out_flags));

    // the DAVIS palette layout: one PNG per frame, each pixel one object whose own mask has it
    let out_pal = tmp.path().join("palette");
    extra.push("--davis-palette");
    track(&weights, &out_pal, &extra);
    let mut labelled = 0;
    for f in 0..16 {
        let labels = read_label_png(&out_pal.join(format!("multi3/{f:05}.png"))).unwrap();
        for (p, &l) in labels.labels.iter().enumerate() {
            let owners: Vec<u16> = want
                .iter()
                .zip(&ids)
                .filter(|(masks, _)| masks[f].data[p])
                .map(|(_, &id)| id as u16)
                .collect();
            if l == 0 {
                assert!(
                    owners.is_empty(),
                    "frame {f} pixel {p}: unlabelled but in {owners:?}"
                );
            } else {
                assert!(
                    owners.contains(&l),
                    "frame {f} pixel {p}: label {l}, masks {owners:?}"
                );
                labelled += 1;
            }
        }
    }
    assert!(labelled > 0);
}

#[test]
fn several_objects_bad_input_is_one_line_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = converted_sam2_test(tmp.path());
    let out = tmp.path().join("out");
    let small = tmp.path().join("small.png");
    write_mask_png(&small, &Mask::from_vec(2, 2, vec![true; 4]).unwrap()).unwrap();
    let empty = tmp.path().join("empty.png");
    write_mask_png(&empty, &Mask::empty(64, 48)).unwrap();
    let good = scene().join("Annotations_6fps/multi3/001/00000.png");
    let dup = tmp.path().join("dup.json");
    std::fs::write(
        &dup,
        format!(
            r#"{{"objects": [{{"id": 4, "prompts": [{{"frame": 0, "mask": "{0}"}}]}},
                            {{"id": 4, "prompts": [{{"frame": 1, "mask": "{0}"}}]}}]}}"#,
            good.display()
        ),
    )
    .unwrap();
    let single = tmp.path().join("single.json");
    std::fs::write(
        &single,
        format!(
            r#"{{"objects": [{{"id": 4, "prompts": [{{"frame": 0, "mask": "{}"}}]}}]}}"#,
            good.display()
        ),
    )
    .unwrap();
    let frames = frames();
    let base = |extra: &[String]| -> Vec<String> {
        let mut a: Vec<String> = [
            "track",
            "--model",
            cfg().to_str().unwrap(),
            "--frames",
            frames.to_str().unwrap(),
            "--weights",
            &weights,
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().cloned());
        a
    };
    let obj = |spec: String| vec!["--object".to_string(), spec];
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            obj(format!("1:mask={}", small.display())),
            "is 2x2, the video is 64x48",
        ),
        (obj(format!("1:mask={}", empty.display())), "is empty"),
        (
            obj(format!("1:mask={}@frame=16", good.display())),
            "prompt frame 16 is outside the video (16 frames)",
        ),
        (
            obj("2:point=10,20@frame=99".into()),
            "prompt frame 99 is outside the video",
        ),
        (
            vec!["--prompts".into(), dup.display().to_string()],
            "object id 4 is given twice",
        ),
        (
            [
                vec!["--prompts".to_string(), single.display().to_string()],
                obj("4:point=1,1".into()),
            ]
            .concat(),
            "object id 4 is given twice",
        ),
        (obj("1:point=1,2,7".into()), "label must be 0 or 1"),
        (
            obj(format!("300:mask={}", good.display()))
                .into_iter()
                .chain(["--davis-palette".to_string()])
                .collect(),
            "does not fit a DAVIS palette",
        ),
        (
            vec!["--davis-palette".into(), "--point".into(), "3,3".into()],
            "--davis-palette needs",
        ),
    ];
    for (extra, needle) in cases {
        let args = base(&extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_bad_input(&refs, needle);
        assert!(!out.exists(), "{extra:?}: nothing is written on bad input");
    }
}
