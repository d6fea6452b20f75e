//! The local runtime (being written).
