//! Free disk space, for writing large files (the benchmark's frame cache) only after checking
//! they fit; and the removal of temp files that killed processes left behind.

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

/// Whether process `pid` exists (`/proc/<pid>`); None where procfs is not mounted.
pub fn process_exists(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self").exists() {
        return None;
    }
    Some(Path::new("/proc").join(pid.to_string()).exists())
}

/// Remove the files of `dir` named `<anything><marker><pid>` (or ending in `marker`, the names of
/// older versions) whose process no longer runs: the temp files of a process killed between
/// writing and renaming them (`vosbench_summary.csv.tmp<pid>`, `metadata.json.tmp<pid>`,
/// `<video>.s<side>.vfc.tmp<pid>`). A live process's temp file is left alone; without procfs
/// only this process's own names count as live. Returns how many were removed.
pub fn remove_dead_temps(dir: &Path, marker: &str) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let dead = |name: &str| {
        let Some(at) = name.rfind(marker) else {
            return false;
        };
        let tail = &name[at + marker.len()..];
        if tail.is_empty() {
            return true;
        }
        let Ok(pid) = tail.parse::<u32>() else {
            return false;
        };
        pid != std::process::id() && process_exists(pid) != Some(true)
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| dead(&e.file_name().to_string_lossy()))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Remove the temp files of `path` (`<name>.tmp<pid>`) whose process was killed before it
/// renamed them.
pub fn remove_dead_temps_of(path: &Path) {
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        let marker = format!("{}.tmp", name.to_string_lossy());
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        remove_dead_temps(dir, &marker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_temps_go_and_live_ones_stay() {
        let d = tempfile::tempdir().unwrap();
        let own = std::process::id();
        // A pid above the kernel's limit (4194304) never runs.
        let names = [
            format!("a.csv.tmp{own}"),
            "a.csv.tmp4999999".to_string(),
            "a.csv.tmp".to_string(),
            "a.csv.tmpx".to_string(),
            "a.csv".to_string(),
            "b.json.tmp4999999".to_string(),
        ];
        for n in &names {
            std::fs::write(d.path().join(n), b"x").unwrap();
        }
        assert_eq!(remove_dead_temps(d.path(), ".csv.tmp"), 2);
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "a.csv",
                &format!("a.csv.tmp{own}"),
                "a.csv.tmpx",
                "b.json.tmp4999999"
            ]
        );
        if process_exists(1).is_some() {
            assert_eq!(process_exists(own), Some(true));
            assert_eq!(process_exists(4_999_999), Some(false));
        }
    }
}
