//! capstan's sandbox: an in-memory, Kubernetes-compatible API server for tests and for
//! `capstan sandbox`. Real clients (kube-rs, kubectl) talk to it over HTTPS with a generated
//! kubeconfig; nothing here depends on the `capstan` crate.
//!
//! Layout, one concern per module:
//! - [`server`]: TLS, authentication, URL routing, body decoding, HTTP verbs → [`api`];
//!   [`protobuf`]: Kubernetes protobuf request bodies → JSON
//! - [`authn`]: bearer tokens → users (admin, ServiceAccounts); [`rbac`]: request attributes and
//!   RBAC decisions, pure; [`access`]: those decisions against the stored roles, and the record
//!   of denials
//! - [`api`]: object semantics over the store (metadata, status, finalizers, GC, CRDs)
//! - [`store`]: sharded in-memory objects, resourceVersions, event history
//! - [`watch`]: watch streams; [`selectors`]: label/field selectors; [`patch`]: patch types;
//!   [`strategic`]: strategic merge patch
//! - [`registry`]: served kinds; [`crd`]: what a CRD serves; [`defaults`]: defaulting;
//!   [`events`]: core/v1 and events.k8s.io/v1 Events, one stored resource, converted
//! - [`admission`]: the mutating and validating webhook chain; [`webhook_client`]: its HTTPS
//!   client
//! - [`eviction`]: pods/eviction and PodDisruptionBudget status; [`scale`]: the scale
//!   subresource
//! - [`controllers`]: the background loop running [`workloads`] (Deployment, ReplicaSet,
//!   DaemonSet), [`scheduler`] and [`kubelet`]; [`quantity`]: resource amounts
//! - [`validation`]: pruning and schema checks of custom resources; [`cel`]: their CEL rules
//! - [`openapi`]: OpenAPI v3 documents for kubectl; [`table`]: `kubectl get` Tables
//! - [`discovery`], [`errors`] (Status objects), [`kubeconfig`], [`tls`], [`object`] helpers
//!
//! ```no_run
//! # async fn demo() -> Result<(), capstan_sandbox::SandboxError> {
//! use capstan_sandbox::{Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::new("/tmp/sandbox/kubeconfig")).await?;
//! println!("serving {} (kubeconfig {})", sandbox.url(), sandbox.kubeconfig_path().display());
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

pub mod access;
pub mod admission;
pub mod api;
pub mod authn;
pub mod cel;
pub mod controllers;
pub mod crd;
pub mod defaults;
pub mod discovery;
pub mod errors;
pub mod events;
pub mod eviction;
pub mod jobs;
pub mod kubeconfig;
pub mod kubelet;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod quantity;
pub mod rbac;
pub mod registry;
pub mod reviews;
pub mod scale;
pub mod scheduler;
pub mod selectors;
pub mod server;
pub mod store;
pub mod strategic;
pub mod table;
pub mod tls;
pub mod validation;
pub mod watch;
pub mod webhook_client;
pub mod workloads;

pub use errors::{ApiError, SandboxError};
pub use server::{MAX_BODY, Sandbox, SandboxConfig, SandboxHandle};
pub use store::StoreLimits;
