use std::time::Duration;

/// Why a run failed, in terms the retry policy understands.
///
/// The variant decides what happens next: a [`Retryable`](JobError::Retryable) failure
/// is retried with exponential backoff, a [`Fatal`](JobError::Fatal) one is not, and a
/// [`RateLimited`](JobError::RateLimited) one is retried no sooner than `retry_after`.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A passing failure (network, a busy upstream): try again later.
    #[error("{0:#}")]
    Retryable(anyhow::Error),
    /// Retrying will not help (bad params, a missing resource): stop now.
    #[error("{0:#}")]
    Fatal(anyhow::Error),
    /// The upstream asked us to slow down.
    #[error("rate limited, retry after {}s: {message}", retry_after.as_secs())]
    RateLimited {
        /// The earliest time to try again, as the upstream asked.
        retry_after: Duration,
        /// What the upstream said.
        message: String,
    },
    /// The run stopped because its cancellation token fired.
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    /// A retryable failure with this message.
    pub fn retryable(message: impl std::fmt::Display) -> Self {
        Self::Retryable(anyhow::anyhow!("{message}"))
    }

    /// A fatal failure with this message.
    pub fn fatal(message: impl std::fmt::Display) -> Self {
        Self::Fatal(anyhow::anyhow!("{message}"))
    }

    /// The kind recorded on the run row.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Retryable(_) => ErrorKind::Retryable,
            Self::Fatal(_) => ErrorKind::Fatal,
            Self::RateLimited { .. } => ErrorKind::RateLimited,
            Self::Cancelled => ErrorKind::Cancelled,
        }
    }
}

/// Any error becomes a retryable failure, so `?` works in handlers; say
/// [`JobError::Fatal`] explicitly when retrying cannot help.
impl From<anyhow::Error> for JobError {
    fn from(error: anyhow::Error) -> Self {
        Self::Retryable(error)
    }
}

/// The kind of failure stored with a run, as text in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Retryable,
    Fatal,
    RateLimited,
    Cancelled,
    Timeout,
    Interrupted,
    Panic,
    /// The job's settings no longer fit its handler (params, unknown handler).
    Invalid,
    /// A fire that was skipped because the previous run was still going.
    Overlap,
}

impl ErrorKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::Fatal => "fatal",
            Self::RateLimited => "rate_limited",
            Self::Cancelled => "cancelled",
            Self::Timeout => "timeout",
            Self::Interrupted => "interrupted",
            Self::Panic => "panic",
            Self::Invalid => "invalid",
            Self::Overlap => "overlap",
        }
    }

    /// Whether a failure of this kind may be retried by the retry policy.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Retryable | Self::RateLimited | Self::Timeout | Self::Interrupted
        )
    }
}
