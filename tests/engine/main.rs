//! Integration tests of the engine against real SQLite files. One test binary with
//! modules, so the crate is linked once.

mod alerts_store;
mod chains;
mod chains_store;
mod cli;
mod cluster;
mod edits;
mod edits_store;
mod faults;
mod instances;
mod instances_store;
mod leadership;
mod leadership_store;
mod log_partitions_store;
mod pgbouncer;
mod processes;
mod queued;
mod reads_store;
mod restart;
mod scheduler;
mod schedules;
mod secrets;
mod shared_runs;
mod shared_runs_store;
mod shared_store;
mod store;
mod support;
mod users_store;
mod writer_lanes_store;
