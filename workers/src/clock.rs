//! The one wall clock of the workers and operator tools: milliseconds since the Unix
//! epoch. Stages take `now` as an argument where a decision depends on it (so tests fix
//! it); this is where the adapters and shells read it.

/// Milliseconds since the Unix epoch by the system clock (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
