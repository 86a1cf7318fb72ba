//! Controllers: tasks that watch the cluster and act on it. Each gathers inputs with kube-rs
//! watches and hands them to pure logic elsewhere; none is called per admission request.
//!
//! Today only [`webhook_cache`] exists (it feeds the webhook server); provisioning, lifecycle,
//! disruption and the rest come in later issues.

pub mod webhook_cache;
