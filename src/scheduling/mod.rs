//! Pure scheduling logic: no kube client, no AWS SDK, no tokio. Functions over plain data.

pub mod requirements;
pub mod resources;
pub mod taints;
