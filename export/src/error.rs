//! The export crate's error type: every failure (bad config, missing or mis-shaped weight, malformed
//! weights file, I/O, a backend's own error) is a typed value, never a panic.

use std::path::PathBuf;

/// Errors of the ONNX writer, the U-Net definition and the weights container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A U-Net configuration that cannot build a network (e.g. channels not divisible by groups).
    #[error("invalid U-Net config: {0}")]
    Config(String),
    /// A parameter is missing from a weights container or has the wrong shape.
    #[error("weights: {0}")]
    Weights(String),
    /// Tensor shapes do not fit an operation (reference backend) or a graph refers to a missing value.
    #[error("shape: {0}")]
    Shape(String),
    /// A malformed file (weights file, ONNX model).
    #[error("{path}: {msg}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// An invalid graph built with [`crate::onnx::Graph`] (dangling or duplicate value names).
    #[error("graph: {0}")]
    Graph(String),
    /// An error reported by a backend (e.g. libtorch through tch).
    #[error("backend: {0}")]
    Backend(String),
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl Error {
    /// Wrap an I/O error with the file it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
