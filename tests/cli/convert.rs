//! The converter end to end on the official-code test checkpoints: every converted tensor must be
//! bit-identical to the state dict as PyTorch reads it (the manifests under
//! tests/fixtures/weights/ hold torch's dtype, shape and FNV-1a hash of every entry; they are
//! written by tests/reference/make_weights_manifest.py).

use crate::common;

use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use vosbench::config::ModelConfig;
use vosbench::weights::convert::{convert, META_DTYPE, META_FORMAT, META_SOURCE, META_VARIANT};
use vosbench::weights::hf_layout::{is_edgetam, original_to_hf_tensors};
use vosbench::weights::reader::read_safetensors;
use vosbench::weights::spec::expected_tensors;
use vosbench::weights::{inspect_converted, load_var_builder};

#[derive(Debug)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    hash: String,
}

fn manifest(name: &str) -> BTreeMap<String, Entry> {
    let p = common::fixture_dir("weights").join(format!("{name}.manifest.json"));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v["tensors"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, e)| {
            (
                k.clone(),
                Entry {
                    dtype: e["dtype"].as_str().unwrap().to_string(),
                    shape: e["shape"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_u64().unwrap() as usize)
                        .collect(),
                    hash: e["fnv1a64"].as_str().unwrap().to_string(),
                },
            )
        })
        .collect()
}

fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// Hash of a tensor's raw little-endian bytes, as the manifest script computes it.
fn tensor_hash(t: &Tensor) -> String {
    let t = t.flatten_all().unwrap();
    match t.dtype() {
        DType::F32 => fnv1a64(
            t.to_vec1::<f32>()
                .unwrap()
                .into_iter()
                .flat_map(|v| v.to_le_bytes()),
        ),
        DType::I64 => fnv1a64(
            t.to_vec1::<i64>()
                .unwrap()
                .into_iter()
                .flat_map(|v| v.to_le_bytes()),
        ),
        DType::BF16 => fnv1a64(
            t.to_vec1::<half::bf16>()
                .unwrap()
                .into_iter()
                .flat_map(|v| v.to_le_bytes()),
        ),
        DType::F16 => fnv1a64(
            t.to_vec1::<half::f16>()
                .unwrap()
                .into_iter()
                .flat_map(|v| v.to_le_bytes()),
        ),
        d => panic!("unexpected dtype {d:?}"),
    }
}

fn torch_dtype(d: DType) -> &'static str {
    match d {
        DType::F32 => "float32",
        DType::I64 => "int64",
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "other",
    }
}

fn checkpoint(fixture: &str) -> PathBuf {
    common::fixture_dir(fixture).join("model.pt")
}

/// Convert, reload and compare every tensor with torch's own reading of the checkpoint.
fn assert_bit_identical(converted: &Path, want: &BTreeMap<String, Entry>) {
    let (got, meta) = read_safetensors(converted).unwrap();
    assert_eq!(meta.get(META_FORMAT).map(String::as_str), Some("1"));
    let got: BTreeMap<String, Tensor> = got.into_iter().collect();
    let gk: Vec<_> = got.keys().collect();
    let wk: Vec<_> = want.keys().collect();
    assert_eq!(gk, wk, "key sets differ");
    for (name, e) in want {
        let t = &got[name];
        assert_eq!(torch_dtype(t.dtype()), e.dtype, "{name} dtype");
        assert_eq!(t.dims(), e.shape.as_slice(), "{name} shape");
        assert_eq!(
            tensor_hash(t),
            e.hash,
            "{name} bytes differ from the PyTorch state dict"
        );
    }
}

fn cfg(name: &str) -> ModelConfig {
    common::test_config(name)
}

#[test]
fn spec_of_test_variants_equals_the_official_checkpoints() {
    for (variant, fixture) in [
        ("sam2.1_test", "sam2_test"),
        ("edgetam_test", "edgetam_test"),
    ] {
        let want = manifest(fixture);
        let specs = expected_tensors(&cfg(variant)).unwrap();
        let got: BTreeMap<String, (Vec<usize>, bool)> = specs
            .into_iter()
            .map(|s| (s.name, (s.shape, s.integer)))
            .collect();
        let want: BTreeMap<String, (Vec<usize>, bool)> = want
            .into_iter()
            .map(|(k, e)| (k, (e.shape, e.dtype == "int64")))
            .collect();
        let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
        let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{variant}: spec lacks {missing:?}, has extra {extra:?}"
        );
        for (k, w) in &want {
            assert_eq!(&got[k], w, "{variant}: {k}");
        }
    }
}

#[test]
fn sam2_checkpoint_converts_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sam2.1_test.safetensors");
    let c = cfg("sam2.1_test");
    let r = convert(&checkpoint("sam2_test"), &out, &c, None, None).unwrap();
    assert_eq!(r.tensors, 371);
    assert_eq!(r.dtype, DType::F32);
    assert_bit_identical(&out, &manifest("sam2_test"));
    let info = inspect_converted(&out, &c).unwrap();
    assert_eq!(
        (
            info.variant.as_str(),
            info.source.as_str(),
            info.dtype.as_str()
        ),
        ("sam2.1_test", "original", "f32")
    );
}

#[test]
fn edgetam_checkpoint_converts_bit_identically_with_int64_counters() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("edgetam_test.safetensors");
    let c = cfg("edgetam_test");
    convert(&checkpoint("edgetam_test"), &out, &c, None, None).unwrap();
    let want = manifest("edgetam_test");
    assert!(
        want.values().any(|e| e.dtype == "int64"),
        "fixture has BatchNorm counters"
    );
    assert_bit_identical(&out, &want);
    // Even when floats are cast, the counters keep int64.
    let out16 = dir.path().join("edgetam_bf16.safetensors");
    convert(
        &checkpoint("edgetam_test"),
        &out16,
        &c,
        Some(DType::BF16),
        None,
    )
    .unwrap();
    let (t, meta) = read_safetensors(&out16).unwrap();
    assert_eq!(meta[META_DTYPE], "bf16");
    for (n, t) in t {
        let want_dt = if n.ends_with("num_batches_tracked") {
            DType::I64
        } else {
            DType::BF16
        };
        assert_eq!(t.dtype(), want_dt, "{n}");
    }
}

#[test]
fn dtype_cast_equals_a_cast_of_the_original_values() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg("sam2.1_test");
    let f32_out = dir.path().join("a.safetensors");
    let f16_out = dir.path().join("b.safetensors");
    convert(&checkpoint("sam2_test"), &f32_out, &c, None, None).unwrap();
    convert(
        &checkpoint("sam2_test"),
        &f16_out,
        &c,
        Some(DType::F16),
        None,
    )
    .unwrap();
    let a: HashMap<_, _> = read_safetensors(&f32_out).unwrap().0.into_iter().collect();
    let (b, meta) = read_safetensors(&f16_out).unwrap();
    assert_eq!(meta[META_DTYPE], "f16");
    assert_eq!(meta[META_VARIANT], "sam2.1_test");
    for (n, t) in b {
        assert_eq!(t.dtype(), DType::F16, "{n}");
        assert_eq!(
            tensor_hash(&t),
            tensor_hash(&a[&n].to_dtype(DType::F16).unwrap()),
            "{n}"
        );
    }
}

#[test]
fn hf_layout_input_converts_to_the_same_tensors() {
    // The fixture in transformers' layout (renamed, point embeddings joined, gaussian duplicated),
    // written as safetensors: converting it must give back the original state dict bit for bit.
    for (variant, fixture) in [
        ("sam2.1_test", "sam2_test"),
        ("edgetam_test", "edgetam_test"),
    ] {
        let c = cfg(variant);
        let dir = tempfile::tempdir().unwrap();
        let orig =
            candle_core::pickle::read_all_with_key(checkpoint(fixture), Some("model")).unwrap();
        let hf = original_to_hf_tensors(&orig, is_edgetam(&c)).unwrap();
        assert!(hf
            .iter()
            .any(|(n, _)| n == "prompt_encoder.point_embed.weight"));
        let hf_path = dir.path().join("hf.safetensors");
        let hf_map: HashMap<String, Tensor> = hf.into_iter().collect();
        candle_core::safetensors::save(&hf_map, &hf_path).unwrap();
        let out = dir.path().join("out.safetensors");
        convert(&hf_path, &out, &c, None, None).unwrap();
        assert_bit_identical(&out, &manifest(fixture));
        assert_eq!(inspect_converted(&out, &c).unwrap().source, "hf");
    }
}

#[test]
fn var_builder_checks_variant_and_keys_before_use() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let c = cfg("sam2.1_test");
    convert(&checkpoint("sam2_test"), &out, &c, None, None).unwrap();
    let vb = load_var_builder(&out, &c, DType::F32, &Device::Cpu).unwrap();
    let t = vb.get((1, 1, 64), "no_mem_embed").unwrap();
    assert_eq!(t.dims(), &[1, 1, 64]);

    let tiny = vosbench::config::Registry::builtin()
        .unwrap()
        .resolve("sam2.1_hiera_tiny")
        .unwrap();
    let err = load_var_builder(&out, &tiny, DType::F32, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("was converted for variant 'sam2.1_test', not 'sam2.1_hiera_tiny'"),
        "{err}"
    );

    // A file with the right metadata but a dropped tensor fails with the key's name.
    let (mut tensors, meta) = read_safetensors(&out).unwrap();
    tensors.retain(|(n, _)| n != "sam_mask_decoder.iou_token.weight");
    let broken = dir.path().join("broken.safetensors");
    let views: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    safetensors::serialize_to_file(views, Some(meta), &broken).unwrap();
    let err = load_var_builder(&broken, &c, DType::F32, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("1 missing keys: sam_mask_decoder.iou_token.weight [1, 64]"),
        "{err}"
    );

    // A safetensors file that was never converted is refused as such.
    let plain = dir.path().join("plain.safetensors");
    let views: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    safetensors::serialize_to_file(views, None, &plain).unwrap();
    let err = inspect_converted(&plain, &c).err().unwrap().to_string();
    assert!(err.contains("not a vosbench-converted file"), "{err}");
    let _ = META_SOURCE;
}

/// Names of everything in a folder.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn failed_conversion_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = vosbench::config::Registry::builtin()
        .unwrap()
        .resolve("sam2.1_hiera_tiny")
        .unwrap();
    let out = dir.path().join("sam2.1_hiera_tiny.safetensors");
    // Wrong variant: validation fails before anything is written.
    let err = convert(&checkpoint("sam2_test"), &out, &tiny, None, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("does not match variant sam2.1_hiera_tiny"),
        "{err}"
    );
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));

    // An existing good output survives a failed conversion untouched.
    let c = cfg("sam2.1_test");
    let good = dir.path().join("good.safetensors");
    convert(&checkpoint("sam2_test"), &good, &c, None, None).unwrap();
    let before = std::fs::read(&good).unwrap();
    let junk = dir.path().join("junk.pt");
    std::fs::write(&junk, b"PK\x03\x04 this is not really a zip").unwrap();
    assert!(convert(&junk, &good, &c, None, None).is_err());
    assert_eq!(std::fs::read(&good).unwrap(), before);
    assert_eq!(listing(dir.path()), ["good.safetensors", "junk.pt"]);
}

#[test]
fn a_write_that_fails_verification_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.safetensors");
    let t = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
    let res = vosbench::weights::convert::write_atomic(
        &out,
        &[("a".to_string(), t)],
        HashMap::new(),
        |tmp| {
            assert!(
                tmp.exists(),
                "the temporary file is written before verification"
            );
            Err(vosbench::Error::Other("verification failed".into()))
        },
    );
    assert!(res.is_err());
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
}

#[test]
fn real_transformers_files_convert_bit_identically() {
    // Written by transformers' own conversion code and `save_pretrained`
    // (tests/reference/make_hf_layout_fixture.py): renamed keys, joined point embeddings, the
    // gaussian matrix stored twice and, for EdgeTAM, the perceiver's to_kv split in two.
    for (variant, fixture, split_key) in [
        (
            "sam2.1_test",
            "sam2_test",
            "prompt_encoder.point_embed.weight",
        ),
        (
            "edgetam_test",
            "edgetam_test",
            "spatial_perceiver.layers.0.cross_attention.k_proj.weight",
        ),
    ] {
        let hf = common::fixture_dir("weights").join(format!("{fixture}_hf/model.safetensors"));
        let (tensors, _) = read_safetensors(&hf).unwrap();
        assert!(tensors
            .iter()
            .any(|(n, _)| n == "shared_image_embedding.positional_embedding"));
        assert!(
            tensors.iter().any(|(n, _)| n == split_key),
            "{fixture}: {split_key}"
        );
        assert!(tensors
            .iter()
            .all(|(n, _)| !n.starts_with("image_encoder.")));
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.safetensors");
        let c = cfg(variant);
        let r = convert(&hf, &out, &c, None, None).unwrap();
        assert_eq!(r.layout.as_str(), "hf");
        assert_bit_identical(&out, &manifest(fixture));
    }
}

#[test]
fn a_mismatch_names_the_variant_the_file_does_match() {
    let mut reg = vosbench::config::Registry::builtin().unwrap();
    reg.add(cfg("sam2.1_test"));
    reg.add(cfg("edgetam_test"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let e = cfg("edgetam_test");
    let err = convert(&checkpoint("sam2_test"), &out, &e, None, Some(&reg))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("does not match variant edgetam_test"), "{err}");
    assert!(err.ends_with("(this looks like sam2.1_test)"), "{err}");
    // Also through the transformers layout, whose names depend on the variant tried.
    let hf = common::fixture_dir("weights").join("edgetam_test_hf/model.safetensors");
    let err = convert(&hf, &out, &cfg("sam2.1_test"), None, Some(&reg))
        .err()
        .unwrap()
        .to_string();
    assert!(err.ends_with("(this looks like edgetam_test)"), "{err}");
    assert!(!out.exists());
}

#[test]
fn an_image_only_transformers_file_is_named_as_such() {
    let hf = common::fixture_dir("weights").join("sam2_test_hf/model.safetensors");
    let (mut tensors, meta) = read_safetensors(&hf).unwrap();
    tensors
        .retain(|(n, _)| !n.starts_with("memory_attention.") && !n.starts_with("memory_encoder."));
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("image_only.safetensors");
    let views: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    safetensors::serialize_to_file(views, Some(meta), &img).unwrap();
    let err = convert(
        &img,
        &dir.path().join("o.safetensors"),
        &cfg("sam2.1_test"),
        None,
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("missing keys: memory_attention.layers.0"),
        "{err}"
    );
    assert!(err.contains("image-only transformers checkpoint"), "{err}");
}
