//! The pure-Rust JPEG decoder (src/image/jpeg.rs) against Pillow's decode of the same files
//! (tests/fixtures/jpeg, written by tests/reference/make_jpeg_fixtures.py with Pillow 13 /
//! libjpeg-turbo 3): every case must be byte-identical (max abs difference 0), including the
//! official predictor's test frames in tests/fixtures/video_test/frames.

use crate::common;

use candle_core::DType;
use vosbench::compare::byte_diff;
use vosbench::image::jpeg;

/// `(case name, path of the JPEG)` for every expected decode in the fixture.
fn cases() -> Vec<(String, std::path::PathBuf)> {
    let t = common::load_tensors("jpeg", "expected.safetensors");
    let mut names: Vec<String> = t.keys().cloned().collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let p = match n.strip_prefix("video_test.") {
                Some(stem) => common::fixture_dir("video_test")
                    .join("frames")
                    .join(format!("{stem}.jpg")),
                None => common::fixture_dir("jpeg").join(format!("{n}.jpg")),
            };
            (n, p)
        })
        .collect()
}

#[test]
fn bit_identical_to_pillow_on_every_fixture() {
    let expected = common::load_tensors("jpeg", "expected.safetensors");
    let cases = cases();
    assert!(
        cases.len() >= 20,
        "fixture lists only {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for (name, path) in &cases {
        let want = &expected[name];
        assert_eq!(want.dtype(), DType::U8);
        let dims = want.dims().to_vec();
        let want = want.flatten_all().unwrap().to_vec1::<u8>().unwrap();
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (got, w, h) = match jpeg::decode(&data) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        assert_eq!(
            [h as usize, w as usize, 3],
            dims[..],
            "{name}: size differs from Pillow's"
        );
        let (max, count) = byte_diff(&got, &want).unwrap();
        if max > 0 {
            failures.push(format!(
                "{name}: max abs difference {max} on {count} of {} values",
                want.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn try_decode_falls_back_only_for_unsupported_files() {
    let prog = std::fs::read(common::fixture_dir("jpeg").join("progressive.jpg")).unwrap();
    assert!(jpeg::try_decode_rgb(&prog).unwrap().is_none());
    let err = jpeg::decode_rgb(&prog).unwrap_err();
    assert!(err.to_string().contains("progressive"), "{err}");
    let ok = std::fs::read(common::fixture_dir("jpeg").join("q75_420_83x45.jpg")).unwrap();
    let (_, w, h) = jpeg::try_decode_rgb(&ok).unwrap().unwrap();
    assert_eq!((w, h), (83, 45));
    let err = jpeg::try_decode_rgb(&ok[..ok.len() / 2]).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("truncated"), "{err}");
}

/// Opt-in: every `*.jpg`/`*.jpeg` in `$VOSBENCH_JPEG_DIR` against the `<file>.rgb` Pillow decode
/// written next to it by `make_jpeg_fixtures.py --opt-in DIR` (larger and foreign-encoder files
/// that are not committed); prints the decode time of each. Does nothing when the variable is
/// unset.
#[test]
fn opt_in_directory_bit_identical_to_pillow() {
    let Some(dir) = std::env::var_os("VOSBENCH_JPEG_DIR") else {
        eprintln!("VOSBENCH_JPEG_DIR not set; skipping the opt-in JPEG comparison");
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no JPEG files in {dir:?}");
    let mut failures = Vec::new();
    for p in &files {
        let data = std::fs::read(p).unwrap();
        let mut rgb_path = p.clone().into_os_string();
        rgb_path.push(".rgb");
        let want = std::fs::read(&rgb_path)
            .unwrap_or_else(|e| panic!("{}: {e} (run the --opt-in script)", p.display()));
        let t0 = std::time::Instant::now();
        let res = jpeg::decode(&data);
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        match res {
            Ok((got, w, h)) => {
                let diff = if got.len() != want.len() {
                    Some(format!("size {}x{} does not match Pillow's", w, h))
                } else {
                    let (max, n) = byte_diff(&got, &want).unwrap();
                    (n > 0).then(|| format!("{n} values differ, max {max}"))
                };
                eprintln!("{}: {w}x{h} decoded in {ms:.1} ms", p.display());
                if let Some(d) = diff {
                    failures.push(format!("{}: {d}", p.display()));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", p.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
