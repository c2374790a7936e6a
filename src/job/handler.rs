use std::future::Future;

use serde::de::DeserializeOwned;

use super::{JobContext, JobError};

/// A job type. Implement this once per kind of work and register it by name.
///
/// ```
/// use batchboard::job::{JobContext, JobError, JobHandler, Outcome};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Params { shop: String }
///
/// struct CountOrders;
///
/// impl JobHandler for CountOrders {
///     type Params = Params;
///
///     async fn run(&self, params: Params, ctx: JobContext) -> Result<Outcome, JobError> {
///         tracing::info!(shop = %params.shop, "counting orders");
///         ctx.add_checked(3);
///         Ok(Outcome::default())
///     }
/// }
/// ```
pub trait JobHandler: Send + Sync + 'static {
    /// The job's `params`, decoded from the settings file or database with serde. A job
    /// whose params do not decode is refused when the settings are loaded, not at run time.
    type Params: DeserializeOwned + Send + 'static;

    /// Runs the job once. Log with the ordinary `tracing` macros: every event inside the
    /// run is captured into the run's log. Stop promptly when `ctx.cancelled()` fires.
    fn run(
        &self,
        params: Self::Params,
        ctx: JobContext,
    ) -> impl Future<Output = Result<Outcome, JobError>> + Send;
}

/// What a successful run reports besides the counts kept in its [`JobContext`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// A one-line summary shown next to the run, e.g. "3 prices changed".
    pub summary: Option<String>,
}

impl Outcome {
    /// An outcome with a one-line summary.
    pub fn summary(text: impl Into<String>) -> Self {
        Self {
            summary: Some(text.into()),
        }
    }
}
