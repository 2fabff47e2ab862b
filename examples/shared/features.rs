//! The cargo features an example binary was built with, for its `--version` (the root tests
//! check them before running the binary: `tests/common/examples.rs`). Included by each
//! example with `#[path]`.

/// `<version> (features: mpi, wgpu)` or `(features: none)`.
pub fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let on: Vec<&str> = [
            ("mpi", cfg!(feature = "mpi")),
            ("ndarray", cfg!(feature = "ndarray")),
            ("wgpu", cfg!(feature = "wgpu")),
            ("cuda", cfg!(feature = "cuda")),
        ]
        .iter()
        .filter(|(_, built)| *built)
        .map(|(name, _)| *name)
        .collect();
        let list = if on.is_empty() {
            "none".to_string()
        } else {
            on.join(", ")
        };
        format!("{} (features: {list})", env!("CARGO_PKG_VERSION"))
    })
}
