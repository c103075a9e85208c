//! What the program reads about the machine it runs on, below every other layer: memory and
//! process figures from Linux procfs ([`procfs`]), free disk space ([`disk`]) and the NVIDIA
//! Jetson environment ([`jetson`]). It imports nothing of the crate but the error type, so the
//! device probe (`cuda::probe`) and the benchmark can both use it.

pub mod disk;
pub mod jetson;
pub mod procfs;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The folder under which the machine's `/etc`, `/proc` and `/sys` are read for the host report,
/// the Jetson capture and the unified-memory budget rule: `/` on a real machine, a fake tree in
/// tests (`--host-root`, or `VOSBENCH_HOST_ROOT`, read once at the CLI edge). The process's own
/// figures (`/proc/self`, the RSS the budget is held against on the CPU) are always the real
/// ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HostRoot(PathBuf);

impl Default for HostRoot {
    fn default() -> Self {
        HostRoot::system()
    }
}

impl HostRoot {
    /// The real machine, `/`.
    pub fn system() -> HostRoot {
        HostRoot(PathBuf::from("/"))
    }

    /// A root folder given by the user: it must be an existing folder.
    pub fn new(dir: &Path) -> Result<HostRoot> {
        if !dir.is_dir() {
            return Err(Error::Input(format!(
                "host root {} is not a folder",
                dir.display()
            )));
        }
        Ok(HostRoot(dir.to_path_buf()))
    }

    /// `--host-root` when given, else the environment's setting (`VOSBENCH_HOST_ROOT`, passed
    /// in by the CLI), else the real machine. An empty setting is the real machine.
    pub fn from_settings(flag: Option<&Path>, env: Option<&str>) -> Result<HostRoot> {
        match flag.map(Path::to_path_buf).or_else(|| {
            env.filter(|s| !s.trim().is_empty())
                .map(|s| PathBuf::from(s.trim()))
        }) {
            Some(p) => HostRoot::new(&p),
            None => Ok(HostRoot::system()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Whether this is the real machine's `/`.
    pub fn is_system(&self) -> bool {
        self.0 == Path::new("/")
    }

    /// The path of an absolute machine path (`/etc/nv_tegra_release`) under this root.
    pub fn join(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        self.0.join(abs.strip_prefix("/").unwrap_or(abs))
    }

    /// The text of a machine file under this root, None when it cannot be read.
    pub fn read(&self, abs: impl AsRef<Path>) -> Option<String> {
        std::fs::read_to_string(self.join(abs)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_under_the_root() {
        let r = HostRoot(PathBuf::from("/tmp/fake"));
        assert_eq!(
            r.join("/etc/nv_tegra_release"),
            PathBuf::from("/tmp/fake/etc/nv_tegra_release")
        );
        assert_eq!(
            r.join("proc/meminfo"),
            PathBuf::from("/tmp/fake/proc/meminfo")
        );
        assert!(HostRoot::system().is_system() && !r.is_system());
        assert_eq!(
            HostRoot::from_settings(None, Some("  ")).unwrap(),
            HostRoot::system()
        );
        let e = HostRoot::from_settings(Some(Path::new("/no/such/root")), None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(HostRoot::from_settings(None, Some("/no/such/root")).is_err());
    }
}
