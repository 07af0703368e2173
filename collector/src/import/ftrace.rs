//! TODO (importer helper)
