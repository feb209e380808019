//! Shared helpers for the examples (none yet); the examples live in `examples/`.
