//! The server's errors: what went wrong, in words a client can act on, and how each protocol
//! reports it (an HTTP status with `{"error": …}`, a gRPC status code).

use crate::error::Error;

/// What kind of failure: it picks the HTTP status and the gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The request is malformed or does not fit the model (HTTP 400, `INVALID_ARGUMENT`).
    BadRequest,
    /// No such model, version or route (HTTP 404, `NOT_FOUND`).
    NotFound,
    /// The queue or the state table is full (HTTP 429, `RESOURCE_EXHAUSTED`).
    Busy,
    /// The body is larger than the server takes (HTTP 413; over gRPC tonic's own check
    /// answers `OUT_OF_RANGE` first).
    TooLarge,
    /// The server is shutting down (HTTP 503, `UNAVAILABLE`).
    Unavailable,
    /// The request's timeout passed before its results were ready (HTTP 504,
    /// `DEADLINE_EXCEEDED`).
    Timeout,
    /// A failure of the server itself (HTTP 500, `INTERNAL`).
    Internal,
}

/// A request's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServeError {
    pub kind: Kind,
    pub message: String,
}

impl ServeError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        ServeError {
            kind,
            message: message.into(),
        }
    }

    /// A request that is malformed or does not fit the model.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(Kind::BadRequest, message)
    }

    /// An unknown model, version or route.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, message)
    }

    /// The HTTP status code.
    pub fn http_status(&self) -> u16 {
        match self.kind {
            Kind::BadRequest => 400,
            Kind::NotFound => 404,
            Kind::TooLarge => 413,
            Kind::Busy => 429,
            Kind::Internal => 500,
            Kind::Unavailable => 503,
            Kind::Timeout => 504,
        }
    }

    /// The gRPC status.
    pub fn grpc_status(&self) -> tonic::Status {
        use tonic::Code;
        let code = match self.kind {
            Kind::BadRequest => Code::InvalidArgument,
            Kind::NotFound => Code::NotFound,
            Kind::Busy | Kind::TooLarge => Code::ResourceExhausted,
            Kind::Unavailable => Code::Unavailable,
            Kind::Timeout => Code::DeadlineExceeded,
            Kind::Internal => Code::Internal,
        };
        tonic::Status::new(code, self.message.clone())
    }

    /// One line of JSON for the log: the protocol, the model (if known), the status and the
    /// message.
    pub fn log(&self, protocol: &str, model: Option<&str>) {
        let line = serde_json::json!({
            "level": "error",
            "protocol": protocol,
            "model": model,
            "status": self.http_status(),
            "error": self.message,
        });
        eprintln!("{line}");
    }
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for ServeError {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::ShapeMismatch { .. }
            | Error::MissingTensor { .. }
            | Error::UnexpectedTensor { .. }
            | Error::InvalidInput(_)
            | Error::ExceedsLimit { .. } => Kind::BadRequest,
            Error::Busy(_) => Kind::Busy,
            Error::Closed(_) => Kind::Unavailable,
            Error::DeadlineExceeded(_) => Kind::Timeout,
            _ => Kind::Internal,
        };
        ServeError::new(kind, e.to_string())
    }
}

/// A result of the server.
pub(crate) type ServeResult<T> = std::result::Result<T, ServeError>;
