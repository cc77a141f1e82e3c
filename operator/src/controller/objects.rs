//! The Kubernetes objects a ChatCluster stands for, built from its spec alone (pure functions,
//! so every field is unit-testable and a reconcile is "build, then apply").
//!
//! Owns names, labels and shapes; must not talk to the API server.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, ServiceStatus, SleepAction,
    TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec, IngressTLS,
    ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Resource, ResourceExt};
use palaver_crds::resources::{ChatCluster, SecretKeyRef, ServiceType};
use serde_json::json;

use super::Error;

/// palaverd's HTTP/WebSocket/metrics port in the pod.
pub const HTTP_PORT: i32 = 8080;
/// Port of the client Service, where Ingresses, HTTPRoutes and load balancers send clients.
pub const CLIENT_PORT: i32 = 80;
/// ingress-nginx's proxy read and send timeouts for the gateway, in seconds. Its default, 60 s,
/// ends a WebSocket on which nothing moved for a minute: palaverd's 30 s heartbeat stays under
/// it, but one late ping (a phone waking up, a congested link) would drop the session. An hour
/// leaves the proxy out of deciding when a connection is dead; palaverd itself closes one that
/// misses two heartbeats.
const NGINX_WEBSOCKET_TIMEOUT_SECONDS: &str = "3600";
const CERT_MANAGER_CLUSTER_ISSUER: &str = "cert-manager.io/cluster-issuer";
const CERT_MANAGER_ISSUER: &str = "cert-manager.io/issuer";
/// Seconds between SIGTERM and SIGKILL; palaverd drains within `SHUTDOWN_GRACE_MS` of it.
const TERMINATION_GRACE_SECONDS: i64 = 30;
const SHUTDOWN_GRACE_MS: &str = "20000";
/// Time for endpoints to drop a terminating pod before palaverd stops accepting.
const PRE_STOP_SLEEP_SECONDS: i64 = 5;
const RUN_AS: i64 = 65532;
const JWT_DIR: &str = "/etc/palaver/jwt";
const KAFKA_DIR: &str = "/etc/palaver/kafka";
/// Where the object store's CA bundle (`spec.objectStorage.caSecret`) is mounted.
const S3_CA_DIR: &str = "/etc/palaver/s3-ca";
/// Annotation on the pod template: a hash of the ConfigMap, so a settings change rolls the pods.
pub const CONFIG_HASH: &str = "palaver.dev/config-hash";

/// The data-plane dashboard and alerts, shared with the Helm chart (one source).
pub const DATAPLANE_DASHBOARD: &str = include_str!("../../../charts/palaver/files/dashboards/palaver-dataplane.json");
pub const DATAPLANE_RULES: &str = include_str!("../../../charts/palaver/files/alerts/palaver-dataplane.rules.yaml");

/// Names of everything derived from one ChatCluster.
pub struct Names {
    pub deployment: String,
    pub service: String,
    pub headless: String,
    pub config: String,
    pub pdb: String,
    pub hpa: String,
    pub monitor: String,
    pub dashboards: String,
    pub ingress: String,
    pub route: String,
    /// The Secret of the Ingress's certificate when cert-manager issues it and none is named.
    pub tls_secret: String,
}

impl Names {
    pub fn of(cc: &ChatCluster) -> Self {
        let n = cc.name_any();
        Self {
            deployment: format!("{n}-gateway"),
            service: n.clone(),
            headless: format!("{n}-headless"),
            config: format!("{n}-config"),
            pdb: format!("{n}-gateway"),
            hpa: format!("{n}-gateway"),
            monitor: n.clone(),
            dashboards: format!("{n}-dashboards"),
            ingress: n.clone(),
            route: n.clone(),
            tls_secret: format!("{n}-tls"),
        }
    }
}

/// Labels that select the gateway pods of `cc`.
pub fn selector_labels(cc: &ChatCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "palaver".into()),
        ("app.kubernetes.io/component".into(), "gateway".into()),
        ("app.kubernetes.io/instance".into(), cc.name_any()),
    ])
}

fn labels(cc: &ChatCluster) -> BTreeMap<String, String> {
    let mut l = selector_labels(cc);
    l.insert("app.kubernetes.io/managed-by".into(), super::MANAGER.into());
    l
}

fn meta(cc: &ChatCluster, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: cc.namespace(),
        labels: Some(labels(cc)),
        owner_references: Some(vec![owner(cc)]),
        ..Default::default()
    }
}

/// Controller owner reference: deleting the ChatCluster garbage-collects what it made.
pub fn owner(cc: &ChatCluster) -> OwnerReference {
    cc.controller_owner_ref(&()).expect("a ChatCluster from the API server has a name and uid")
}

/// Non-secret palaverd settings, as env vars.
pub fn config_map(cc: &ChatCluster) -> ConfigMap {
    let s = &cc.spec;
    let mut data = BTreeMap::from([
        ("PALAVER_LISTEN".to_string(), format!("0.0.0.0:{HTTP_PORT}")),
        ("PALAVER_KAFKA_BROKERS".into(), s.kafka.bootstrap.clone()),
        ("PALAVER_CONSUMER_GROUP".into(), format!("palaver-{}-{}", cc.namespace().unwrap_or_default(), cc.name_any())),
        ("PALAVER_JWT_PUBLIC_KEY_FILE".into(), format!("{JWT_DIR}/public.pem")),
        ("PALAVER_JWT_ALG".into(), format!("{:?}", s.auth.algorithm)),
        ("PALAVER_JWT_ISSUER".into(), s.auth.issuer.clone()),
        ("PALAVER_JWT_AUDIENCE".into(), s.auth.audience.clone()),
        ("PALAVER_LOG_FORMAT".into(), "json".into()),
        ("PALAVER_SHUTDOWN_GRACE_MS".into(), SHUTDOWN_GRACE_MS.into()),
    ]);
    if s.kafka.secret_ref.is_some() {
        data.insert("PALAVER_KAFKA_PROPERTIES_FILE".into(), format!("{KAFKA_DIR}/client.properties"));
    }
    if let Some(p) = &s.push {
        data.insert("PALAVER_PUSH_WEBHOOK_URL".into(), p.webhook_url.clone());
        if let Some(n) = p.max_attempts {
            data.insert("PALAVER_PUSH_MAX_ATTEMPTS".into(), n.to_string());
        }
    }
    if let Some(prefix) = path_prefix(cc) {
        data.insert("PALAVER_PATH_PREFIX".into(), prefix);
    }
    if let Some(h) = &s.http {
        if !h.trusted_proxies.is_empty() {
            data.insert("PALAVER_TRUSTED_PROXIES".into(), h.trusted_proxies.join(","));
        }
        if !h.allowed_origins.is_empty() {
            data.insert("PALAVER_ALLOWED_ORIGINS".into(), h.allowed_origins.join(","));
        }
    }
    if let Some(o) = &s.object_storage {
        data.insert("PALAVER_S3_ENDPOINT".into(), o.endpoint.clone());
        if let Some(public) = &o.public_endpoint {
            data.insert("PALAVER_S3_PUBLIC_ENDPOINT".into(), public.clone());
        }
        data.insert("PALAVER_S3_BUCKET".into(), o.bucket.clone());
        data.insert("PALAVER_S3_REGION".into(), o.region.clone());
        data.insert("PALAVER_S3_VIRTUAL_HOSTED".into(), o.virtual_hosted_style.to_string());
        if o.ca_secret.is_some() {
            data.insert("PALAVER_S3_CA_FILE".into(), format!("{S3_CA_DIR}/ca.crt"));
        }
    }
    if let Some(l) = &s.limits {
        if let Some(v) = l.max_frame_bytes {
            data.insert("PALAVER_MAX_FRAME_BYTES".into(), v.to_string());
        }
        if let Some(v) = l.send_rate_per_second {
            data.insert("PALAVER_SEND_RATE".into(), v.to_string());
        }
        if let Some(v) = l.send_burst {
            data.insert("PALAVER_SEND_BURST".into(), v.to_string());
        }
    }
    ConfigMap { metadata: meta(cc, &Names::of(cc).config), data: Some(data), ..Default::default() }
}

/// FNV-1a: stable across builds and Rust versions (std's hasher is not), so an operator upgrade
/// does not roll every gateway.
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn config_hash(cm: &ConfigMap) -> String {
    let data = cm.data.clone().unwrap_or_default();
    let bytes = data.iter().flat_map(|(k, v)| k.bytes().chain([0]).chain(v.bytes()).chain([0]));
    format!("{:016x}", fnv1a(bytes))
}

fn secret_env(name: &str, r: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: r.name.clone(), key: r.key.clone(), optional: Some(false) }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn secret_file_volume(name: &str, r: &SecretKeyRef, file: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(r.name.clone()),
            items: Some(vec![KeyToPath { key: r.key.clone(), path: file.into(), mode: None }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction { path: Some(path.into()), port: IntOrString::String("http".into()), ..Default::default() }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Default::default()
    }
}

/// The object store's access key as Secret references (never the values), when
/// `spec.objectStorage` is set.
pub fn object_storage_keys(cc: &ChatCluster) -> Vec<(&'static str, SecretKeyRef)> {
    let Some(o) = &cc.spec.object_storage else { return Vec::new() };
    let c = &o.credentials_secret;
    let key = |key: &String| SecretKeyRef { name: c.name.clone(), key: key.clone() };
    vec![("PALAVER_S3_ACCESS_KEY_ID", key(&c.access_key_id_key)), ("PALAVER_S3_SECRET_ACCESS_KEY", key(&c.secret_access_key_key))]
}

/// The object store's CA bundle as a Secret reference, when `spec.objectStorage.caSecret` is
/// set; the pods get it as a file (`PALAVER_S3_CA_FILE`).
pub fn object_storage_ca(cc: &ChatCluster) -> Option<SecretKeyRef> {
    let ca = cc.spec.object_storage.as_ref()?.ca_secret.as_ref()?;
    Some(SecretKeyRef { name: ca.name.clone(), key: ca.key.clone() })
}

/// The palaverd Deployment. `replicas` is left out when an HPA owns the count.
pub fn deployment(cc: &ChatCluster) -> Deployment {
    let s = &cc.spec;
    let names = Names::of(cc);
    let cm = config_map(cc);
    let mut volumes = vec![
        secret_file_volume("jwt", &s.auth.public_key_secret_ref, "public.pem"),
        Volume { name: "tmp".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() },
    ];
    let mut mounts = vec![
        VolumeMount { name: "jwt".into(), mount_path: JWT_DIR.into(), read_only: Some(true), ..Default::default() },
        VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..Default::default() },
    ];
    if let Some(r) = &s.kafka.secret_ref {
        volumes.push(secret_file_volume("kafka", r, "client.properties"));
        mounts.push(VolumeMount { name: "kafka".into(), mount_path: KAFKA_DIR.into(), read_only: Some(true), ..Default::default() });
    }
    if let Some(r) = object_storage_ca(cc) {
        volumes.push(secret_file_volume("s3-ca", &r, "ca.crt"));
        mounts.push(VolumeMount { name: "s3-ca".into(), mount_path: S3_CA_DIR.into(), read_only: Some(true), ..Default::default() });
    }
    let pod_name = EnvVar {
        name: "PALAVER_POD_ID".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: "metadata.name".into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let container = Container {
        name: "palaverd".into(),
        image: Some(s.image.clone()),
        ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: HTTP_PORT, ..Default::default() }]),
        env: Some(
            [pod_name, secret_env("PALAVER_DATABASE_URL", &s.postgres.secret_ref), secret_env("PALAVER_REDIS_URL", &s.redis.secret_ref)]
                .into_iter()
                .chain(object_storage_keys(cc).iter().map(|(name, r)| secret_env(name, r)))
                .collect(),
        ),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource { name: names.config.clone(), optional: Some(false) }),
            ..Default::default()
        }]),
        readiness_probe: Some(http_probe("/readyz", 5, 2)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler { sleep: Some(SleepAction { seconds: PRE_STOP_SLEEP_SECONDS }), ..Default::default() }),
            ..Default::default()
        }),
        resources: s.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let selector = LabelSelector { match_labels: Some(selector_labels(cc)), ..Default::default() };
    let spread = |key: &str| TopologySpreadConstraint {
        max_skew: 1,
        topology_key: key.into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(selector.clone()),
        ..Default::default()
    };
    Deployment {
        metadata: meta(cc, &names.deployment),
        spec: Some(DeploymentSpec {
            replicas: if s.autoscaling.is_some() { None } else { Some(s.replicas) },
            selector: selector.clone(),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(cc)),
                    annotations: Some(BTreeMap::from([(CONFIG_HASH.to_string(), config_hash(&cm))])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(volumes),
                    termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS),
                        run_as_group: Some(RUN_AS),
                        fs_group: Some(RUN_AS),
                        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
                        ..Default::default()
                    }),
                    topology_spread_constraints: Some(vec![spread("kubernetes.io/hostname"), spread("topology.kubernetes.io/zone")]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The path the proxies route under, as the ChatCluster states it (`/` or `/chat/`): the
/// Ingress's, else the HTTPRoute's (the CRD makes them equal when both are set).
fn exposed_path(cc: &ChatCluster) -> &str {
    let s = &cc.spec;
    s.ingress.as_ref().map(|i| i.path.as_str()).or(s.gateway_api.as_ref().map(|g| g.path.as_str())).unwrap_or("/")
}

/// What palaverd strips in front of its routes (`/chat/` -> `/chat`); none at the root.
fn path_prefix(cc: &ChatCluster) -> Option<String> {
    let p = exposed_path(cc).trim_end_matches('/');
    (!p.is_empty()).then(|| p.to_string())
}

/// The client-facing Service (WebSocket and REST on port 80): ClusterIP unless
/// `spec.service` asks for a LoadBalancer or NodePort.
pub fn service(cc: &ChatCluster) -> Service {
    let mut metadata = meta(cc, &Names::of(cc).service);
    metadata.labels.get_or_insert_with(BTreeMap::new).insert("palaver.dev/service".into(), "client".into());
    let exposure = cc.spec.service.clone().unwrap_or_default();
    if !exposure.annotations.is_empty() {
        metadata.annotations = Some(exposure.annotations);
    }
    // The API server refuses source ranges on other types (the CRD does too).
    let ranges = exposure.load_balancer_source_ranges;
    let ranges = (exposure.type_ == ServiceType::LoadBalancer && !ranges.is_empty()).then_some(ranges);
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(format!("{:?}", exposure.type_)),
            selector: Some(selector_labels(cc)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: CLIENT_PORT,
                target_port: Some(IntOrString::String("http".into())),
                ..Default::default()
            }]),
            load_balancer_source_ranges: ranges,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// How a proxy matches one of [`routed_paths`]: the path and everything below it (by path
/// element), or the path alone.
enum PathMatch {
    Prefix,
    Exact,
}

/// What the Ingress and the HTTPRoute route of palaverd under `path` (`/` or `/chat/`): the
/// WebSocket and the REST API (`<path>v1`), the web app's files (`<path>assets`) and its page
/// (`<path>` alone), and below the root also `path` without its slash, which palaverd
/// redirects to the page (the page links its files relatively, so it must load from `/chat/`).
/// Nothing else: /healthz, /readyz and /metrics stay inside the cluster, which is why the page
/// is an exact match rather than a prefix of everything.
fn routed_paths(path: &str) -> Vec<(String, PathMatch)> {
    let mut paths =
        vec![(format!("{path}v1"), PathMatch::Prefix), (format!("{path}assets"), PathMatch::Prefix), (path.to_string(), PathMatch::Exact)];
    if let Some(bare) = path.strip_suffix('/').filter(|p| !p.is_empty()) {
        paths.push((bare.to_string(), PathMatch::Exact));
    }
    paths
}

/// The Ingress, when `spec.ingress` is set: [`routed_paths`] of its host to the client Service.
pub fn ingress(cc: &ChatCluster) -> Option<Ingress> {
    let spec = cc.spec.ingress.as_ref()?;
    let names = Names::of(cc);
    let mut annotations = BTreeMap::from([
        ("nginx.ingress.kubernetes.io/proxy-read-timeout".to_string(), NGINX_WEBSOCKET_TIMEOUT_SECONDS.to_string()),
        ("nginx.ingress.kubernetes.io/proxy-send-timeout".into(), NGINX_WEBSOCKET_TIMEOUT_SECONDS.into()),
    ]);
    let tls = spec.tls.as_ref().map(|t| {
        if let Some(issuer) = &t.cluster_issuer {
            annotations.insert(CERT_MANAGER_CLUSTER_ISSUER.into(), issuer.clone());
        }
        if let Some(issuer) = &t.issuer {
            annotations.insert(CERT_MANAGER_ISSUER.into(), issuer.clone());
        }
        // cert-manager stores the certificate in the Secret the Ingress names: name one.
        let secret = t.secret_name.clone().unwrap_or_else(|| names.tls_secret.clone());
        vec![IngressTLS { hosts: Some(vec![spec.host.clone()]), secret_name: Some(secret) }]
    });
    // The user's annotations win over the defaults above.
    annotations.extend(spec.annotations.clone());
    let mut metadata = meta(cc, &names.ingress);
    metadata.annotations = Some(annotations);
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: names.service.clone(),
            port: Some(ServiceBackendPort { name: Some("http".into()), number: None }),
        }),
        ..Default::default()
    };
    let paths = routed_paths(&spec.path)
        .into_iter()
        .map(|(path, m)| HTTPIngressPath {
            path: Some(path),
            path_type: match m {
                PathMatch::Prefix => "Prefix",
                PathMatch::Exact => "Exact",
            }
            .into(),
            backend: backend.clone(),
        })
        .collect();
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: spec.class_name.clone(),
            rules: Some(vec![IngressRule { host: Some(spec.host.clone()), http: Some(HTTPIngressRuleValue { paths }) }]),
            tls,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The headless Service: stable per-pod DNS, including pods not ready yet.
pub fn headless_service(cc: &ChatCluster) -> Service {
    Service {
        metadata: meta(cc, &Names::of(cc).headless),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(cc)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: HTTP_PORT,
                target_port: Some(IntOrString::String("http".into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// At most one gateway pod voluntarily down at a time.
pub fn pdb(cc: &ChatCluster) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(cc, &Names::of(cc).pdb),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector { match_labels: Some(selector_labels(cc)), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The HPA, when `spec.autoscaling` is set.
pub fn hpa(cc: &ChatCluster) -> Option<HorizontalPodAutoscaler> {
    let a = cc.spec.autoscaling.as_ref()?;
    let names = Names::of(cc);
    Some(HorizontalPodAutoscaler {
        metadata: meta(cc, &names.hpa),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: names.deployment,
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(a.target_cpu_utilization_percent),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"), "servicemonitors")
}

pub fn prometheus_rule_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("monitoring.coreos.com", "v1", "PrometheusRule"), "prometheusrules")
}

pub fn http_route_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"), "httproutes")
}

fn dynamic(cc: &ChatCluster, ar: &ApiResource, name: &str, spec: serde_json::Value) -> DynamicObject {
    let mut obj = DynamicObject::new(name, ar).within(&cc.namespace().unwrap_or_default());
    obj.metadata = meta(cc, name);
    obj.data = json!({ "spec": spec });
    obj
}

/// The HTTPRoute, when `spec.gatewayAPI` is set: [`routed_paths`] of its host names to the
/// client Service, like the Ingress, as the matches of one rule.
pub fn http_route(cc: &ChatCluster) -> Option<DynamicObject> {
    let g = cc.spec.gateway_api.as_ref()?;
    let names = Names::of(cc);
    let parents: Vec<serde_json::Value> = g
        .parent_refs
        .iter()
        .map(|p| {
            let mut r = serde_json::Map::from_iter([("name".to_string(), json!(p.name))]);
            if let Some(ns) = &p.namespace {
                r.insert("namespace".into(), json!(ns));
            }
            if let Some(section) = &p.section_name {
                r.insert("sectionName".into(), json!(section));
            }
            serde_json::Value::Object(r)
        })
        .collect();
    let matches: Vec<serde_json::Value> = routed_paths(&g.path)
        .into_iter()
        .map(|(path, m)| {
            let kind = match m {
                PathMatch::Prefix => "PathPrefix",
                PathMatch::Exact => "Exact",
            };
            json!({ "path": { "type": kind, "value": path } })
        })
        .collect();
    let spec = json!({
        "parentRefs": parents,
        "hostnames": g.hostnames,
        "rules": [{
            "matches": matches,
            "backendRefs": [{ "name": names.service, "port": CLIENT_PORT }],
        }],
    });
    let mut route = dynamic(cc, &http_route_resource(), &names.route, spec);
    if !g.annotations.is_empty() {
        route.metadata.annotations = Some(g.annotations.clone());
    }
    Some(route)
}

/// The WebSocket URL clients use (status.url): through the Ingress (`wss://` with TLS), else
/// the HTTPRoute's first host name (`wss://` if its listener terminates TLS), else the
/// LoadBalancer's address once the cloud has assigned one, else the client Service's
/// in-cluster name (also for a LoadBalancer still waiting for its address). A load balancer or
/// the Service reach palaverd directly: no path prefix there. None only for a ChatCluster
/// without a namespace (never one read from the API server).
pub fn url(cc: &ChatCluster, client_service: Option<&ServiceStatus>) -> Option<String> {
    let s = &cc.spec;
    let scheme = |tls: bool| if tls { "wss" } else { "ws" };
    if let Some(i) = &s.ingress {
        return Some(format!("{}://{}{}v1/ws", scheme(i.tls.is_some()), i.host, i.path));
    }
    if let Some(g) = &s.gateway_api {
        if let Some(host) = g.hostnames.first() {
            return Some(format!("{}://{host}{}v1/ws", scheme(g.tls), g.path));
        }
    }
    let load_balanced = s.service.as_ref().is_some_and(|v| v.type_ == ServiceType::LoadBalancer);
    let address = client_service
        .filter(|_| load_balanced)
        .and_then(|st| st.load_balancer.as_ref()?.ingress.as_ref()?.iter().find_map(|i| i.hostname.clone().or(i.ip.clone())));
    if let Some(a) = address {
        // An IPv6 address needs brackets in a URL.
        let host = if a.contains(':') { format!("[{a}]") } else { a };
        return Some(format!("ws://{host}/v1/ws"));
    }
    Some(format!("ws://{}.{}.svc/v1/ws", Names::of(cc).service, cc.namespace()?))
}

/// Scrapes the client Service's pods (the headless Service would scrape them twice).
pub fn service_monitor(cc: &ChatCluster) -> DynamicObject {
    let mut selector = selector_labels(cc);
    selector.insert("palaver.dev/service".into(), "client".into());
    let spec = json!({
        "selector": { "matchLabels": selector },
        "endpoints": [{ "port": "http", "path": "/metrics", "interval": "30s" }],
    });
    dynamic(cc, &service_monitor_resource(), &Names::of(cc).monitor, spec)
}

/// The data-plane alerts, as the chart ships them.
pub fn prometheus_rule(cc: &ChatCluster) -> Result<DynamicObject, Error> {
    let rules: serde_json::Value =
        serde_yaml::from_str(DATAPLANE_RULES).map_err(|e| Error::InvalidSpec(format!("built-in alert rules do not parse: {e}")))?;
    Ok(dynamic(cc, &prometheus_rule_resource(), &Names::of(cc).monitor, json!({ "groups": rules["groups"] })))
}

/// The Grafana dashboard, picked up by Grafana's sidecar through the `grafana_dashboard` label.
pub fn dashboards(cc: &ChatCluster) -> ConfigMap {
    let mut metadata = meta(cc, &Names::of(cc).dashboards);
    metadata.labels.get_or_insert_with(BTreeMap::new).insert("grafana_dashboard".into(), "1".into());
    ConfigMap {
        metadata,
        data: Some(BTreeMap::from([("palaver-dataplane.json".to_string(), DATAPLANE_DASHBOARD.to_string())])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_crds::resources::ChatClusterSpec;

    fn cluster(yaml_spec: &str) -> ChatCluster {
        let spec: ChatClusterSpec = serde_yaml::from_str(yaml_spec).unwrap();
        let mut cc = ChatCluster::new("main", spec);
        cc.metadata.namespace = Some("chat".into());
        cc.metadata.uid = Some("uid-1".into());
        cc
    }

    const SPEC: &str = r#"
image: palaver/palaverd:0.1.0
kafka: { bootstrap: "kafka:9092" }
postgres: { secretRef: { name: pg, key: dsn } }
redis: { secretRef: { name: redis, key: url } }
auth: { issuer: iss, audience: aud, publicKeySecretRef: { name: jwt, key: pub.pem }, algorithm: ES256 }
limits: { maxFrameBytes: 32768 }
"#;

    #[test]
    fn deployment_is_hardened_drains_and_reads_secrets_by_reference() {
        let cc = cluster(SPEC);
        let d = deployment(&cc);
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let ru = spec.strategy.unwrap().rolling_update.unwrap();
        assert_eq!(ru.max_unavailable, Some(IntOrString::Int(0)));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.termination_grace_period_seconds, Some(30));
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(), Some("/readyz"));
        assert_eq!(c.liveness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(), Some("/healthz"));
        assert!(c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap().sleep.is_some());
        let db = c.env.as_ref().unwrap().iter().find(|e| e.name == "PALAVER_DATABASE_URL").unwrap();
        assert!(db.value.is_none(), "the DSN must come from the Secret, not be copied into the spec");
        assert_eq!(db.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name, "pg");
        assert_eq!(d.metadata.owner_references.unwrap()[0].uid, "uid-1");
    }

    #[test]
    fn settings_go_to_the_config_map_and_a_change_rolls_the_pods() {
        let a = cluster(SPEC);
        let cm = config_map(&a).data.unwrap();
        assert_eq!(cm["PALAVER_MAX_FRAME_BYTES"], "32768");
        assert_eq!(cm["PALAVER_JWT_ALG"], "ES256");
        assert_eq!(cm["PALAVER_CONSUMER_GROUP"], "palaver-chat-main");
        let hash = |cc: &ChatCluster| deployment(cc).spec.unwrap().template.metadata.unwrap().annotations.unwrap()[CONFIG_HASH].clone();
        let b = cluster(&SPEC.replace("32768", "65536"));
        assert_eq!(hash(&a), hash(&cluster(SPEC)), "same spec, same hash");
        assert_ne!(hash(&a), hash(&b));
        assert!(!cm.contains_key("PALAVER_PUSH_WEBHOOK_URL"), "no push section: inbox only");
        let push =
            config_map(&cluster(&format!("{SPEC}push: {{ webhookUrl: 'http://push.chat:8080/p', maxAttempts: 3 }}\n"))).data.unwrap();
        assert_eq!(push["PALAVER_PUSH_WEBHOOK_URL"], "http://push.chat:8080/p");
        assert_eq!(push["PALAVER_PUSH_MAX_ATTEMPTS"], "3");
    }

    #[test]
    fn autoscaling_hands_replicas_to_the_hpa() {
        let cc = cluster(&format!("{SPEC}autoscaling: {{ minReplicas: 2, maxReplicas: 8 }}\n"));
        assert_eq!(deployment(&cc).spec.unwrap().replicas, None);
        let h = hpa(&cc).unwrap().spec.unwrap();
        assert_eq!((h.min_replicas, h.max_replicas), (Some(2), 8));
        assert!(hpa(&cluster(SPEC)).is_none());
    }

    #[test]
    fn monitoring_objects_carry_the_shared_files() {
        let cc = cluster(SPEC);
        let rule = prometheus_rule(&cc).unwrap();
        assert!(rule.data["spec"]["groups"].as_array().is_some_and(|g| !g.is_empty()));
        let dash: serde_json::Value = serde_json::from_str(&dashboards(&cc).data.unwrap()["palaver-dataplane.json"]).unwrap();
        assert!(dash["panels"].as_array().is_some_and(|p| !p.is_empty()));
        let sm = service_monitor(&cc);
        assert_eq!(sm.data["spec"]["selector"]["matchLabels"]["palaver.dev/service"], "client");
    }

    /// Whether a proxy with `routes` (path, whether a prefix match) sends `request` to palaverd,
    /// matching prefixes by path element as Ingress `Prefix` and HTTPRoute `PathPrefix` do.
    fn routed(routes: &[(String, bool)], request: &str) -> bool {
        routes.iter().any(|(p, prefix)| request == p || (*prefix && request.starts_with(&format!("{}/", p.trim_end_matches('/')))))
    }

    /// `routes` under `path` reach the API, the web app's page, its files and (below the root)
    /// the redirect to the page, and none of palaverd's health and metrics endpoints, neither
    /// under `path` nor at the root (unprefixed, palaverd serves them too).
    fn assert_routes_the_app_only(routes: &[(String, bool)], path: &str) {
        let mut reached =
            vec![path.to_string(), format!("{path}v1/ws"), format!("{path}v1/channels/c1"), format!("{path}assets/index-1a2b.js")];
        if path != "/" {
            reached.push(path.trim_end_matches('/').to_string());
        }
        for r in reached {
            assert!(routed(routes, &r), "{r} is not routed: {routes:?}");
        }
        for endpoint in ["metrics", "healthz", "readyz"] {
            for r in [format!("{path}{endpoint}"), format!("/{endpoint}")] {
                assert!(!routed(routes, &r), "{r} is routed: {routes:?}");
            }
        }
    }

    fn ingress_routes(cc: &ChatCluster) -> Vec<(String, bool)> {
        let spec = ingress(cc).unwrap().spec.unwrap();
        let paths = &spec.rules.as_ref().unwrap()[0].http.as_ref().unwrap().paths;
        paths.iter().map(|p| (p.path.clone().unwrap(), p.path_type == "Prefix")).collect()
    }

    #[test]
    fn ingress_routes_the_api_and_the_web_app_and_keeps_websockets_open() {
        assert!(ingress(&cluster(SPEC)).is_none(), "no spec.ingress, no Ingress");
        let cc = cluster(&format!(
            "{SPEC}ingress: {{ className: nginx, host: chat.example.com, tls: {{ secretName: chat-cert }}, annotations: {{ example.com/team: chat }} }}\n"
        ));
        let i = ingress(&cc).unwrap();
        assert_eq!(i.metadata.name.as_deref(), Some("main"));
        assert_eq!(i.metadata.owner_references.as_ref().unwrap()[0].uid, "uid-1");
        assert_eq!(i.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"], "palaver-operator");
        let a = i.metadata.annotations.as_ref().unwrap();
        assert_eq!(a["nginx.ingress.kubernetes.io/proxy-read-timeout"], "3600");
        assert_eq!(a["nginx.ingress.kubernetes.io/proxy-send-timeout"], "3600");
        assert_eq!(a["example.com/team"], "chat");
        assert!(!a.keys().any(|k| k.starts_with("cert-manager.io/")), "{a:?}");
        let spec = i.spec.unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let rules = spec.rules.unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].host.as_deref(), Some("chat.example.com"));
        let paths = &rules[0].http.as_ref().unwrap().paths;
        let kinds: Vec<_> = paths.iter().map(|p| (p.path.as_deref().unwrap(), p.path_type.as_str())).collect();
        assert_eq!(kinds, [("/v1", "Prefix"), ("/assets", "Prefix"), ("/", "Exact")], "at the root no redirect");
        assert_routes_the_app_only(&ingress_routes(&cc), "/");
        for p in paths {
            let backend = p.backend.service.as_ref().unwrap();
            assert_eq!(backend.name, Names::of(&cc).service);
            assert_eq!(backend.port.as_ref().unwrap().name.as_deref(), Some("http"));
        }
        let tls = spec.tls.unwrap();
        assert_eq!(tls.len(), 1);
        assert_eq!(tls[0].hosts.as_deref(), Some(&["chat.example.com".to_string()][..]));
        assert_eq!(tls[0].secret_name.as_deref(), Some("chat-cert"));

        // Without TLS: no tls section, no class (the cluster's default).
        let plain = ingress(&cluster(&format!("{SPEC}ingress: {{ host: chat.example.com }}\n"))).unwrap().spec.unwrap();
        assert!(plain.tls.is_none() && plain.ingress_class_name.is_none(), "{plain:?}");
    }

    #[test]
    fn cert_manager_issuers_are_annotations_and_the_user_overrides_the_defaults() {
        let cc = cluster(&format!("{SPEC}ingress: {{ host: chat.example.com, path: /chat/, tls: {{ clusterIssuer: letsencrypt }} }}\n"));
        let i = ingress(&cc).unwrap();
        assert_eq!(i.metadata.annotations.as_ref().unwrap()[CERT_MANAGER_CLUSTER_ISSUER], "letsencrypt");
        let spec = i.spec.unwrap();
        assert_eq!(spec.tls.unwrap()[0].secret_name.as_deref(), Some("main-tls"), "cert-manager's Secret defaults to <cluster>-tls");
        let rules = spec.rules.unwrap();
        let paths = &rules[0].http.as_ref().unwrap().paths;
        let kinds: Vec<_> = paths.iter().map(|p| (p.path.as_deref().unwrap(), p.path_type.as_str())).collect();
        assert_eq!(kinds, [("/chat/v1", "Prefix"), ("/chat/assets", "Prefix"), ("/chat/", "Exact"), ("/chat", "Exact")]);
        assert_routes_the_app_only(&ingress_routes(&cc), "/chat/");

        let cc = cluster(&format!(
            "{SPEC}ingress: {{ host: chat.example.com, tls: {{ issuer: local-ca, secretName: mine }}, \
             annotations: {{ nginx.ingress.kubernetes.io/proxy-read-timeout: '600', cert-manager.io/issuer: other }} }}\n"
        ));
        let i = ingress(&cc).unwrap();
        let a = i.metadata.annotations.unwrap();
        assert_eq!(a["nginx.ingress.kubernetes.io/proxy-read-timeout"], "600", "the user's annotation wins");
        assert_eq!(a["nginx.ingress.kubernetes.io/proxy-send-timeout"], "3600");
        assert_eq!(a[CERT_MANAGER_ISSUER], "other", "even over the issuer's");
        assert!(!a.contains_key(CERT_MANAGER_CLUSTER_ISSUER));
        assert_eq!(i.spec.unwrap().tls.unwrap()[0].secret_name.as_deref(), Some("mine"));
    }

    #[test]
    fn http_route_attaches_to_the_gateways_for_the_host_names() {
        assert!(http_route(&cluster(SPEC)).is_none(), "no spec.gatewayAPI, no HTTPRoute");
        let cc = cluster(&format!(
            "{SPEC}gatewayAPI: {{ parentRefs: [{{ name: public, namespace: gateways, sectionName: https }}, {{ name: internal }}], \
             hostnames: [chat.example.com, chat.example.org], path: /chat/, annotations: {{ example.com/team: chat }} }}\n"
        ));
        let r = http_route(&cc).unwrap();
        assert_eq!(
            (r.types.as_ref().unwrap().api_version.as_str(), r.types.as_ref().unwrap().kind.as_str()),
            ("gateway.networking.k8s.io/v1", "HTTPRoute")
        );
        assert_eq!(r.metadata.name.as_deref(), Some("main"));
        assert_eq!(r.metadata.namespace.as_deref(), Some("chat"));
        assert_eq!(r.metadata.owner_references.as_ref().unwrap()[0].uid, "uid-1");
        assert_eq!(r.metadata.annotations.as_ref().unwrap()["example.com/team"], "chat");
        let spec = &r.data["spec"];
        assert_eq!(
            spec["parentRefs"],
            json!([{ "name": "public", "namespace": "gateways", "sectionName": "https" }, { "name": "internal" }]),
            "unset keys are left out"
        );
        assert_eq!(spec["hostnames"], json!(["chat.example.com", "chat.example.org"]));
        assert_eq!(
            spec["rules"],
            json!([{
                "matches": [
                    { "path": { "type": "PathPrefix", "value": "/chat/v1" } },
                    { "path": { "type": "PathPrefix", "value": "/chat/assets" } },
                    { "path": { "type": "Exact", "value": "/chat/" } },
                    { "path": { "type": "Exact", "value": "/chat" } },
                ],
                "backendRefs": [{ "name": "main", "port": 80 }],
            }])
        );
        assert_routes_the_app_only(&route_matches(&r), "/chat/");
        let plain = http_route(&cluster(&format!("{SPEC}gatewayAPI: {{ parentRefs: [{{ name: gw }}], hostnames: [chat.example.com] }}\n")))
            .unwrap();
        assert!(plain.metadata.annotations.is_none());
        assert_eq!(
            plain.data["spec"]["rules"][0]["matches"],
            json!([
                { "path": { "type": "PathPrefix", "value": "/v1" } },
                { "path": { "type": "PathPrefix", "value": "/assets" } },
                { "path": { "type": "Exact", "value": "/" } },
            ])
        );
        assert_routes_the_app_only(&route_matches(&plain), "/");
    }

    fn route_matches(route: &DynamicObject) -> Vec<(String, bool)> {
        let matches = route.data["spec"]["rules"][0]["matches"].as_array().unwrap();
        matches.iter().map(|m| (m["path"]["value"].as_str().unwrap().to_string(), m["path"]["type"] == "PathPrefix")).collect()
    }

    #[test]
    fn the_client_service_takes_the_asked_type_and_annotations() {
        let svc = |extra: &str| service(&cluster(&format!("{SPEC}{extra}")));
        let default = svc("");
        assert_eq!(default.spec.as_ref().unwrap().type_.as_deref(), Some("ClusterIP"));
        assert!(default.metadata.annotations.is_none());
        let lb = svc(
            "service: { type: LoadBalancer, annotations: { service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout: '3600' }, \
             loadBalancerSourceRanges: [203.0.113.0/24] }\n",
        );
        let spec = lb.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(spec.load_balancer_source_ranges.as_deref(), Some(&["203.0.113.0/24".to_string()][..]));
        assert_eq!(spec.ports.as_ref().unwrap()[0].port, 80);
        assert_eq!(
            lb.metadata.annotations.as_ref().unwrap()["service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout"],
            "3600"
        );
        assert_eq!(lb.metadata.labels.as_ref().unwrap()["palaver.dev/service"], "client");
        let node_port = svc("service: { type: NodePort }\n");
        assert_eq!(node_port.spec.as_ref().unwrap().type_.as_deref(), Some("NodePort"));
        assert!(node_port.spec.unwrap().load_balancer_source_ranges.is_none());
    }

    #[test]
    fn path_prefix_and_http_settings_go_to_the_config_map() {
        let cm = |extra: &str| config_map(&cluster(&format!("{SPEC}{extra}"))).data.unwrap();
        for extra in ["", "ingress: { host: chat.example.com }\n", "ingress: { host: chat.example.com, path: / }\n"] {
            let data = cm(extra);
            assert!(!data.contains_key("PALAVER_PATH_PREFIX"), "{extra}: {data:?}");
            assert!(!data.contains_key("PALAVER_TRUSTED_PROXIES") && !data.contains_key("PALAVER_ALLOWED_ORIGINS"), "{extra}");
        }
        assert_eq!(cm("ingress: { host: chat.example.com, path: /chat/ }\n")["PALAVER_PATH_PREFIX"], "/chat");
        assert_eq!(
            cm("gatewayAPI: { parentRefs: [{ name: gw }], hostnames: [c.example.com], path: /a/b/ }\n")["PALAVER_PATH_PREFIX"],
            "/a/b"
        );
        let data = cm(
            "http: { trustedProxies: [10.0.0.0/8, 192.168.1.1], allowedOrigins: ['https://app.example.com', 'http://localhost:3000'] }\n",
        );
        assert_eq!(data["PALAVER_TRUSTED_PROXIES"], "10.0.0.0/8,192.168.1.1");
        assert_eq!(data["PALAVER_ALLOWED_ORIGINS"], "https://app.example.com,http://localhost:3000");
        assert!(!cm("http: { trustedProxies: [] }\n").contains_key("PALAVER_TRUSTED_PROXIES"));
    }

    #[test]
    fn object_storage_reaches_the_pods_with_its_keys_by_reference_and_a_change_rolls_them() {
        let none = cluster(SPEC);
        assert!(config_map(&none).data.unwrap().keys().all(|k| !k.starts_with("PALAVER_S3_")), "no objectStorage, no S3 settings");
        let env_names = |cc: &ChatCluster| -> Vec<String> {
            deployment(cc).spec.unwrap().template.spec.unwrap().containers[0].env.clone().unwrap().into_iter().map(|e| e.name).collect()
        };
        assert!(env_names(&none).iter().all(|n| !n.starts_with("PALAVER_S3_")));

        const STORE: &str =
            "objectStorage: { endpoint: 'http://minio.storage:9000', bucket: chat-files, credentialsSecret: { name: s3 } }\n";
        let cc = cluster(&format!("{SPEC}{STORE}"));
        let cm = config_map(&cc).data.unwrap();
        assert_eq!(cm["PALAVER_S3_ENDPOINT"], "http://minio.storage:9000");
        assert_eq!(cm["PALAVER_S3_BUCKET"], "chat-files");
        assert_eq!(cm["PALAVER_S3_REGION"], "us-east-1");
        assert_eq!(cm["PALAVER_S3_VIRTUAL_HOSTED"], "false");
        assert!(!cm.contains_key("PALAVER_S3_PUBLIC_ENDPOINT"), "unset: palaverd uses the endpoint");
        let env = deployment(&cc).spec.unwrap().template.spec.unwrap().containers[0].env.clone().unwrap();
        for (name, key) in [("PALAVER_S3_ACCESS_KEY_ID", "access-key-id"), ("PALAVER_S3_SECRET_ACCESS_KEY", "secret-access-key")] {
            let e = env.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("no {name}"));
            assert!(e.value.is_none(), "{name} must come from the Secret");
            let r = e.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
            assert_eq!((r.name.as_str(), r.key.as_str()), ("s3", key));
        }

        let custom = cluster(&format!(
            "{SPEC}objectStorage: {{ endpoint: 'http://minio.storage:9000', publicEndpoint: 'https://files.example.com', \
             bucket: chat-files, region: eu-west-1, virtualHostedStyle: true, \
             credentialsSecret: {{ name: s3, accessKeyIdKey: id, secretAccessKeyKey: secret }} }}\n"
        ));
        let cm = config_map(&custom).data.unwrap();
        assert_eq!(
            (cm["PALAVER_S3_PUBLIC_ENDPOINT"].as_str(), cm["PALAVER_S3_REGION"].as_str(), cm["PALAVER_S3_VIRTUAL_HOSTED"].as_str()),
            ("https://files.example.com", "eu-west-1", "true")
        );
        assert_eq!(object_storage_keys(&custom).into_iter().map(|(_, r)| r.key).collect::<Vec<_>>(), ["id", "secret"]);

        // A private CA: its Secret key mounted read-only as a file, which PALAVER_S3_CA_FILE
        // names; without caSecret neither the volume nor the variable.
        let pod = |cc: &ChatCluster| deployment(cc).spec.unwrap().template.spec.unwrap();
        let ca_volume = |cc: &ChatCluster| pod(cc).volumes.unwrap().into_iter().find(|v| v.name == "s3-ca");
        let ca_mount = |cc: &ChatCluster| pod(cc).containers.remove(0).volume_mounts.unwrap().into_iter().find(|m| m.name == "s3-ca");
        for no_ca in [&none, &cc, &custom] {
            assert!(object_storage_ca(no_ca).is_none());
            assert!(!config_map(no_ca).data.unwrap().contains_key("PALAVER_S3_CA_FILE"));
            assert!(ca_volume(no_ca).is_none() && ca_mount(no_ca).is_none(), "no caSecret, no CA volume");
        }
        let with_ca =
            |ca: &str| cluster(&format!("{SPEC}{}", STORE.replace("{ name: s3 } }", &format!("{{ name: s3 }}, caSecret: {ca} }}"))));
        let ca = with_ca("{ name: s3-ca }");
        assert_eq!(object_storage_ca(&ca), Some(SecretKeyRef { name: "s3-ca".into(), key: "ca.crt".into() }), "the default key");
        let file = config_map(&ca).data.unwrap()["PALAVER_S3_CA_FILE"].clone();
        assert_eq!(file, "/etc/palaver/s3-ca/ca.crt");
        let secret = ca_volume(&ca).expect("the CA volume").secret.unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("s3-ca"));
        let items = secret.items.unwrap();
        assert_eq!(items.iter().map(|i| (i.key.as_str(), i.path.as_str())).collect::<Vec<_>>(), [("ca.crt", "ca.crt")]);
        let mount = ca_mount(&ca).expect("the CA mount");
        assert_eq!((mount.mount_path.as_str(), mount.read_only), ("/etc/palaver/s3-ca", Some(true)));
        assert_eq!(format!("{}/{}", mount.mount_path, items[0].path), file, "PALAVER_S3_CA_FILE is the mounted file");
        assert!(env_names(&ca).iter().all(|n| n != "PALAVER_S3_CA_FILE"), "a path, not a Secret value: in the ConfigMap");
        // Another key of the Secret: the same file in the pod.
        let bundle = with_ca("{ name: s3-ca, key: bundle.pem }");
        let items = ca_volume(&bundle).unwrap().secret.unwrap().items.unwrap();
        assert_eq!(items.iter().map(|i| (i.key.as_str(), i.path.as_str())).collect::<Vec<_>>(), [("bundle.pem", "ca.crt")]);
        assert_eq!(config_map(&bundle).data.unwrap()["PALAVER_S3_CA_FILE"], file);

        // Any change rolls the pods: settings through the ConfigMap's hash, the Secrets' names
        // and keys through the pod template itself.
        let template = |cc: &ChatCluster| serde_json::to_value(deployment(cc).spec.unwrap().template).unwrap();
        assert_ne!(template(&none), template(&cc));
        assert_ne!(template(&cc), template(&cluster(&format!("{SPEC}{}", STORE.replace("chat-files", "other-files")))));
        assert_ne!(template(&cc), template(&cluster(&format!("{SPEC}{}", STORE.replace("name: s3", "name: s3-rotated")))));
        assert_ne!(template(&cc), template(&ca), "adding a CA");
        assert_ne!(template(&ca), template(&with_ca("{ name: s3-ca-2026 }")), "another CA Secret");
        assert_ne!(template(&ca), template(&bundle), "another key");
        assert_eq!(template(&ca), template(&with_ca("{ name: s3-ca, key: ca.crt }")), "the default spelled out");
    }

    #[test]
    fn status_url_prefers_the_ingress_then_the_route_then_the_load_balancer() {
        use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus};
        let lb = |ip: Option<&str>, hostname: Option<&str>| ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: ip.map(Into::into),
                    hostname: hostname.map(Into::into),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        };
        let with_ip = lb(Some("203.0.113.7"), None);
        let url_of = |extra: &str, st: Option<&ServiceStatus>| url(&cluster(&format!("{SPEC}{extra}")), st).unwrap();
        const ROUTE: &str = "gatewayAPI: { parentRefs: [{ name: gw }], hostnames: [r.example.com, s.example.com], path: /chat/ }\n";
        const LB: &str = "service: { type: LoadBalancer }\n";

        assert_eq!(url_of("", None), "ws://main.chat.svc/v1/ws", "in-cluster by default");
        assert_eq!(url_of("", Some(&with_ip)), "ws://main.chat.svc/v1/ws", "a ClusterIP Service has no outside address");
        assert_eq!(url_of(LB, None), "ws://main.chat.svc/v1/ws", "no address assigned yet");
        assert_eq!(url_of(LB, Some(&ServiceStatus::default())), "ws://main.chat.svc/v1/ws");
        assert_eq!(url_of(LB, Some(&with_ip)), "ws://203.0.113.7/v1/ws");
        assert_eq!(url_of(LB, Some(&lb(None, Some("abc.elb.example.com")))), "ws://abc.elb.example.com/v1/ws");
        assert_eq!(url_of(LB, Some(&lb(Some("2001:db8::1"), None))), "ws://[2001:db8::1]/v1/ws");
        assert_eq!(url_of(&format!("{ROUTE}{LB}"), Some(&with_ip)), "wss://r.example.com/chat/v1/ws", "the route before the LB");
        assert_eq!(url_of(&ROUTE.replace("path:", "tls: false, path:"), None), "ws://r.example.com/chat/v1/ws");
        let both = format!("{ROUTE}{LB}ingress: {{ host: chat.example.com, path: /chat/, tls: {{ secretName: s }} }}\n");
        assert_eq!(url_of(&both, Some(&with_ip)), "wss://chat.example.com/chat/v1/ws", "the ingress first");
        assert_eq!(url_of("ingress: { host: chat.example.com }\n", None), "ws://chat.example.com/v1/ws");
    }
}
