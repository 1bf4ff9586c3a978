//! Demo organisation and data (being written).
