//! (placeholder: filled in by the decode work)
