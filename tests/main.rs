//! The integration tests, one module per concern, linked into one test binary: each binary
//! links the whole dependency tree (hundreds of MB), so one binary keeps CI's disk and link
//! time small.

mod common;

mod aws_moto;
mod bench_webhooks;
mod controllers_moto;
mod crd_schemas;
mod disruption;
mod fuzz;
mod interruption;
mod leader;
mod plan;
mod plan_cost;
mod provisioning;
mod rbac;
mod run;
mod soak;
mod sqs_moto;
mod webhook_cache;
mod webhook_server;
mod webhooks_kubectl;
