//! `tenure-sled`: the embedded durable store, the default of the `tenure` command line.
//!
//! Records will live in a sled database readable by its owner only (directory 0700, files
//! 0600) and survive a SIGKILL between and during writes. Not built yet; the crate holds its
//! place in the workspace.

pub use tenure_core::Record;
