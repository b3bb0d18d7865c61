//! The worker agent (in progress).
pub mod executor;
