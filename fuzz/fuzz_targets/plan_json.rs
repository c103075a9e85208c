//! `inference_config.json` and `metadata.json` as phase B loads them, then the work list built
//! from both. The input is the config, a NUL byte, then the metadata (either may be absent).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vosbench::bench::plan::{read_json, InferenceConfig, Metadata};
use vosbench::bench::shard::work_units;

fuzz_target!(|data: &[u8]| {
    let (cfg, meta) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    let pc = vosbench_fuzz::scratch_file("inference_config.json", cfg);
    let pm = vosbench_fuzz::scratch_file("metadata.json", meta);
    let c = read_json::<InferenceConfig>(&pc);
    let m = read_json::<Metadata>(&pm);
    if let (Ok(c), Ok(m)) = (c, m) {
        let units = work_units(&c, &m);
        let _ = units.iter().map(|u| u.label()).count();
    }
});
