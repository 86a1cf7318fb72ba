//! Pure scheduling logic: no kube client, no AWS SDK, no tokio. Functions over plain data.

pub mod instance;
pub mod lower_bound;
pub mod pod;
pub mod requirements;
pub mod resources;
pub mod scheduler;
pub mod taints;
pub mod topology;
