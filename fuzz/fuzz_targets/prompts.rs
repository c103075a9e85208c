//! The prompt parsers: `--point X,Y[,L]` / `--box X0,Y0,X1,Y1` strings (one per line, the
//! last line the box) and the JSON prompts file (`vosbench-prompts-1`, with or without runs).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vosbench::cli::track::parse_prompt;
use vosbench::data::prompt_file::{check_objects, read_prompt_runs, read_prompts_file};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let bbox = lines.pop();
        let _ = parse_prompt(&lines, bbox.as_deref());
        let _ = parse_prompt(&lines, None);
    }
    let p = vosbench_fuzz::scratch_file("prompts.json", data);
    if let Ok(objs) = read_prompts_file(&p, None) {
        let _ = check_objects("fuzz", &objs);
    }
    if let Ok(runs) = read_prompt_runs(&p) {
        for name in runs.keys().take(4) {
            let _ = read_prompts_file(&p, Some(name));
        }
    }
});
