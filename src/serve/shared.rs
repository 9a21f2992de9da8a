//! What the protocol handlers share: the models by name, and whether the server takes
//! requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::describe::VERSION;
use super::error::{ServeError, ServeResult};
use super::model::ServedModel;

/// What the protocol handlers share: the models by name, and whether the server is ready.
#[derive(Debug)]
pub(crate) struct Shared {
    models: BTreeMap<String, Arc<ServedModel>>,
    ready: AtomicBool,
    max_body_bytes: usize,
}

impl Shared {
    pub fn new(models: Vec<ServedModel>, max_body_bytes: usize) -> Self {
        Shared {
            models: models
                .into_iter()
                .map(|m| (m.name().to_string(), Arc::new(m)))
                .collect(),
            ready: AtomicBool::new(true),
            max_body_bytes,
        }
    }

    /// Reports not ready from now on (the shutdown has begun).
    pub fn stop_taking(&self) {
        self.ready.store(false, Ordering::Release);
    }

    /// The model of `name`, at `version` when one is given (each model has version `1`).
    pub fn model(&self, name: &str, version: Option<&str>) -> ServeResult<&Arc<ServedModel>> {
        let model = self.models.get(name).ok_or_else(|| {
            ServeError::not_found(format!(
                "unknown model `{name}`; this server has {}",
                self.models.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        match version {
            Some(v) if v != VERSION => Err(ServeError::not_found(format!(
                "model `{name}` has no version `{v}`; its one version is `{VERSION}`"
            ))),
            _ => Ok(model),
        }
    }

    /// Every model, by name.
    pub fn models(&self) -> impl Iterator<Item = &ServedModel> {
        self.models.values().map(|m| m.as_ref())
    }

    /// Whether the server takes requests (until its shutdown starts).
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }
}
