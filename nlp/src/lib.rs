//! Offline clinical NLP (skeleton; being written).
