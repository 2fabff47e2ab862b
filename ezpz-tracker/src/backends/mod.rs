//! The built-in backends, one per file (a folder when one grows large).

use std::sync::Arc;

use crate::backend::Constructor;

pub(crate) mod appender;
mod copy;
pub mod csv;
pub mod jsonl;
pub mod memory;
#[cfg(feature = "mlflow")]
pub mod mlflow;
#[cfg(feature = "tensorboard")]
pub mod tensorboard;
#[cfg(feature = "wandb")]
pub mod wandb;

/// The built-in constructors, registered under these names.
pub(crate) fn builtins() -> Vec<(&'static str, Constructor)> {
    // `mut` is only needed when an optional backend is compiled in.
    #[allow(unused_mut)]
    let mut list: Vec<(&'static str, Constructor)> = vec![
        ("csv", Arc::new(csv::CsvBackend::from_context)),
        ("jsonl", Arc::new(jsonl::JsonlBackend::from_context)),
        ("memory", Arc::new(memory::MemoryBackend::from_context)),
    ];
    #[cfg(feature = "tensorboard")]
    list.push((
        "tensorboard",
        Arc::new(tensorboard::TensorBoardBackend::from_context),
    ));
    #[cfg(feature = "wandb")]
    list.push(("wandb", Arc::new(wandb::WandbBackend::from_context)));
    #[cfg(feature = "mlflow")]
    list.push(("mlflow", Arc::new(mlflow::MlflowBackend::from_context)));
    list
}
