//! The NodeClaim lifecycle, one reconcile per claim (kube-runtime `Controller`, woken by the
//! claim and by the Node with its providerID): Launched → Registered → Initialized, the
//! registration timeout, and the `karpenter.sh/termination` finalizer (the claim's Node is
//! deleted and drained first, then the instance terminated).

mod finalize;
mod launch;
mod registration;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use serde_json::json;

use crate::apis::NodeClaim;
use crate::apis::labels::TERMINATION_FINALIZER;
use crate::apis::nodeclaim::conditions::{INITIALIZED, LAUNCHED, REGISTERED};
use crate::cloud::CloudError;

use super::Context;

pub const FIELD_MANAGER: &str = "karpenter";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// Not an error: the claim waits for something (its Node to drain) and is looked at again.
    #[error("waiting: {0}")]
    Waiting(String),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

pub async fn run(ctx: Context) {
    let claims: Api<NodeClaim> = Api::all(ctx.client.clone());
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let state = ctx.state.clone();
    Controller::new(claims, watcher::Config::default())
        .watches(nodes, watcher::Config::default(), move |node: Node| {
            let provider_id = node.spec.as_ref()?.provider_id.clone()?;
            state
                .nodeclaim_by_provider_id(&provider_id)
                .map(|c| ObjectRef::from_obj(c.as_ref()))
        })
        .run(reconcile, error_policy, Arc::new(ctx))
        .for_each(|_| async {})
        .await;
}

async fn reconcile(claim: Arc<NodeClaim>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<NodeClaim> = Api::all(ctx.client.clone());
    let result = finalizer(&api, TERMINATION_FINALIZER, claim, |event| async {
        match event {
            Finalizer::Apply(c) => lifecycle(&c, &ctx).await,
            Finalizer::Cleanup(c) => finalize::cleanup(&c, &ctx).await,
        }
    })
    .await;
    use kube::runtime::finalizer::Error as F;
    match result {
        Ok(action) => Ok(action),
        Err(F::ApplyFailed(e) | F::CleanupFailed(e)) => match e {
            // Deleted while we worked on it: nothing left to do.
            Error::Kube(k) if super::is_not_found(&k) => Ok(Action::await_change()),
            other => Err(other),
        },
        Err(F::AddFinalizer(k) | F::RemoveFinalizer(k)) if super::is_not_found(&k) => {
            Ok(Action::await_change())
        }
        Err(other) => Err(Error::Finalizer(Box::new(other))),
    }
}

async fn lifecycle(claim: &NodeClaim, ctx: &Context) -> Result<Action, Error> {
    let status = claim.status.clone().unwrap_or_default();
    if !status.is_condition_true(LAUNCHED) {
        return launch::launch(claim, ctx).await;
    }
    if !status.is_condition_true(REGISTERED) {
        return registration::register(claim, ctx).await;
    }
    if !status.is_condition_true(INITIALIZED) {
        return registration::initialize(claim, ctx).await;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn error_policy(claim: Arc<NodeClaim>, error: &Error, _ctx: Arc<Context>) -> Action {
    let name = claim.metadata.name.as_deref().unwrap_or("");
    match error {
        Error::Waiting(why) => {
            tracing::debug!(nodeclaim = name, "{why}");
            Action::requeue(Duration::from_millis(500))
        }
        Error::Cloud(CloudError::Retryable { .. }) => {
            tracing::info!(nodeclaim = name, "{error}");
            Action::requeue(Duration::from_secs(2))
        }
        _ => {
            tracing::warn!(nodeclaim = name, "{error}");
            Action::requeue(Duration::from_secs(5))
        }
    }
}

/// RFC 3339 to the second, as `metav1.Time` writes it.
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Merge-patches the claim's status.
async fn patch_status(
    ctx: &Context,
    name: &str,
    status: &crate::apis::NodeClaimStatus,
) -> Result<(), Error> {
    let api: Api<NodeClaim> = Api::all(ctx.client.clone());
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}
