//! TODO(owner): module docs.
