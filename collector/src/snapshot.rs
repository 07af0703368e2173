//! TODO (snapshot helper)
