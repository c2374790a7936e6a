//! HTTP tests of the web console against the real application on 127.0.0.1 with a
//! temporary SQLite file (or, with `BATCHBOARD_TEST_WEB_BACKEND=postgres`, a PostgreSQL
//! database of its own: see `helpers`). One test binary with modules, so the crate is
//! linked once.

mod account;
mod alerts;
mod api;
mod api_limits;
mod auth;
mod browser;
mod browser_alerts;
mod browser_chains;
mod browser_driver;
mod browser_runs;
mod bulk;
mod chains;
mod chains_form;
mod editing;
mod health;
mod helpers;
mod instances;
mod maintenance;
mod metrics;
mod pages;
mod raw_db;
mod routes;
mod runs_view;
mod secrets;
mod sessions;
mod signin;
mod tokens;
mod upcoming;
