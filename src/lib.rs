//! capstan's library: API types, pure decision logic, controllers and the webhook server.
//! The binary in `main.rs` is a thin CLI over it.

pub mod apis;
pub mod bench;
pub mod certs;
pub mod cli;
pub mod cloud;
pub mod controllers;
pub mod convert;
pub mod disruption;
pub mod feature_gates;
pub mod fuzz;
pub mod interruption;
pub mod leader;
pub mod local_webhooks;
pub mod manifest;
pub mod metrics;
pub mod nodeview;
pub mod plan;
pub mod scheduling;
pub mod webhook;
