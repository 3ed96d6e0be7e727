//! Shared helpers for the mdfh benchmarks.
