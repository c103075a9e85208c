//! Free disk space, for writing large files (the benchmark's frame cache) only after checking
//! they fit.

use std::path::Path;

/// Free bytes on the file system holding `dir` (POSIX `df -Pk`), None when unknown.
pub fn free_disk_bytes(dir: &Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1)?;
    let kb: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(kb * 1024)
}
