//! Admission webhooks: pure validation and defaulting for NodePool, EC2NodeClass, RequestPolicy
//! and Pods (request defaults), the AdmissionReview plumbing, and the HTTPS server.
//!
//! Everything but `server` is plain data in, plain data out: validators return field-path errors
//! and warnings, mutators a JSON Patch. This module never imports `controllers`; the controllers
//! feed the server's [`cache::WebhookCache`] from their watches.

pub mod budgets;
pub mod cache;
pub mod common;
pub mod ec2nodeclass;
pub mod install;
pub mod nodepool;
pub mod pod_defaults;
pub mod requestpolicy;
pub mod review;
pub mod server;

pub use common::{FieldError, Verdict};

#[cfg(test)]
mod examples_tests;
#[cfg(test)]
mod fuzz_tests;
