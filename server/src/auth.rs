//! Authentication: tokens and passwords (being written).
