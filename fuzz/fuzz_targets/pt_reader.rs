//! The PyTorch checkpoint reader: zip archive + pickle (`data.pkl`) + tensor storages.
//! candle's pickle reader panics on some malformed tensor tuples; vosbench contains those with
//! `catch_unwind` (`weights::reader::guarded`) and reports a malformed file, so here a panic is
//! a crash only when it escapes `read_checkpoint`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vosbench_fuzz::allow_caught_panics();
    let p = vosbench_fuzz::scratch_file("ckpt.pt", data);
    let _ = vosbench::weights::reader::read_checkpoint(&p);
});
