//! The integration tests, one module per concern, linked into one test binary: each binary
//! links the whole dependency tree (hundreds of MB), so one binary keeps CI's disk and link
//! time small.

mod common;

mod admission;
mod crds;
mod crud;
mod errors;
mod events;
mod eviction;
mod kubectl;
mod lifecycle;
mod rbac;
mod validation;
mod watch;
mod workloads;
