//! Runtime (placeholder while building).
