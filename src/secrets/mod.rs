//! What counts as a secret, and how it is kept from being shown.
//!
//! Two tools, for two places secrets could leak:
//!
//! - **Redaction** ([`redact_params`], [`redact_field`]): a job's params as people see
//!   them (pages, API, history). Values under `env` and `headers`, values of keys the
//!   [`RedactionList`] matches, the user info of URLs and secret-looking query values
//!   read `[redacted]`; the names stay, so operators can see what is configured. The
//!   stored params, and what handlers receive, are not changed.
//! - **Masking** ([`SecretMask`]): the text a run produces (log lines, error messages,
//!   summaries). Every value redaction hides from a job's params is registered with the
//!   run ([`secret_values`]), and every occurrence of it in the run's output is replaced,
//!   the way CI systems mask registered secrets.
//!
//! Both are pure: no I/O, no global state.

mod list;
mod mask;
mod params;
mod url;

pub use list::{BUILT_IN_REDACT_FRAGMENTS, RedactionList};
pub use mask::{MIN_MASKED_CHARS, SecretMask};
pub use params::{redact_field, redact_params, secret_values};
pub use url::loggable_url;

/// What a hidden value reads instead.
pub const REDACTED: &str = "[redacted]";
