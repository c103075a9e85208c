//! Parity of the tracker's frame preprocessing and mask post-processing with the official SAM 2.1
//! video predictor, on tests/fixtures/preprocess (written by
//! tests/reference/make_preprocess_fixtures.py with Pillow, numpy, scipy and the official
//! `sam2.utils.misc` functions).
//!
//! - Pillow BICUBIC resize: bit-exact (max abs difference 0) on every case.
//! - Normalized model input from Pillow's decoded RGB: bit-exact with the official tensor.
//! - JPEG decoding (src/image/jpeg.rs vs Pillow / libjpeg-turbo): bit-exact.
//! - Hole filling: bit-exact with the official function.

use crate::common;

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use vosbench::compare::byte_diff;
use vosbench::image::{decode_rgb, pil_resize_bicubic_rgb, rgb_to_input_tensor};
use vosbench::tracker::frames::{list_jpeg_frames, VideoFrames};
use vosbench::tracker::postprocess::fill_holes_in_mask_scores;
use vosbench::Error;

fn fixtures() -> HashMap<String, Tensor> {
    common::load_tensors("preprocess", "preprocess.safetensors")
}

fn u8s(t: &Tensor) -> Vec<u8> {
    assert_eq!(t.dtype(), DType::U8);
    t.flatten_all().unwrap().to_vec1::<u8>().unwrap()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// The synthetic test image of the reference script (`synth`): `[h, w, 3]` u8.
fn synth(seed: u32, w: usize, h: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h as u32 {
        for x in 0..w as u32 {
            for c in 0..3u32 {
                let mut hs = seed.wrapping_mul(0x9E37_79B1)
                    ^ x.wrapping_mul(0x85EB_CA77)
                    ^ y.wrapping_mul(0xC2B2_AE3D)
                    ^ c.wrapping_mul(0x27D4_EB2F);
                hs ^= hs >> 15;
                hs = hs.wrapping_mul(0x2C1B_3C6D);
                hs ^= hs >> 12;
                hs = hs.wrapping_mul(0x297A_2D39);
                hs ^= hs >> 15;
                let v = match ((x / 13) + (y / 11)) % 3 {
                    0 => hs & 0xFF,
                    1 => (x * 3 + y * 2 + c * 50) % 256,
                    _ => 255 * (((x / 3) + (y / 2) + c) % 2),
                };
                out.push(v as u8);
            }
        }
    }
    out
}

/// FNV-1a-64, little-endian bytes (as the reference script stores it).
fn fnv1a64(data: &[u8]) -> [u8; 8] {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in data {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h.to_le_bytes()
}

fn parse_wh(s: &str) -> (u32, u32) {
    let (w, h) = s.split_once('x').expect("WxH");
    (w.parse().unwrap(), h.parse().unwrap())
}

#[test]
fn pillow_bicubic_resize_is_bit_exact() {
    let t = fixtures();
    let mut cases: Vec<&str> = t
        .keys()
        .filter_map(|k| k.strip_prefix("resize.")?.strip_suffix(".src_fnv"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected the reference script's resize cases, got {cases:?}"
    );
    let mut large = 0;
    for case in cases {
        // "{letter}_{W}x{H}_to_{w}x{h}"; the letter picks the seed (a=1, b=2, ...).
        let mut parts = case.split('_');
        let seed = parts.next().unwrap().as_bytes()[0] - b'a' + 1;
        let (sw, sh) = parse_wh(parts.next().unwrap());
        assert_eq!(parts.next(), Some("to"));
        let (ow, oh) = parse_wh(parts.next().unwrap());
        let src = synth(seed as u32, sw as usize, sh as usize);
        assert_eq!(
            fnv1a64(&src).to_vec(),
            u8s(&common::get(&t, &format!("resize.{case}.src_fnv"))),
            "{case}: the synthetic source differs from the reference script's"
        );
        let t0 = std::time::Instant::now();
        let out = pil_resize_bicubic_rgb(&src, sw, sh, ow, oh).unwrap();
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        assert_eq!(out.len(), (ow * oh * 3) as usize);
        if let Some(want) = t.get(&format!("resize.{case}.out")) {
            let want = u8s(want);
            let (max, n) = byte_diff(&out, &want).unwrap();
            eprintln!("resize {case}: max abs diff {max}, {n} differing values ({ms:.1} ms)");
            assert_eq!(
                (max, n),
                (0, 0),
                "{case}: resize is not bit-exact with Pillow"
            );
        } else {
            large += 1;
            let row = (ow * 3) as usize;
            let m = oh as usize / 2;
            let h = oh as usize;
            let mut bands = Vec::with_capacity(12 * row);
            for r in (0..4).chain(m - 2..m + 2).chain(h - 4..h) {
                bands.extend_from_slice(&out[r * row..(r + 1) * row]);
            }
            let want = u8s(&common::get(&t, &format!("resize.{case}.bands")));
            let (max, n) = byte_diff(&bands, &want).unwrap();
            eprintln!("resize {case}: bands max abs diff {max}, {n} differing ({ms:.1} ms)");
            assert_eq!(
                (max, n),
                (0, 0),
                "{case}: resize is not bit-exact with Pillow"
            );
            assert_eq!(
                fnv1a64(&out).to_vec(),
                u8s(&common::get(&t, &format!("resize.{case}.fnv"))),
                "{case}: the whole output differs from Pillow's (hash mismatch)"
            );
        }
    }
    assert!(large >= 2, "the large cases (hash-checked) are missing");
}

fn frames_dir() -> PathBuf {
    common::fixture_dir("preprocess").join("frames")
}

#[test]
fn frame_listing_matches_the_official_loader() {
    let t = fixtures();
    let frames = VideoFrames::open(frames_dir()).unwrap();
    let names: Vec<String> = frames
        .paths()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // 4.Jpg, 5.png and notes.txt are skipped; the order is by integer value, not by name.
    assert_eq!(names, ["00000.jpg", "1.jpeg", "2.JPG", "10.jpg"]);
    assert_eq!(frames.len(), 4);
    let hw: Vec<i64> = common::get(&t, "frames.video_hw").to_vec1().unwrap();
    assert_eq!(
        (frames.height() as i64, frames.width() as i64),
        (hw[0], hw[1])
    );
    assert_eq!(list_jpeg_frames(&frames_dir()).unwrap(), frames.paths());
}

#[test]
fn normalized_input_from_pillow_rgb_is_bit_exact() {
    let t = fixtures();
    let official = common::get(&t, "frames.images");
    let s = official.dim(2).unwrap();
    let names = ["00000_jpg", "1_jpeg", "2_JPG", "10_jpg"];
    for (i, name) in names.iter().enumerate() {
        let rgb = common::get(&t, &format!("decode.{name}"));
        let (h, w, _) = rgb.dims3().unwrap();
        let got = rgb_to_input_tensor(&u8s(&rgb), w as u32, h as u32, s, &Device::Cpu).unwrap();
        let want = official.narrow(0, i, 1).unwrap();
        common::assert_close(&format!("normalized {name}"), &got, &want, 1e-6);
        let (g, w) = (f32s(&got), f32s(&want));
        let n_diff = g
            .iter()
            .zip(&w)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            n_diff, 0,
            "{name}: {n_diff} values differ from the official tensor"
        );
    }
}

/// `decode_rgb` decodes JPEG with src/image/jpeg.rs, which reproduces Pillow's libjpeg-turbo
/// decode byte for byte (measured: 0 values differ on every file below), so the bounds are 0.
///
/// For the record, the `image` crate (zune-jpeg), which decoded JPEG here before, is not
/// bit-identical. Measured on the fixture JPEGs (quality 90), image 0.25.10 / zune-jpeg 0.5.15 vs
/// Pillow 13.0.0:
///
/// | file | chroma | max abs diff | values differing |
/// |---|---|---|---|
/// | frames/00000.jpg | 4:2:0 | 3 | 27.3% |
/// | frames/1.jpeg | 4:2:0 | 3 | 26.2% |
/// | frames/2.JPG | 4:2:0 | 3 | 26.1% |
/// | frames/10.jpg | 4:2:0 | 4 | 25.8% |
/// | frames/4.Jpg | 4:2:0 | 3 | 26.4% |
/// | extra/q90_444.jpg | 4:4:4 | 2 | 1.3% |
/// | extra/gray.jpg | gray | 1 | 0.5% |
///
/// Most of it is chroma upsampling: libjpeg's "fancy" h2v2 upsampling keeps the vertical 3:1 sums
/// unrounded and rounds once (`(3a + b + 8) >> 4` / `+ 7`), while zune-jpeg rounds the vertical
/// pass to 8 bits and then the horizontal pass again. The rest (1-2 levels on ~1% of values, no
/// subsampling involved) is the IDCT / colour conversion arithmetic.
const DECODE_MAX_ABS_DIFF: u8 = 0;
const DECODE_MAX_FRACTION_420: f64 = 0.0;
const DECODE_MAX_FRACTION_444: f64 = 0.0;

#[test]
fn jpeg_decoding_against_pillow() {
    let t = fixtures();
    let root = common::fixture_dir("preprocess");
    let files = [
        "frames/00000.jpg",
        "frames/1.jpeg",
        "frames/2.JPG",
        "frames/10.jpg",
        "frames/4.Jpg",
        "extra/gray.jpg",
        "extra/q90_444.jpg",
    ];
    let mut worst = 0u8;
    for f in files {
        let (rgb, w, h) = decode_rgb(&root.join(f)).unwrap();
        let name = Path::new(f)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .replace('.', "_");
        let want = common::get(&t, &format!("decode.{name}"));
        assert_eq!(want.dims(), &[h as usize, w as usize, 3], "{f}: size");
        let (max, n) = byte_diff(&rgb, &u8s(&want)).unwrap();
        eprintln!(
            "decode {f}: max abs diff {max}, {n}/{} values differ ({:.4}%)",
            rgb.len(),
            100.0 * n as f64 / rgb.len() as f64
        );
        worst = worst.max(max);
        let frac = n as f64 / rgb.len() as f64;
        let bound = if f.starts_with("frames/") {
            DECODE_MAX_FRACTION_420
        } else {
            DECODE_MAX_FRACTION_444
        };
        assert!(
            frac <= bound,
            "{f}: {frac:.4} of values differ from Pillow's decode"
        );
    }
    // The decoder is bit-exact, so the bound is 0 and the check an equality.
    assert_eq!(
        worst, DECODE_MAX_ABS_DIFF,
        "JPEG decoding drifted from Pillow: max abs diff {worst}"
    );
}

/// Decoding (src/image/jpeg.rs), then the exact resize and normalization, against the official
/// tensor (64x64 from 83x45 4:2:0 JPEGs). Measured: rel L2 0 and max abs 0 on the four frames,
/// so the bounds are 0. (With the `image` crate's zune-jpeg 0.5.15 it was rel L2 1.13e-2 to
/// 1.18e-2, max abs 5.23e-2, i.e. 3 grey levels.)
const FULL_PIPELINE_MAX_REL_L2: f64 = 0.0;
const FULL_PIPELINE_MAX_ABS: f32 = 0.0;

#[test]
fn full_pipeline_against_the_official_tensor() {
    let t = fixtures();
    let official = common::get(&t, "frames.images");
    let s = official.dim(2).unwrap();
    let frames = VideoFrames::open(frames_dir()).unwrap();
    for i in 0..frames.len() {
        let got = frames.load_tensor(i, s, &Device::Cpu).unwrap();
        let want = official.narrow(0, i, 1).unwrap();
        let e = common::rel_l2(&got, &want);
        let max = common::max_abs(&got, &want) as f32;
        eprintln!("frame {i}: rel L2 {e:.3e}, max abs {max:.3e}");
        // Decoding, resize and normalization are each exact, so the whole pipeline is too.
        assert!(e <= FULL_PIPELINE_MAX_REL_L2, "frame {i}: rel L2 {e:.3e}");
        assert!(max <= FULL_PIPELINE_MAX_ABS, "frame {i}: max abs {max:.3e}");
    }
}

#[test]
fn fill_holes_matches_the_official_function() {
    let t = fixtures();
    let mut keys: Vec<&String> = t
        .keys()
        .filter(|k| k.starts_with("fill.") && !k.ends_with(".input"))
        .collect();
    keys.sort();
    assert!(
        keys.len() >= 9,
        "expected the reference fill cases, got {keys:?}"
    );
    for key in keys {
        let (case, area) = key["fill.".len()..].rsplit_once(".max").unwrap();
        let area: usize = area.parse().unwrap();
        let input = common::get(&t, &format!("fill.{case}.input"));
        let want = f32s(&common::get(&t, key));
        let got = fill_holes_in_mask_scores(&input, area).unwrap();
        assert_eq!(got.dims(), input.dims());
        let got = f32s(&got);
        let inp = f32s(&input);
        let filled = got
            .iter()
            .zip(&inp)
            .filter(|(g, i)| g.to_bits() != i.to_bits())
            .count();
        let bad = got
            .iter()
            .zip(&want)
            .filter(|(g, w)| g.to_bits() != w.to_bits())
            .count();
        eprintln!("fill {case} max_area {area}: {filled} pixels filled, {bad} differ");
        assert!(
            filled > 0,
            "{key}: the case fills nothing, so it tests nothing"
        );
        assert_eq!(
            bad, 0,
            "{key}: {bad} values differ from the official function"
        );
    }
}

fn write_jpeg(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8 * 7, y as u8 * 5, 90]));
    img.save(path).unwrap();
}

fn input_msg(r: vosbench::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(Error::Input(m)) => m,
        other => panic!("expected Error::Input, got {other:?}"),
    }
}

#[test]
fn bad_folders_and_frames_are_input_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();

    let missing = d.join("nope");
    assert!(input_msg(VideoFrames::open(&missing)).contains("nope"));

    // Only non-frame files: "no frames" naming the folder.
    std::fs::write(d.join("a.txt"), b"x").unwrap();
    assert!(input_msg(VideoFrames::open(d)).contains(&d.display().to_string()));

    write_jpeg(&d.join("0.jpg"), 8, 6);
    write_jpeg(&d.join("1.jpg"), 8, 6);
    let ok = VideoFrames::open(d).unwrap();
    assert_eq!((ok.len(), ok.width(), ok.height()), (2, 8, 6));
    assert!(input_msg(ok.load_rgb(2)).contains("out of range"));

    // A frame of another size: the error names it when it is loaded.
    write_jpeg(&d.join("2.jpg"), 9, 6);
    let v = VideoFrames::open(d).unwrap();
    assert!(v.load_rgb(1).is_ok());
    assert!(input_msg(v.load_rgb(2)).contains("2.jpg"));

    // A corrupt JPEG.
    std::fs::write(d.join("3.jpg"), b"\xFF\xD8\xFF\xE0 not really a jpeg").unwrap();
    let v = VideoFrames::open(d).unwrap();
    assert!(input_msg(v.load_tensor(3, 32, &Device::Cpu)).contains("3.jpg"));

    // A stem that is not an integer, and two names for one index.
    std::fs::write(d.join("frame_x.jpeg"), b"").unwrap();
    assert!(input_msg(VideoFrames::open(d)).contains("frame_x.jpeg"));
    std::fs::remove_file(d.join("frame_x.jpeg")).unwrap();
    write_jpeg(&d.join("001.jpg"), 8, 6);
    let msg = input_msg(VideoFrames::open(d));
    assert!(msg.contains("001.jpg") && msg.contains("1.jpg"), "{msg}");
}
