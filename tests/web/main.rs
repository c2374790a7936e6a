//! HTTP tests of the web console against the real application on 127.0.0.1 with a
//! temporary SQLite file. One test binary with modules, so the crate is linked once.

mod account;
mod api;
mod api_limits;
mod auth;
mod browser;
mod browser_driver;
mod editing;
mod health;
mod helpers;
mod metrics;
mod pages;
mod routes;
mod secrets;
mod sessions;
mod signin;
mod tokens;
