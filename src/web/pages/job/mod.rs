//! Everything under `/jobs/{name}`: the page ([`page`]: summary, settings table, chart,
//! run history), the schedule form and its save, reset and preview ([`settings`]), and
//! the buttons ([`actions`]).

pub mod actions;
pub mod page;
pub mod settings;
