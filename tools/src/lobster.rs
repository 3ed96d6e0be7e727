//! LOBSTER to ITCH 5.0 conversion (being written).
