//! `MlflowOptions`: the MLflow backend's settings given in code.

/// Settings given in code; each one left unset falls back to its environment variable.
#[derive(Debug, Clone, Default)]
pub struct MlflowOptions {
    pub(crate) tracking_uri: Option<String>,
    pub(crate) experiment_name: Option<String>,
    pub(crate) experiment_id: Option<String>,
    pub(crate) run_id: Option<String>,
}

impl MlflowOptions {
    /// Everything from the environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tracking server (else `MLFLOW_TRACKING_URI`).
    pub fn tracking_uri(mut self, uri: impl Into<String>) -> Self {
        self.tracking_uri = Some(uri.into());
        self
    }

    /// The experiment's name (else `MLFLOW_EXPERIMENT_NAME`, else the tracker's
    /// [`experiment`](crate::TrackerBuilder::experiment), else the project name); dots become
    /// hyphens.
    pub fn experiment_name(mut self, name: impl Into<String>) -> Self {
        self.experiment_name = Some(name.into());
        self
    }

    /// An existing experiment's id (else `MLFLOW_EXPERIMENT_ID`); skips the lookup by name.
    pub fn experiment_id(mut self, id: impl Into<String>) -> Self {
        self.experiment_id = Some(id.into());
        self
    }

    /// An existing run to log into (else `MLFLOW_RUN_ID`).
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }
}
