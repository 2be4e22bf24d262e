//! Engine (placeholder while building).
