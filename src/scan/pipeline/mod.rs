//! The classifier pipeline (in progress).
