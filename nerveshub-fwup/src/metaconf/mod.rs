//! meta.conf parsing and the typed model (being written).
