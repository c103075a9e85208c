//! The results CSV as `--resume` reads it, then the summary built from its rows.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vosbench::bench::results::{check_rows, format_table, summarize, Results};

fuzz_target!(|data: &[u8]| {
    let p = vosbench_fuzz::scratch_file("results.csv", data);
    if let Ok(r) = Results::resume(&p) {
        let _ = check_rows(r.rows());
        let _ = format_table(&summarize(r.rows()));
    }
});
