//! ChatCluster controller: a ChatCluster → the palaverd Deployment, its Services, ConfigMap,
//! PodDisruptionBudget, optional HPA, Ingress, HTTPRoute and monitoring objects, all applied
//! server-side under one field manager and owned by the ChatCluster (deleting it
//! garbage-collects them).
//!
//! Drift is repaired on the next reconcile: the controller watches what it owns, so an edit or a
//! deletion of a child is reapplied at once. Objects of CRDs that may be missing (HTTPRoute,
//! ServiceMonitor, PrometheusRule) are not watched (a watch on a missing resource fails): their
//! drift is repaired on the periodic resync. It must not touch Postgres or Kafka (the Workspace
//! controller and the provisioning library own those).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, Resource, ResourceExt};
use palaver_crds::resources::{ChatCluster, ChatClusterStatus, Workspace};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use super::objects::{self, Names};
use super::{drain, error_policy, parse_kafka_properties, scoped_api, Context, Error, MANAGER};
use crate::conditions::{self, Want, DEGRADED, PROGRESSING, READY};

const KIND: &str = "ChatCluster";

/// Runs the controller until `shutdown` resolves. `namespace`: watch only that one.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let (client, ns) = (ctx.client.clone(), namespace.as_deref());
    // Only objects carrying our managed-by label are watched: less cache, fewer wake-ups.
    let mine = watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    let results = Controller::new(scoped_api::<ChatCluster>(&client, ns), watcher::Config::default())
        .owns(scoped_api::<Deployment>(&client, ns), mine.clone())
        .owns(scoped_api::<Service>(&client, ns), mine.clone())
        .owns(scoped_api::<ConfigMap>(&client, ns), mine.clone())
        .owns(scoped_api::<PodDisruptionBudget>(&client, ns), mine.clone())
        .owns(scoped_api::<HorizontalPodAutoscaler>(&client, ns), mine.clone())
        .owns(scoped_api::<Ingress>(&client, ns), mine)
        // Workspaces come and go: keep the cluster's workspace count current.
        .watches(scoped_api::<Workspace>(&client, ns), watcher::Config::default(), |ws| {
            ws.namespace().map(|ns| ObjectRef::<ChatCluster>::new(&ws.spec.cluster_ref).within(&ns))
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx);
    drain(KIND, results).await;
}

pub async fn reconcile(cc: Arc<ChatCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = if cc.meta().deletion_timestamp.is_some() {
        // Owner references hand the children to the garbage collector.
        ctx.metrics.forget(KIND, &cc.namespace().unwrap_or_default(), &cc.name_any());
        Ok(Action::await_change())
    } else {
        apply(&cc, &ctx).await
    };
    // Also on deletion: it ends the failure streak, so the backoff state does not outlive it.
    ctx.finished(KIND, cc.as_ref(), started, &result);
    result
}

async fn apply(cc: &ChatCluster, ctx: &Context) -> Result<Action, Error> {
    let ns = cc.namespace().ok_or_else(|| Error::InvalidSpec("ChatCluster must be namespaced".into()))?;
    let api: Api<ChatCluster> = Api::namespaced(ctx.client.clone(), &ns);
    // The status as stored now, not as the watch cache last saw it: a reconcile running on a
    // cached object older than our last status write would merge against stale conditions
    // and move their transition times.
    let stored = api.get(&cc.name_any()).await?.status.unwrap_or_default();
    match apply_children(cc, ctx, &ns).await {
        Ok(observed) => {
            let next = status(cc, &stored, &observed);
            if conditions::reason(&stored.conditions, READY) != conditions::reason(&next.conditions, READY) {
                let ready = conditions::is_true(&next.conditions, READY);
                let message = next.conditions.iter().find(|c| c.type_ == READY).map(|c| c.message.clone()).unwrap_or_default();
                let reason = conditions::reason(&next.conditions, READY).unwrap_or("Unknown").to_string();
                ctx.event(cc, !ready && stored.observed_generation.is_some(), &reason, "Reconcile", message).await;
            }
            for warning in observed.warnings {
                if !stored.conditions.iter().any(|c| c.message.contains(&warning.message)) {
                    ctx.event(cc, true, warning.reason, "Reconcile", warning.message).await;
                }
            }
            write_status(cc, &api, ctx, &stored, next).await?;
            Ok(Action::requeue(ctx.settings.resync))
        }
        Err(err) => {
            let message = err.to_string();
            let wants = [
                Want::new(READY, conditions::is_true(&stored.conditions, READY), err.reason(), message.clone()),
                Want::new(PROGRESSING, false, err.reason(), "reconcile failed; retrying with backoff"),
                Want::new(DEGRADED, true, err.reason(), message.clone()),
            ];
            let next =
                ChatClusterStatus { conditions: conditions::merge(&stored.conditions, &wants, cc.metadata.generation), ..stored.clone() };
            if conditions::reason(&stored.conditions, DEGRADED) != Some(err.reason()) {
                ctx.event(cc, true, err.reason(), "Reconcile", message).await;
            }
            if let Err(e) = write_status(cc, &api, ctx, &stored, next).await {
                tracing::warn!(error = %e, "could not record the failure on the ChatCluster status");
            }
            Err(err)
        }
    }
}

/// What applying found out.
struct Observed {
    deployment: Deployment,
    /// The client Service as applied (its status holds a LoadBalancer's address).
    service: Service,
    workspaces: i32,
    /// Objects asked for but impossible (their CRD is not installed).
    warnings: Vec<Warning>,
}

/// Something the spec asks for that could not be done, though the rest was: it makes the
/// ChatCluster Degraded (with the first warning's reason) and is published as an Event.
struct Warning {
    reason: &'static str,
    message: String,
}

/// Whether CRD `name` (`plural.group`) is installed: the controller creates objects of optional
/// CRDs (Prometheus operator, Gateway API) only where they are.
async fn crd_installed(client: &kube::Client, name: &str) -> Result<bool, Error> {
    Ok(Api::<CustomResourceDefinition>::all(client.clone()).get_opt(name).await?.is_some())
}

async fn apply_children(cc: &ChatCluster, ctx: &Context, ns: &str) -> Result<Observed, Error> {
    check_secrets(cc, ctx, ns).await?;
    let names = Names::of(cc);
    let c = &ctx.client;
    ssa(&Api::<ConfigMap>::namespaced(c.clone(), ns), &names.config, &objects::config_map(cc)).await?;
    let deployment = ssa(&Api::<Deployment>::namespaced(c.clone(), ns), &names.deployment, &objects::deployment(cc)).await?;
    let service = ssa(&Api::<Service>::namespaced(c.clone(), ns), &names.service, &objects::service(cc)).await?;
    ssa(&Api::<Service>::namespaced(c.clone(), ns), &names.headless, &objects::headless_service(cc)).await?;
    ssa(&Api::<PodDisruptionBudget>::namespaced(c.clone(), ns), &names.pdb, &objects::pdb(cc)).await?;
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(c.clone(), ns);
    match objects::hpa(cc) {
        Some(h) => drop(ssa(&hpas, &names.hpa, &h).await?),
        None => delete_owned(&hpas, &names.hpa, cc).await?,
    }
    let ingresses = Api::<Ingress>::namespaced(c.clone(), ns);
    match objects::ingress(cc) {
        Some(i) => drop(ssa(&ingresses, &names.ingress, &i).await?),
        None => delete_owned(&ingresses, &names.ingress, cc).await?,
    }

    let mut warnings = Vec::new();
    // The HTTPRoute only where the Gateway API is installed; asked for without it, the rest of
    // the cluster still goes ahead (Degraded says why there is no route). Not watched (its CRD
    // may be missing): drift is repaired on the resync, and a CRD installed later is noticed then.
    let routes = objects::http_route_resource();
    let crd = format!("{}.{}", routes.plural, routes.group);
    let route = objects::http_route(cc);
    if crd_installed(c, &crd).await? {
        let api = Api::<DynamicObject>::namespaced_with(c.clone(), ns, &routes);
        match route {
            Some(r) => drop(ssa(&api, &names.route, &r).await?),
            None => delete_owned(&api, &names.route, cc).await?,
        }
    } else if route.is_some() {
        let message = format!("spec.gatewayAPI asks for an HTTPRoute but CRD {crd} is not installed; skipped");
        warnings.push(Warning { reason: "GatewayAPIUnavailable", message });
    }

    let monitoring = cc.spec.monitoring.clone().unwrap_or_default();
    let dashboards = Api::<ConfigMap>::namespaced(c.clone(), ns);
    if monitoring.dashboards {
        ssa(&dashboards, &names.dashboards, &objects::dashboards(cc)).await?;
    } else {
        delete_owned(&dashboards, &names.dashboards, cc).await?;
    }
    let wanted = [
        (objects::service_monitor_resource(), monitoring.service_monitor, Some(objects::service_monitor(cc))),
        (objects::prometheus_rule_resource(), monitoring.prometheus_rule, Some(objects::prometheus_rule(cc)?)),
    ];
    for (ar, on, obj) in wanted {
        let crd = format!("{}.{}", ar.plural, ar.group);
        if !crd_installed(c, &crd).await? {
            if on {
                let message = format!("spec.monitoring asks for a {} but CRD {crd} is not installed; skipped", ar.kind);
                warnings.push(Warning { reason: "MonitoringUnavailable", message });
            }
            continue;
        }
        let api = Api::<DynamicObject>::namespaced_with(c.clone(), ns, &ar);
        match obj.filter(|_| on) {
            Some(o) => drop(ssa(&api, &names.monitor, &o).await?),
            None => delete_owned(&api, &names.monitor, cc).await?,
        }
    }

    let workspaces = Api::<Workspace>::namespaced(c.clone(), ns).list(&ListParams::default()).await?;
    let count = workspaces.items.iter().filter(|w| w.spec.cluster_ref == cc.name_any()).count();
    Ok(Observed { deployment, service, workspaces: i32::try_from(count).unwrap_or(i32::MAX), warnings })
}

/// Server-side apply with our field manager; `force` takes over fields another manager set
/// (drift repair), as a controller should.
async fn ssa<K>(api: &Api<K>, name: &str, obj: &K) -> Result<K, Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    Ok(api.patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(obj)).await?)
}

/// Deletes `name` if it exists and this ChatCluster owns it (never someone else's object).
async fn delete_owned<K>(api: &Api<K>, name: &str, cc: &ChatCluster) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let Some(existing) = api.get_opt(name).await? else { return Ok(()) };
    let uid = cc.uid();
    if existing.owner_references().iter().any(|o| Some(&o.uid) == uid.as_ref()) {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The pods would not start without these: say so on the ChatCluster instead.
async fn check_secrets(cc: &ChatCluster, ctx: &Context, ns: &str) -> Result<(), Error> {
    let s = &cc.spec;
    ctx.secret_value(ns, &s.postgres.secret_ref).await?;
    ctx.secret_value(ns, &s.redis.secret_ref).await?;
    ctx.secret_value(ns, &s.auth.public_key_secret_ref).await?;
    if let Some(r) = &s.kafka.secret_ref {
        parse_kafka_properties(&ctx.secret_value(ns, r).await?)?;
    }
    for (_, r) in objects::object_storage_keys(cc) {
        ctx.secret_value(ns, &r).await?;
    }
    if let Some(r) = objects::object_storage_ca(cc) {
        ctx.secret_value(ns, &r).await?;
    }
    Ok(())
}

fn status(cc: &ChatCluster, stored: &ChatClusterStatus, o: &Observed) -> ChatClusterStatus {
    let ds = o.deployment.status.clone().unwrap_or_default();
    // With an HPA the Deployment has no replica count of its own until the HPA sets one.
    let floor = cc.spec.autoscaling.as_ref().map_or(cc.spec.replicas, |a| a.min_replicas);
    let desired = o.deployment.spec.as_ref().and_then(|s| s.replicas).or(ds.replicas).filter(|r| *r > 0).unwrap_or(floor);
    let ready = ds.ready_replicas.unwrap_or(0);
    let updated = ds.updated_replicas.unwrap_or(0);
    let summary = format!("{ready}/{desired} gateway pods ready");
    let rolling = updated < desired || ready < desired;
    let mut wants = vec![
        if ready >= 1 {
            Want::new(READY, true, "GatewayAvailable", summary.clone())
        } else {
            Want::new(READY, false, "GatewayUnavailable", summary.clone())
        },
        if rolling {
            Want::new(PROGRESSING, true, "RollingOut", format!("{updated}/{desired} pods updated, {ready} ready"))
        } else {
            Want::new(PROGRESSING, false, "RolloutComplete", summary)
        },
    ];
    wants.push(match o.warnings.first() {
        Some(first) => {
            let messages: Vec<&str> = o.warnings.iter().map(|w| w.message.as_str()).collect();
            Want::new(DEGRADED, true, first.reason, messages.join("; "))
        }
        None => Want::new(DEGRADED, false, "AsExpected", ""),
    });
    ChatClusterStatus {
        conditions: conditions::merge(&stored.conditions, &wants, cc.metadata.generation),
        observed_generation: cc.metadata.generation,
        ready_replicas: Some(ready),
        workspaces: Some(o.workspaces),
        url: objects::url(cc, o.service.status.as_ref()),
    }
}

async fn write_status(
    cc: &ChatCluster,
    api: &Api<ChatCluster>,
    ctx: &Context,
    stored: &ChatClusterStatus,
    next: ChatClusterStatus,
) -> Result<(), Error> {
    ctx.metrics.set_ready(KIND, &cc.namespace().unwrap_or_default(), &cc.name_any(), conditions::is_true(&next.conditions, READY));
    if *stored == next {
        return Ok(());
    }
    api.patch_status(&cc.name_any(), &PatchParams::default(), &Patch::Merge(json!({ "status": next }))).await?;
    Ok(())
}
