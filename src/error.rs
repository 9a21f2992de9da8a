//! The crate's one error type.

use std::fmt;

/// A tensor shape, printed as `[4, 3]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape(pub Vec<usize>);

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl From<&[usize]> for Shape {
    fn from(s: &[usize]) -> Self {
        Shape(s.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(s: [usize; N]) -> Self {
        Shape(s.to_vec())
    }
}

/// Everything that can go wrong in this crate. Messages are one line, lowercase, and name the
/// tensor, file or limit involved. Each variant is one category: match on the variant, not on
/// the message. New variants may come in later versions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor (weight, input or state) has the wrong shape.
    #[error("tensor `{tensor}`: expected shape {expected}, got {actual}")]
    ShapeMismatch {
        /// Name of the tensor, e.g. `weight_hh_l1_reverse` or `h0`.
        tensor: String,
        /// The shape the model needs.
        expected: Shape,
        /// The shape that was given.
        actual: Shape,
    },
    /// A weight tensor the model needs is absent.
    #[error("missing tensor `{tensor}` (expected shape {expected})")]
    MissingTensor {
        /// Name of the tensor.
        tensor: String,
        /// The shape the model needs.
        expected: Shape,
    },
    /// A weight tensor was given that the model does not use.
    #[error("unexpected tensor `{tensor}` with shape {actual}")]
    UnexpectedTensor {
        /// Name of the tensor.
        tensor: String,
        /// Its shape.
        actual: Shape,
    },
    /// The model description itself is invalid (e.g. zero layers).
    #[error("invalid model spec: {0}")]
    InvalidSpec(String),
    /// The input is invalid in a way that is not a plain shape mismatch (e.g. zero time steps).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// No wgpu adapter matched the request.
    #[error("no GPU adapter found{detail}; install a GPU driver (on Linux without a GPU: `apt-get install mesa-vulkan-drivers` for the software Vulkan adapter) or use the CPU path")]
    NoAdapter {
        /// What was asked for, e.g. " for backend gl" (may be empty).
        detail: String,
    },
    /// The adapter refused to create a device.
    #[error("could not create a device on adapter `{adapter}`: {message}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// wgpu's message.
        message: String,
    },
    /// A buffer or dispatch would exceed a device limit.
    #[error("{what} needs {needed} but the device limit `{limit}` is {allowed}")]
    ExceedsLimit {
        /// What was being created, e.g. `gate buffer of layer 0`.
        what: String,
        /// Name of the wgpu limit.
        limit: &'static str,
        /// Amount needed.
        needed: u64,
        /// Amount allowed.
        allowed: u64,
    },
    /// A file could not be read or written. The operating system's error is the source
    /// (its [`kind`](std::io::Error::kind) tells, e.g., `NotFound` from `PermissionDenied`).
    #[error("`{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Data could not be encoded into an output format (a model file, a JSON report, a chart).
    #[error("cannot encode {what}: {message}")]
    Encode {
        /// What was being encoded, e.g. `safetensors model` or `` `report.json` ``.
        what: String,
        /// The encoder's message.
        message: String,
    },
    /// A result check failed: a computed result differs from its reference beyond the
    /// tolerance (the benchmark checks every GPU result against the CPU before timing it).
    #[error("check failed: {0}")]
    CheckFailed(String),
    /// A bug in this crate, such as a panic caught in one of its worker threads; please
    /// report it.
    #[error("internal error: {0}")]
    Internal(String),
    /// A file was read but its contents are not what was expected.
    #[error("`{path}`: {message}")]
    InvalidFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A [`Batcher`](crate::Batcher) cannot take more now: its queue or its state table is
    /// full. Nothing was admitted; the caller may retry later.
    #[error("busy: {0}")]
    Busy(String),
    /// A [`Batcher`](crate::Batcher) or one of its streams no longer takes work: shut down,
    /// closed, or closed after standing idle.
    #[error("closed: {0}")]
    Closed(String),
    /// A request's deadline passed before its results were ready; it was dropped.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// A batched round failed; every request in it receives this error, with the message of
    /// the error the round met.
    #[error("batched round failed: {0}")]
    RoundFailed(String),
    /// wgpu reported a validation, out-of-memory or internal error, or the device was lost.
    #[error("gpu error during {during}: {message}")]
    Gpu {
        /// What the crate was doing (`upload`, `forward`, `pipeline lstm_step`…).
        during: String,
        /// wgpu's message.
        message: String,
    },
}

/// Shorthand for `Result<T, wgpu_lstm::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn shape(tensor: impl Into<String>, expected: &[usize], actual: &[usize]) -> Self {
        Error::ShapeMismatch {
            tensor: tensor.into(),
            expected: expected.into(),
            actual: actual.into(),
        }
    }
}

impl Error {
    /// A file error naming `path`, with the operating system's error as its source.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// An encoding error for `what`.
    pub fn encode(what: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::Encode {
            what: what.into(),
            message: message.to_string(),
        }
    }

    pub(crate) fn invalid_file(path: &std::path::Path, message: impl Into<String>) -> Self {
        Error::InvalidFile {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
}
