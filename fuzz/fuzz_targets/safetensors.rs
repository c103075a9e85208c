//! Safetensors: the header-only reader (names, shapes, dtypes) and the full tensor reader.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vosbench::weights::reader;

fuzz_target!(|data: &[u8]| {
    let p = vosbench_fuzz::scratch_file("w.safetensors", data);
    let _ = reader::safetensors_header(&p);
    let _ = reader::read_checkpoint(&p);
});
