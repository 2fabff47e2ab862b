//! # ezpz-burn
//!
//! burn 0.22 integration for [`ezpz_tracker`].
#![warn(missing_docs)]
