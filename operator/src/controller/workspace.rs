//! Workspace controller: a Workspace resource → its schema, migrations, topics and registry row
//! (through the provisioning library), and back out on deletion.
//!
//! The direction is Kubernetes → Postgres/Kafka only. A Workspace is provisioned when its
//! generation or the operator's tenant migrations are newer than what its status records, or
//! after a failure; a healthy, unchanged Workspace is never provisioned again, so a topic or schema
//! an administrator removed on purpose is not recreated behind their back (bump the spec, e.g.
//! an annotation-free `kubectl edit` of displayName, to provision again).
//!
//! It must not touch the gateway pods (the ChatCluster controller owns those).

use std::sync::Arc;
use std::time::Instant;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, ResourceExt};
use palaver_crds::resources::{ChatCluster, DeletionPolicy, Workspace, WorkspaceStatus};
use palaver_crds::WorkspaceName;
use serde_json::json;

use super::{drain, error_policy, parse_kafka_properties, scoped_api, Context, Error, ProvisionerKey};
use crate::conditions::{self, Want, DEGRADED, PROGRESSING, READY};
use crate::provision::{latest_tenant_migration, WorkspacePlan};

/// Held by every Workspace until its data has been dealt with per `deletionPolicy`.
pub const FINALIZER: &str = "palaver.dev/workspace";
const KIND: &str = "Workspace";

/// Runs the controller until `shutdown` resolves. `namespace`: watch only that one.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let (client, ns) = (ctx.client.clone(), namespace.as_deref());
    let controller = Controller::new(scoped_api::<Workspace>(&client, ns), watcher::Config::default());
    let store = controller.store();
    let results = controller
        // A ChatCluster appearing (or changing) wakes the Workspaces waiting for it.
        .watches(scoped_api::<ChatCluster>(&client, ns), watcher::Config::default(), move |cc| {
            let ns = cc.namespace();
            let name = cc.name_any();
            store
                .state()
                .into_iter()
                .filter(|w| w.namespace() == ns && w.spec.cluster_ref == name)
                .map(|w| ObjectRef::from_obj(&*w))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx);
    drain(KIND, results).await;
}

pub async fn reconcile(ws: Arc<Workspace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = ws.namespace().ok_or_else(|| Error::InvalidSpec("Workspace must be namespaced".into()))?;
    let api: Api<Workspace> = Api::namespaced(ctx.client.clone(), &ns);
    let (status_api, inner) = (api.clone(), ctx.clone());
    let result = finalizer(&api, FINALIZER, ws.clone(), |event| async move {
        match event {
            finalizer::Event::Apply(ws) => apply(ws, status_api, inner).await,
            finalizer::Event::Cleanup(ws) => cleanup(ws, inner).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => Error::Kube(e),
        finalizer::Error::UnnamedObject | finalizer::Error::InvalidFinalizer => Error::InvalidSpec(e.to_string()),
    });
    ctx.finished(KIND, ws.as_ref(), started, &result);
    result
}

async fn apply(ws: Arc<Workspace>, api: Api<Workspace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let (api, ctx) = (&api, ctx.as_ref());
    // Up to date as cached: nothing to do, and no request (a newer generation the cache has not
    // seen yet brings its own reconcile).
    if up_to_date(&ws) {
        ctx.metrics.set_ready(KIND, &ws.namespace().unwrap_or_default(), &ws.name_any(), true);
        return Ok(Action::await_change());
    }
    // About to act: on the object as stored now, not as the watch cache last saw it. A cached
    // Workspace older than our last status write would provision again, merge against stale
    // conditions (moving their transition times) or record an older observedGeneration.
    let ws = &api.get(&ws.name_any()).await?;
    if up_to_date(ws) {
        ctx.metrics.set_ready(KIND, &ws.namespace().unwrap_or_default(), &ws.name_any(), true);
        return Ok(Action::await_change());
    }
    let status = ws.status.clone().unwrap_or_default();
    let generation = ws.metadata.generation;
    match provision(ws, ctx).await {
        Ok(Outcome::Provisioned(next)) => {
            let was_ready = conditions::is_true(&status.conditions, READY) && status.observed_generation == generation;
            write_status(ws, api, ctx, next).await?;
            if !was_ready {
                ctx.event(ws, false, "Provisioned", "Provision", format!("workspace {} provisioned", ws.name_any())).await;
            }
            Ok(Action::await_change())
        }
        Ok(Outcome::Waiting(message)) => {
            let wants = [
                Want::new(READY, false, "ClusterNotFound", message.clone()),
                Want::new(PROGRESSING, true, "WaitingForCluster", message.clone()),
                Want::new(DEGRADED, false, "AsExpected", ""),
            ];
            let next = WorkspaceStatus { conditions: conditions::merge(&status.conditions, &wants, generation), ..status.clone() };
            if conditions::reason(&status.conditions, PROGRESSING) != Some("WaitingForCluster") {
                ctx.event(ws, false, "WaitingForCluster", "Provision", message).await;
            }
            write_status(ws, api, ctx, next).await?;
            Ok(Action::requeue(ctx.settings.wait_for_cluster))
        }
        Err(err) => {
            let message = err.to_string();
            let wants = [
                Want::new(READY, false, err.reason(), message.clone()),
                Want::new(PROGRESSING, false, err.reason(), "provisioning failed; retrying with backoff"),
                Want::new(DEGRADED, true, err.reason(), message.clone()),
            ];
            let next = WorkspaceStatus { conditions: conditions::merge(&status.conditions, &wants, generation), ..status.clone() };
            if conditions::reason(&status.conditions, DEGRADED) != Some(err.reason()) {
                ctx.event(ws, true, err.reason(), "Provision", message).await;
            }
            // The provisioning error is what matters; a failed status write is logged only.
            if let Err(e) = write_status(ws, api, ctx, next).await {
                tracing::warn!(error = %e, "could not record the failure on the Workspace status");
            }
            Err(err)
        }
    }
}

/// Provisioned at this generation with the newest tenant migrations, and Ready.
fn up_to_date(ws: &Workspace) -> bool {
    ws.status.as_ref().is_some_and(|s| {
        s.observed_generation == ws.metadata.generation
            && conditions::is_true(&s.conditions, READY)
            && s.migration_version == Some(latest_tenant_migration())
    })
}

enum Outcome {
    Provisioned(WorkspaceStatus),
    Waiting(String),
}

async fn provision(ws: &Workspace, ctx: &Context) -> Result<Outcome, Error> {
    let plan = WorkspacePlan::from_resource(ws)?;
    let ns = ws.namespace().unwrap_or_default();
    let Some(cluster) = Api::<ChatCluster>::namespaced(ctx.client.clone(), &ns).get_opt(&ws.spec.cluster_ref).await? else {
        return Ok(Outcome::Waiting(format!("waiting for ChatCluster {ns}/{}", ws.spec.cluster_ref)));
    };
    let provisioner = ctx.provisioner(provisioner_key(&cluster, ctx).await?).await?;
    let report = provisioner.provision(&plan).await?;

    let status = ws.status.clone().unwrap_or_default();
    let summary = format!(
        "schema {} at migration {}, topics {} ({} partitions)",
        report.schema,
        report.migration_version,
        report.topics.join(", "),
        report.partitions
    );
    let degraded = if report.partitions > plan.partitions {
        Want::new(
            DEGRADED,
            true,
            "PartitionShrinkRefused",
            format!(
                "the events topic has {} partitions and spec.partitions is {}; Kafka cannot remove partitions, so it keeps {}",
                report.partitions, plan.partitions, report.partitions
            ),
        )
    } else {
        Want::new(DEGRADED, false, "AsExpected", "")
    };
    let wants = [Want::new(READY, true, "Provisioned", summary), Want::new(PROGRESSING, false, "Provisioned", ""), degraded];
    Ok(Outcome::Provisioned(WorkspaceStatus {
        conditions: conditions::merge(&status.conditions, &wants, ws.metadata.generation),
        observed_generation: ws.metadata.generation,
        schema: Some(report.schema),
        topics: report.topics,
        partitions: Some(report.partitions),
        migration_version: Some(report.migration_version),
    }))
}

/// Connection settings of `cluster`, from its Secrets.
async fn provisioner_key(cluster: &ChatCluster, ctx: &Context) -> Result<ProvisionerKey, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let database_url = ctx.secret_value(&ns, &cluster.spec.postgres.secret_ref).await?;
    let kafka_properties = match &cluster.spec.kafka.secret_ref {
        Some(r) => parse_kafka_properties(&ctx.secret_value(&ns, r).await?)?,
        None => Vec::new(),
    };
    Ok(ProvisionerKey {
        cluster: format!("{ns}/{}", cluster.name_any()),
        database_url,
        brokers: cluster.spec.kafka.bootstrap.clone(),
        kafka_properties,
        replication: cluster.spec.kafka.replication_factor,
    })
}

/// Patches the status subresource, only when it changed (an identical patch would still be a
/// request per reconcile, and a changed timestamp a watch event: a hot loop).
async fn write_status(ws: &Workspace, api: &Api<Workspace>, ctx: &Context, next: WorkspaceStatus) -> Result<(), Error> {
    ctx.metrics.set_ready(KIND, &ws.namespace().unwrap_or_default(), &ws.name_any(), conditions::is_true(&next.conditions, READY));
    if ws.status.as_ref() == Some(&next) {
        return Ok(());
    }
    api.patch_status(&ws.name_any(), &PatchParams::default(), &Patch::Merge(json!({ "status": next }))).await?;
    Ok(())
}

/// Deletion: deregister, and with `Delete` drop topics and schema. Transient failures keep the
/// finalizer (retried with backoff); a ChatCluster or Secret that no longer exists releases it
/// with a Warning Event naming what was left behind, so a namespace being deleted never hangs.
async fn cleanup(ws: Arc<Workspace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let (ws, ctx) = (ws.as_ref(), ctx.as_ref());
    let ns = ws.namespace().unwrap_or_default();
    ctx.metrics.forget(KIND, &ns, &ws.name_any());
    let Ok(name) = WorkspaceName::new(ws.name_any()) else {
        return Ok(Action::await_change());
    };
    let policy = ws.spec.deletion_policy;
    let left_behind = |why: String| {
        let data = match policy {
            DeletionPolicy::Delete => {
                format!("its registry row, schema {} and topics {}, {}", name.schema(), name.events_topic(), name.dlq_topic())
            }
            DeletionPolicy::Retain => "its registry row (schema and topics are kept anyway: deletionPolicy Retain)".to_string(),
        };
        format!("{why}: {data} left in place; remove by hand if unwanted")
    };
    let cluster = Api::<ChatCluster>::namespaced(ctx.client.clone(), &ns).get_opt(&ws.spec.cluster_ref).await?;
    let Some(cluster) = cluster else {
        let note = left_behind(format!("ChatCluster {ns}/{} is gone", ws.spec.cluster_ref));
        ctx.event(ws, true, "DataLeftBehind", "Deprovision", note).await;
        return Ok(Action::await_change());
    };
    let key = match provisioner_key(&cluster, ctx).await {
        Ok(k) => k,
        Err(e @ (Error::SecretMissing { .. } | Error::SecretKeyMissing { .. })) => {
            ctx.event(ws, true, "DataLeftBehind", "Deprovision", left_behind(e.to_string())).await;
            return Ok(Action::await_change());
        }
        Err(e) => return Err(e),
    };
    let provisioner = ctx.provisioner(key).await?;
    if let Err(e) = provisioner.deprovision(&name, policy).await {
        let e = Error::from(e);
        ctx.event(ws, true, e.reason(), "Deprovision", format!("deprovisioning failed, will retry: {e}")).await;
        return Err(e);
    }
    let note = match policy {
        DeletionPolicy::Delete => format!("workspace {name} deregistered; schema and topics deleted"),
        DeletionPolicy::Retain => format!("workspace {name} deregistered; schema {} and topics retained", name.schema()),
    };
    ctx.event(ws, false, "Deprovisioned", "Deprovision", note).await;
    Ok(Action::await_change())
}
