//! What a job is to the core: the handler trait, the context a run gets, the errors a
//! handler returns, a job's validated settings, the settings an operator may change
//! ([`SETTINGS`]) and the registry of handlers.
//!
//! Adding a job type means writing one struct that implements [`JobHandler`] and adding
//! one line to the [`Registry`] that the application is built with.

pub mod chain;
mod context;
mod error;
mod handler;
mod name;
mod registry;
mod setting;
mod spec;

pub use context::{JobContext, Progress, RunCounters};
pub use error::{ErrorKind, JobError};
pub use handler::{JobHandler, Outcome};
pub use name::{JobName, JobNameError};
pub use registry::{ErasedHandler, Registry, RegistryBuilder};
pub use setting::{FormField, SETTINGS, Setting, SettingKind, setting_text, settings_json};
pub use spec::{
    ConcurrencyPolicy, JobSettings, JobSpec, MisfirePolicy, RetryPolicy, SettingsError,
};
