//! Typed errors. Nothing in the SDK panics on bad input: every failure is an [`Error`].

/// The SDK's error type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two tensors that must agree do not (e.g. the state and the conditioning image).
    #[error("shape mismatch for {what}: expected {expected:?}, got {got:?}")]
    ShapeMismatch { what: String, expected: Vec<usize>, got: Vec<usize> },

    /// The requested number of function evaluations cannot be served by this family/sampler.
    #[error("invalid NFE {nfe}: {reason}")]
    InvalidNfe { nfe: usize, reason: String },

    /// A family name that the SDK does not know.
    #[error("unknown family `{0}`")]
    UnknownFamily(String),

    /// A sampler name that the SDK does not know.
    #[error("unknown sampler `{0}`")]
    UnknownSampler(String),

    /// The sampler exists but the family's math does not allow it.
    #[error("sampler `{sampler}` cannot be used with family `{family}`: {reason}")]
    Incompatible { sampler: String, family: String, reason: String },

    /// A parameter is out of its domain (η < 0, γ⁻¹ < 0, a non-finite value, …).
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam { name: String, reason: String },

    /// The network produced NaN or ±Inf.
    #[error("the network returned a non-finite value (NaN or Inf) at call {call} (t_net = {t_net})")]
    NonFinite { call: usize, t_net: f64 },

    /// The denoiser (network backend) failed.
    #[error("denoiser failed: {0}")]
    Denoiser(String),

    /// A noise source could not supply the requested draw (e.g. recorded noise ran out).
    #[error("noise source: {0}")]
    Noise(String),

    /// The caller cancelled the run.
    #[error("cancelled")]
    Cancelled,

    /// A golden trajectory file is malformed or of an unsupported kind.
    #[error("golden file: {0}")]
    Golden(String),

    /// The ONNX Runtime library could not be found or loaded; the message says how to install it.
    #[error("ONNX Runtime: {0}")]
    RuntimeNotFound(String),

    /// An execution provider (CUDA, TensorRT) could not be used and CPU fallback was not allowed.
    #[error("execution provider `{provider}` unavailable: {reason}")]
    ProviderUnavailable { provider: String, reason: String },

    /// A model package is malformed: corrupt ONNX, missing or contradictory metadata, or metadata
    /// that does not match the graph's inputs and outputs.
    #[error("model package {path}: {reason}")]
    Package { path: String, reason: String },

    /// ONNX Runtime failed while running a network.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),

    /// An input image is unusable (empty, too large, wrong buffer length or strides).
    #[error("image: {0}")]
    Image(String),

    /// A buffer whose size comes from the input could not be allocated (the allocator refused
    /// it, e.g. under a memory limit). Sizes are checked against the limits before anything is
    /// allocated, so this means the process is short of memory, not that the input is invalid.
    #[error("out of memory: cannot allocate {bytes} bytes for {what}")]
    OutOfMemory { what: String, bytes: usize },

    /// An I/O error with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidParam`].
    pub fn param(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidParam { name: name.into(), reason: reason.into() }
    }
    /// Shorthand for [`Error::InvalidNfe`].
    pub fn nfe(nfe: usize, reason: impl Into<String>) -> Self {
        Error::InvalidNfe { nfe, reason: reason.into() }
    }
    /// Shorthand for [`Error::Incompatible`].
    pub fn incompatible(sampler: impl Into<String>, family: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Incompatible { sampler: sampler.into(), family: family.into(), reason: reason.into() }
    }
    /// Shorthand for [`Error::ShapeMismatch`].
    pub fn shape(what: impl Into<String>, expected: &[usize], got: &[usize]) -> Self {
        Error::ShapeMismatch { what: what.into(), expected: expected.to_vec(), got: got.to_vec() }
    }
}
