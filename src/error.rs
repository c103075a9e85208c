//! The library's error type. The library returns these; only the CLI prints them, as one line,
//! and maps them to exit codes (2 for bad input, 1 for internal failures).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad user input: a missing file, a corrupt image, an impossible option.
    #[error("{0}")]
    Input(String),
    /// A model variant file that does not parse or does not fit the code.
    #[error("model config: {0}")]
    Config(String),
    /// A checkpoint that is not what the variant needs (missing key, wrong shape, wrong format).
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    /// A file that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A memory budget that cannot be met.
    #[error("memory budget: {0}")]
    Budget(String),
    /// Tensor computation failed (a bug or a device failure, not bad input).
    #[error("tensor: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Other(String),
    /// A child process of this one (a benchmark phase) failed and has printed its own one-line
    /// error; the CLI prints nothing more and exits with the same code.
    #[error("{what} (pid {pid}) failed with exit code {code}; its error is above")]
    Reported { what: String, pid: u32, code: i32 },
}

impl Error {
    /// Exit code for the CLI: 2 for anything the user can fix, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_)
            | Error::Config(_)
            | Error::Checkpoint { .. }
            | Error::Io { .. }
            | Error::Budget(_) => 2,
            Error::Candle(_) | Error::Other(_) => 1,
            Error::Reported { code, .. } => *code,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
