//! AWS SDK adapters of the ports.
