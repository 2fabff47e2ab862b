//! Picture checks shared by the report tests of this crate and of the workspace's root tests
//! (included with `#[path]`: they are different crates).
#![allow(dead_code)]

use std::path::Path;

/// The PNG at `path` in grey levels; panics naming the file when it does not decode.
pub fn open_luma(path: &Path) -> image::GrayImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()))
        .to_luma8()
}

/// Asserts that the PNG at `path` decodes and is drawn: more than 500 dark pixels (text,
/// axes, lines), not a blank canvas.
pub fn assert_drawn(path: &Path) {
    let dark = open_luma(path).pixels().filter(|p| p.0[0] < 128).count();
    assert!(dark > 500, "{} is (nearly) blank", path.display());
}
