//! The ZIP container: a streaming local-header reader and a seekable reader (being written).
