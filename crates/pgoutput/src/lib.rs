//! Pure decoding of PostgreSQL logical replication traffic: the walsender envelope
//! (XLogData, primary keepalive, standby status update) and pgoutput messages.
//!
//! No I/O and no async runtime: bytes in, typed messages out. Every length read from the
//! wire is checked and every malformed input is a typed error, never a panic.
