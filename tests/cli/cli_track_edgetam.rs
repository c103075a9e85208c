//! `vosbench convert` and `vosbench track --model <edgetam variant>` end to end on the EdgeTAM
//! test variant: convert the committed `edgetam_test` checkpoint, apply the few tensors the
//! `edgetam_video` fixture replaces (so masks are partial, see
//! tests/reference/make_edgetam_video_fixture.py), track the fixture video from the fixture's
//! click and from its box, and compare the written SA-V-layout masks with the official EdgeTAM
//! predictor's.

use crate::common::{
    click_arg, convert_fixture, fixture_dir, get, load_tensors, read_mask, root, test_config,
    vosbench,
};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use vosbench::compare::mask_overlap;
use vosbench::parity::fixture::apply_overrides;
use vosbench::weights::convert::write_atomic;
use vosbench::weights::inspect_converted;

fn variant_json() -> PathBuf {
    root().join("tests/models/edgetam_test.json")
}

/// `vosbench convert` on the committed checkpoint, then the fixture's overrides written over the
/// converted file (same metadata, validated by the loader's own header check).
fn converted_with_overrides(dir: &Path) -> PathBuf {
    let plain = dir.join("edgetam_test.safetensors");
    convert_fixture("edgetam_test", "edgetam_test", &plain);
    let cfg = test_config("edgetam_test");
    let info = inspect_converted(&plain, &cfg).expect("converted file passes the loader's check");
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(&plain, &Device::Cpu).unwrap();
    let overrides = load_tensors("edgetam_video", "weight_overrides.safetensors");
    assert!(!overrides.is_empty());
    // in the converted file's dtypes
    let overrides: HashMap<String, Tensor> = overrides
        .into_iter()
        .map(|(k, v)| {
            let dtype = tensors.get(&k).map_or(v.dtype(), |old| old.dtype());
            (k, v.to_dtype(dtype).unwrap())
        })
        .collect();
    let source = fixture_dir("edgetam_video").join("weight_overrides.safetensors");
    apply_overrides(&mut tensors, overrides, &source, &plain).unwrap_or_else(|e| panic!("{e}"));
    let mut list: Vec<(String, Tensor)> = tensors.into_iter().collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    let patched = dir.join("edgetam_video.safetensors");
    write_atomic(&patched, &list, info.metadata, |p| {
        inspect_converted(p, &cfg).map(|_| ())
    })
    .unwrap();
    patched
}

/// IoU of every written mask with the reference run's `video_res` logits; returns (mean, min).
fn compare(out: &Path, run: &str, t: &HashMap<String, Tensor>) -> (f64, f64) {
    let frames: Vec<usize> = get(t, &format!("{run}.order"))
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as usize)
        .collect();
    let mut ious = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for &i in &frames {
        if !seen.insert(i) {
            continue;
        }
        let (m, w, h) = read_mask(&out.join("frames/001").join(format!("{i:05}.png")));
        assert_eq!((w, h), (144, 96));
        let want = get(t, &format!("{run}.frame.{i}.video_res"))
            .flatten_all()
            .unwrap();
        let o = mask_overlap(&m, &want).unwrap();
        assert!(o.union > 0, "{run} frame {i}: both masks empty");
        ious.push(o.intersection as f64 / o.union as f64);
    }
    assert_eq!(ious.len(), 24, "{run}: every frame written");
    let mean = ious.iter().sum::<f64>() / ious.len() as f64;
    let min = ious.iter().cloned().fold(1.0, f64::min);
    (mean, min)
}

fn track(weights: &Path, out: &Path, prompt: &[&str]) {
    let frames = fixture_dir("video_test").join("frames");
    let cfg = variant_json();
    let mut args = vec![
        "track",
        "--model",
        cfg.to_str().unwrap(),
        "--frames",
        frames.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(prompt);
    let o = vosbench(&args);
    assert!(
        o.status.success(),
        "track {prompt:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn edgetam_convert_and_track_match_the_official_predictor() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = converted_with_overrides(tmp.path());
    let t = load_tensors("edgetam_video", "tracking.safetensors");

    let point = click_arg(&t);
    let out = tmp.path().join("point");
    track(&weights, &out, &["--point", &point]);
    let (mean, min) = compare(&out, "point", &t);
    eprintln!("edgetam track --point vs official masks: mean IoU {mean:.5}, min {min:.5}");
    assert!(
        mean >= 0.99 && min >= 0.97,
        "point: mean IoU {mean}, min {min}"
    );

    let b = get(&t, "box.prompt.box").to_vec1::<f32>().unwrap();
    let f = get(&t, "box.prompt.frame").to_vec1::<f32>().unwrap()[0] as usize;
    let bbox = format!("{},{},{},{}", b[0], b[1], b[2], b[3]);
    let f = f.to_string();
    let out = tmp.path().join("box");
    track(&weights, &out, &["--box", &bbox, "--prompt-frame", &f]);
    let (mean, min) = compare(&out, "box", &t);
    eprintln!("edgetam track --box (forward, then backward) vs official masks: mean IoU {mean:.5}, min {min:.5}");
    assert!(
        mean >= 0.99 && min >= 0.97,
        "box: mean IoU {mean}, min {min}"
    );
}
