//! Cloud capacity: what can be launched, where, and at what price.
//!
//! Today this holds the instance-type [`catalog`] (pure data and logic over the embedded dataset).
//! The `CloudProvider` trait, the AWS provider (`aws/`, which refreshes the catalog from EC2 and
//! the pricing API) and the in-process simulated provider (`sim`, with fault injection) will live
//! here too.

pub mod aws;
pub mod catalog;
pub mod launch;
pub mod provider;
pub mod queue;
pub mod sim;
pub mod sim_kubelet;

pub use provider::{CloudError, CloudProvider, CloudResult, Instance, InstanceState};
