//! (placeholder: filled in by the pdq work)
