//! The benchmark's process model. The process the user starts is a launcher: it never opens a
//! device. It runs phase A (setup) as a child process and waits for it to exit, then starts
//! phase B (inference) as fresh children (one per model with `--isolate-models`), so no CUDA
//! context, cuDNN handle or workspace of an earlier phase sits in the memory phase B is measured
//! against. Each child is recorded here ([`PhaseProcess`]) and the record goes to `summary.json`.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which phase a child process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Setup,
    Inference,
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Inference => "inference",
        }
    }
}

/// One phase process as the launcher saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseProcess {
    pub phase: Phase,
    /// The model of an `--isolate-models` inference process.
    pub model: Option<String>,
    /// The device of a `--devices` inference process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub pid: u32,
    /// When the launcher started it and when it saw it exit (seconds since the Unix epoch).
    pub started_unix_s: f64,
    pub exited_unix_s: f64,
    pub exit_code: Option<i32>,
}

/// Every process of one benchmark command: `summary.json`'s `processes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Processes {
    pub launcher_pid: u32,
    /// Devices the launcher opened: always 0 (the device layer counts every open).
    pub launcher_devices_opened: usize,
    /// None when setup was skipped (`--skip-setup`).
    pub setup: Option<PhaseProcess>,
    pub inference: Vec<PhaseProcess>,
}

impl Processes {
    pub fn inference_pids(&self) -> Vec<u32> {
        self.inference.iter().map(|p| p.pid).collect()
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Run `exe argv` as a phase process (`env` set to the phase's name) and wait for it.
pub fn run_phase(
    exe: &Path,
    argv: &[OsString],
    env: &str,
    phase: Phase,
    model: Option<&str>,
) -> Result<PhaseProcess> {
    spawn_phase(exe, argv, env, phase, model)?.wait()
}

/// A phase process that has been started and not yet waited for (`--devices` runs several at
/// once).
#[derive(Debug)]
pub struct RunningPhase {
    child: std::process::Child,
    what: String,
    phase: Phase,
    model: Option<String>,
    started: f64,
}

/// Start `exe argv` as a phase process without waiting for it.
pub fn spawn_phase(
    exe: &Path,
    argv: &[OsString],
    env: &str,
    phase: Phase,
    model: Option<&str>,
) -> Result<RunningPhase> {
    let what = match model {
        Some(m) => format!("the {} process of {m}", phase.as_str()),
        None => format!("the {} process", phase.as_str()),
    };
    let started = unix_now();
    let child = std::process::Command::new(exe)
        .args(argv)
        .env(env, phase.as_str())
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start {what}: {e}")))?;
    Ok(RunningPhase {
        child,
        what,
        phase,
        model: model.map(str::to_string),
        started,
    })
}

impl RunningPhase {
    /// Wait for the process: its record when it succeeded, else an error of its exit code (it
    /// printed its own message) or of the signal that killed it.
    pub fn wait(mut self) -> Result<PhaseProcess> {
        let what = self.what;
        let pid = self.child.id();
        let status = self
            .child
            .wait()
            .map_err(|e| Error::Other(format!("waiting for {what}: {e}")))?;
        let rec = PhaseProcess {
            phase: self.phase,
            model: self.model,
            device: None,
            pid,
            started_unix_s: self.started,
            exited_unix_s: unix_now(),
            exit_code: status.code(),
        };
        match status.code() {
            Some(0) => Ok(rec),
            Some(code) => Err(Error::Reported { what, pid, code }),
            None => Err(Error::Other(format!(
                "{what} (pid {pid}) was killed by a signal; rerun the same command to resume"
            ))),
        }
    }
}

/// In a phase process: exit as soon as the launcher that started it is gone (killed), so a
/// killed benchmark never leaves a phase running on its own and writing results behind a
/// later run's back. Polls the parent pid every 50 ms on a background thread (Unix only).
pub fn exit_with_parent() {
    #[cfg(unix)]
    {
        let parent = std::os::unix::process::parent_id();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(50));
            if std::os::unix::process::parent_id() != parent {
                eprintln!("error: the benchmark launcher is gone; stopping this phase");
                std::process::exit(1);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_child_is_reported_with_its_code_and_times_are_ordered() {
        let sh = Path::new("/bin/sh");
        if !sh.exists() {
            return;
        }
        let ok = run_phase(
            sh,
            &["-c".into(), "test \"$PHASE_T\" = setup".into()],
            "PHASE_T",
            Phase::Setup,
            None,
        )
        .unwrap();
        assert_eq!(ok.exit_code, Some(0));
        assert!(ok.exited_unix_s >= ok.started_unix_s && ok.started_unix_s > 0.0);
        let e = run_phase(
            sh,
            &["-c".into(), "exit 2".into()],
            "PHASE_T",
            Phase::Inference,
            Some("m_points"),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("inference process of m_points"),
            "{e}"
        );
        let e = run_phase(
            sh,
            &["-c".into(), "kill -9 $$".into()],
            "PHASE_T",
            Phase::Inference,
            None,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains("signal"), "{e}");
    }
}
