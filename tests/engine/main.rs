//! Integration tests of the engine (store, and later scheduler), against real SQLite
//! files. One test binary with modules, so the crate is linked once.

mod store;
