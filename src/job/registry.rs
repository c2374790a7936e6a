use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::{JobContext, JobError, JobHandler, Outcome};

/// A [`JobHandler`] with its params type erased, so handlers of every type can live in
/// one [`Registry`]. Implemented for every handler; you never implement it yourself.
pub trait ErasedHandler: Send + Sync + 'static {
    /// Whether `params` decode into the handler's params type; the error says why not.
    fn check_params(&self, params: &serde_json::Value) -> Result<(), String>;

    /// Decodes `params` and runs the handler.
    fn run(
        &self,
        params: serde_json::Value,
        ctx: JobContext,
    ) -> BoxFuture<'static, Result<Outcome, JobError>>;
}

struct Erased<H>(Arc<H>);

impl<H: JobHandler> ErasedHandler for Erased<H> {
    fn check_params(&self, params: &serde_json::Value) -> Result<(), String> {
        H::Params::deserialize(params)
            .map(drop)
            .map_err(|error| error.to_string())
    }

    fn run(
        &self,
        params: serde_json::Value,
        ctx: JobContext,
    ) -> BoxFuture<'static, Result<Outcome, JobError>> {
        let handler = Arc::clone(&self.0);
        Box::pin(async move {
            let params = H::Params::deserialize(params)
                .map_err(|error| JobError::Fatal(anyhow::anyhow!("invalid params: {error}")))?;
            handler.run(params, ctx).await
        })
    }
}

use serde::Deserialize as _;

/// The handlers this process knows, by name. Built once at start-up.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: Arc<BTreeMap<String, Arc<dyn ErasedHandler>>>,
}

impl Registry {
    /// Starts an empty registry.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// The handler registered under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn ErasedHandler>> {
        self.handlers.get(name).cloned()
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Collects handlers for a [`Registry`].
#[derive(Default)]
pub struct RegistryBuilder {
    handlers: BTreeMap<String, Arc<dyn ErasedHandler>>,
}

impl RegistryBuilder {
    /// Registers `handler` under `name`; a later registration of the same name wins, so
    /// an application can replace a built-in handler.
    pub fn handler<H: JobHandler>(mut self, name: impl Into<String>, handler: H) -> Self {
        self.handlers
            .insert(name.into(), Arc::new(Erased(Arc::new(handler))));
        self
    }

    /// The finished registry.
    pub fn build(self) -> Registry {
        Registry {
            handlers: Arc::new(self.handlers),
        }
    }
}
