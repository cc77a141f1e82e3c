//! The `palaver.dev/v1alpha1` resources platform teams apply: `ChatCluster` and `Workspace`.
//!
//! Only shapes and schema-level validation live here (the API server enforces the CEL rules);
//! what the operator does with them lives in palaver-operator. Avoid the CRD-generation traps:
//! no internally/adjacently tagged enums, no untagged unions, no `serde_json::Value`, no
//! flattened maps (a test lints the generated schemas for structural rules).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to one key of a Secret in the resource's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

/// Desired state of a Palaver chat cluster: the palaverd gateway pods and what they connect to.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "palaver.dev",
    version = "v1alpha1",
    kind = "ChatCluster",
    namespaced,
    status = "ChatClusterStatus",
    shortname = "cc",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Workspaces","type":"integer","jsonPath":".status.workspaces"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.ingress) || !has(self.gatewayAPI) || (has(self.ingress.path) ? self.ingress.path : '/') == (has(self.gatewayAPI.path) ? self.gatewayAPI.path : '/')"
).message("ingress.path and gatewayAPI.path must be equal: palaverd serves one path prefix"))]
pub struct ChatClusterSpec {
    /// Container image of palaverd.
    pub image: String,
    /// Gateway pods when autoscaling is off.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,
    /// CPU and memory of each gateway pod.
    #[serde(default)]
    pub resources: Option<ResourceRequirements>,
    /// Horizontal autoscaling of the gateway (an HPA is created when set).
    #[serde(default)]
    pub autoscaling: Option<Autoscaling>,
    /// Kafka (durable event log).
    pub kafka: KafkaSpec,
    /// Postgres DSN (source of truth), from a Secret.
    pub postgres: SecretSource,
    /// Redis URL (pub/sub, cursors, presence), from a Secret.
    pub redis: SecretSource,
    /// Token verification.
    pub auth: AuthSpec,
    /// Client-facing limits (defaults match palaverd's).
    #[serde(default)]
    pub limits: Option<ClusterLimits>,
    /// Monitoring objects to create (each only if its CRD exists in the cluster).
    #[serde(default)]
    pub monitoring: Option<Monitoring>,
    /// Push notifications for members who are offline (unset: notifications are inbox-only).
    #[serde(default)]
    pub push: Option<PushSpec>,
    /// Expose the gateway through an Ingress (networking.k8s.io/v1). It routes `<path>v1` (the
    /// WebSocket and REST API) and the web app (its page `<path>`, its files `<path>assets`);
    /// health and metrics endpoints stay in the cluster.
    #[serde(default)]
    pub ingress: Option<IngressSpec>,
    /// Expose the gateway through a Gateway API HTTPRoute attached to an existing Gateway (only
    /// if the HTTPRoute CRD is installed; otherwise the ChatCluster is Degraded with reason
    /// GatewayAPIUnavailable).
    #[serde(default, rename = "gatewayAPI")]
    pub gateway_api: Option<GatewayApiSpec>,
    /// The client-facing Service (unset: ClusterIP). `type: LoadBalancer` exposes the gateway
    /// without an ingress controller.
    #[serde(default)]
    pub service: Option<ClientServiceSpec>,
    /// How palaverd treats HTTP requests that reach it through proxies and browsers.
    #[serde(default)]
    pub http: Option<HttpSpec>,
    /// S3-compatible object storage holding file attachments (issue 11). Unset: palaverd answers
    /// the file routes with "file storage is not configured".
    #[serde(default)]
    pub object_storage: Option<ObjectStorageSpec>,
}

fn default_root_path() -> String {
    "/".into()
}

fn default_true() -> bool {
    true
}

/// An Ingress in front of the client Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// IngressClass of the controller that serves it (unset: the cluster's default class).
    #[serde(default)]
    pub class_name: Option<String>,
    /// Host name clients connect to, e.g. `chat.example.com` (a leading `*.` for a wildcard).
    #[schemars(length(max = 253), pattern(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"))]
    pub host: String,
    /// Path prefix the gateway is served under, starting and ending with `/`: `/chat/` routes
    /// `/chat/v1`, the web app at `/chat/` (and `/chat`, redirected there) and its files at
    /// `/chat/assets`, and palaverd strips `/chat`. Must equal `gatewayAPI.path` when both are
    /// set.
    #[serde(default = "default_root_path")]
    #[schemars(length(max = 253), pattern(r"^/([A-Za-z0-9._~-]+/)*$"))]
    pub path: String,
    /// TLS termination at the ingress controller (unset: plain `ws://`).
    #[serde(default)]
    pub tls: Option<IngressTls>,
    /// Extra annotations of the Ingress; they override the operator's defaults (ingress-nginx
    /// WebSocket timeouts of one hour, the cert-manager issuer).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The Ingress's certificate: an existing Secret, or one cert-manager issues.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.clusterIssuer) && has(self.issuer))").message("set clusterIssuer or issuer, not both"),
    validation = Rule::new("has(self.secretName) || has(self.clusterIssuer) || has(self.issuer)").message("tls needs secretName or an issuer")
)]
pub struct IngressTls {
    /// The `kubernetes.io/tls` Secret holding the certificate. With an issuer, where cert-manager
    /// stores it (default `<cluster name>-tls`).
    #[serde(default)]
    pub secret_name: Option<String>,
    /// cert-manager ClusterIssuer to issue the certificate (annotation
    /// `cert-manager.io/cluster-issuer`).
    #[serde(default)]
    pub cluster_issuer: Option<String>,
    /// cert-manager Issuer in the ChatCluster's namespace to issue the certificate (annotation
    /// `cert-manager.io/issuer`).
    #[serde(default)]
    pub issuer: Option<String>,
}

/// A Gateway API HTTPRoute in front of the client Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiSpec {
    /// Gateways (or their listeners) the route attaches to.
    #[schemars(length(min = 1, max = 32))]
    pub parent_refs: Vec<ParentRef>,
    /// Host names the route serves; the first is the one status.url shows.
    #[schemars(
        length(min = 1, max = 16),
        inner(length(max = 253), pattern(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"))
    )]
    pub hostnames: Vec<String>,
    /// Path prefix the gateway is served under, starting and ending with `/` (see
    /// `ingress.path`). Must equal `ingress.path` when both are set.
    #[serde(default = "default_root_path")]
    #[schemars(length(max = 253), pattern(r"^/([A-Za-z0-9._~-]+/)*$"))]
    pub path: String,
    /// Whether the Gateway listener the route attaches to terminates TLS. It only decides the
    /// scheme of status.url (`wss://` or `ws://`): TLS itself is configured on the Gateway, not
    /// by the operator.
    #[serde(default = "default_true")]
    pub tls: bool,
    /// Annotations of the HTTPRoute.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A Gateway the HTTPRoute attaches to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// Name of the Gateway.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Gateway (unset: the ChatCluster's); the Gateway must allow routes from
    /// this namespace.
    #[serde(default)]
    #[schemars(length(max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,
    /// Listener of the Gateway to attach to (unset: every listener that accepts the route).
    #[serde(default)]
    #[schemars(length(max = 253), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"))]
    pub section_name: Option<String>,
}

/// The client-facing Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.loadBalancerSourceRanges) || size(self.loadBalancerSourceRanges) == 0 || (has(self.type) && self.type == 'LoadBalancer')"
).message("loadBalancerSourceRanges needs type LoadBalancer"))]
pub struct ClientServiceSpec {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Annotations of the Service, e.g. a cloud load balancer's idle timeout (raise it above
    /// palaverd's 30 s heartbeat).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Client CIDRs a LoadBalancer accepts (unset: any), e.g. `203.0.113.0/24`.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 64)))]
    #[x_kube(validation = Rule::new("self.all(x, isCIDR(x))").message("loadBalancerSourceRanges holds CIDRs"))]
    pub load_balancer_source_ranges: Vec<String>,
}

/// How the client Service is exposed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ServiceType {
    /// In the cluster only (behind an Ingress or HTTPRoute).
    #[default]
    ClusterIP,
    /// A cloud load balancer; status.url shows its address once it has one.
    LoadBalancer,
    /// A port on every node.
    NodePort,
}

/// palaverd behind proxies and in browsers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSpec {
    /// Proxies (CIDRs or addresses, e.g. the ingress controller's pod network) whose
    /// `Forwarded` / `X-Forwarded-For` headers palaverd believes for the client's address.
    /// Unset: none; the connection's peer is the client.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 64)))]
    #[x_kube(validation = Rule::new("self.all(x, isCIDR(x) || isIP(x))").message("trustedProxies holds CIDRs or IP addresses"))]
    pub trusted_proxies: Vec<String>,
    /// Origins whose web pages may open WebSockets besides the gateway's own, as
    /// `scheme://host[:port]`, or `*` for any. Requests without an Origin (not browsers) pass.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 253), pattern(r"^(\*|[a-z][a-z0-9+.-]*://[A-Za-z0-9._:\[\]-]+)$")))]
    pub allowed_origins: Vec<String>,
}

/// The bucket palaverd stores attachments in and presigns client uploads and downloads for
/// (issue 11).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStorageSpec {
    /// URL of the S3 API as the pods reach it, e.g. `http://minio.storage.svc:9000` or
    /// `https://s3.eu-central-1.amazonaws.com`.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(HTTP_URL_RULE).message("endpoint must be an http:// or https:// URL"))]
    pub endpoint: String,
    /// URL of the S3 API as browsers and clients reach it, used in the presigned URLs palaverd
    /// hands out: set it when the pods use an in-cluster address the clients cannot resolve.
    /// Unset: `endpoint`.
    #[serde(default)]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(HTTP_URL_RULE).message("publicEndpoint must be an http:// or https:// URL"))]
    pub public_endpoint: Option<String>,
    /// Bucket of the attachments; it must exist (the operator does not create it). S3's naming
    /// rules: 3-63 of a-z, 0-9, '.' and '-', starting and ending with a letter or digit.
    #[schemars(length(min = 3, max = 63), pattern(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"))]
    pub bucket: String,
    /// Region the requests are signed for (most S3-compatible stores accept the default).
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// Address the bucket as `<bucket>.<endpoint host>` (virtual-hosted style, which AWS S3
    /// prefers) instead of `<endpoint>/<bucket>` (path style, which MinIO, Ceph and Garage
    /// serve without wildcard DNS).
    #[serde(default)]
    pub virtual_hosted_style: bool,
    /// The Secret holding the access key; the pods read it by reference.
    pub credentials_secret: ObjectStorageCredentials,
    /// The Secret holding the CA certificates (a PEM bundle) that palaverd trusts for the store's
    /// TLS certificate besides the system's roots, for an `https://` endpoint whose certificate
    /// is not from a public CA; mounted into the pods as a file. Unset: the system's roots only.
    #[serde(default)]
    pub ca_secret: Option<ObjectStorageCaSecret>,
}

/// A URL with scheme http or https and a host.
const HTTP_URL_RULE: &str = "isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHost() != ''";

fn default_region() -> String {
    "us-east-1".into()
}

/// The Secret of the object store's access key, in the ChatCluster's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStorageCredentials {
    /// Name of the Secret.
    pub name: String,
    /// Key holding the access key id.
    #[serde(default = "default_access_key_id_key")]
    pub access_key_id_key: String,
    /// Key holding the secret access key.
    #[serde(default = "default_secret_access_key_key")]
    pub secret_access_key_key: String,
}

fn default_access_key_id_key() -> String {
    "access-key-id".into()
}

fn default_secret_access_key_key() -> String {
    "secret-access-key".into()
}

/// The Secret of the object store's CA bundle, in the ChatCluster's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStorageCaSecret {
    /// Name of the Secret.
    pub name: String,
    /// Key holding the PEM bundle of CA certificates.
    #[serde(default = "default_ca_key")]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".into()
}

/// Where palaverd sends pushes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSpec {
    /// URL receiving a JSON POST per push, typically an in-cluster push gateway. `http://` only:
    /// palaverd has no TLS client for it.
    #[schemars(pattern(r"^http://[^\s]+$"))]
    pub webhook_url: String,
    /// Attempts before a push goes to the workspace's DLQ topic (palaverd's default: 5).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: Option<i32>,
}

fn default_replicas() -> i32 {
    2
}

/// Autoscaling bounds and target.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"))]
pub struct Autoscaling {
    /// Fewest gateway pods.
    #[schemars(range(min = 1))]
    pub min_replicas: i32,
    /// Most gateway pods.
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Average CPU utilisation the HPA aims for, in percent.
    #[serde(default = "default_cpu_target")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percent: i32,
}

fn default_cpu_target() -> i32 {
    70
}

/// Where Kafka is.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSpec {
    /// Bootstrap servers, `host:port[,host:port…]`.
    #[schemars(length(min = 1))]
    pub bootstrap: String,
    /// Optional Secret key holding Kafka client properties (credentials, TLS), one `name=value`
    /// per line, e.g. `security.protocol=SASL_SSL`.
    #[serde(default)]
    pub secret_ref: Option<SecretKeyRef>,
    /// Replication factor of the topics created for Workspaces (3 is usual in production).
    /// Unset: the broker's `default.replication.factor`. Changing it affects only new topics.
    #[serde(default)]
    #[schemars(range(min = 1, max = 32767))]
    pub replication_factor: Option<i32>,
}

/// A value taken from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretSource {
    /// The Secret key holding the connection string.
    pub secret_ref: SecretKeyRef,
}

/// How client tokens are verified.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Required `iss` claim.
    pub issuer: String,
    /// Required `aud` claim.
    pub audience: String,
    /// Secret key holding the PEM public key that signs tokens.
    pub public_key_secret_ref: SecretKeyRef,
    /// Algorithm of that key.
    #[serde(default)]
    pub algorithm: JwtAlgorithm,
}

/// Token signature algorithm.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum JwtAlgorithm {
    #[default]
    RS256,
    ES256,
}

/// Client-facing limits of the gateway (palaverd's defaults when unset).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterLimits {
    /// Largest WebSocket frame, bytes.
    #[schemars(range(min = 1024, max = 16777216))]
    pub max_frame_bytes: Option<i64>,
    /// Sustained sends per second per connection.
    #[schemars(range(min = 1))]
    pub send_rate_per_second: Option<i32>,
    /// Burst of the per-connection send bucket.
    #[schemars(range(min = 1))]
    pub send_burst: Option<i32>,
}

/// Monitoring switches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Monitoring {
    /// Create a ServiceMonitor for the gateway pods.
    #[serde(default)]
    pub service_monitor: bool,
    /// Create a PrometheusRule with Palaver's alerts.
    #[serde(default)]
    pub prometheus_rule: bool,
    /// Create the Grafana dashboard ConfigMaps.
    #[serde(default)]
    pub dashboards: bool,
}

/// Observed state of a ChatCluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatClusterStatus {
    /// Ready, Progressing and Degraded, with reasons.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The spec generation this status describes.
    pub observed_generation: Option<i64>,
    /// Gateway pods passing readiness.
    pub ready_replicas: Option<i32>,
    /// Workspaces served by this cluster.
    pub workspaces: Option<i32>,
    /// The WebSocket URL clients connect to: through the Ingress, else the HTTPRoute, else the
    /// LoadBalancer's address, else the client Service's in-cluster name.
    #[serde(default)]
    pub url: Option<String>,
}

/// A tenant: its Postgres schema, Kafka topics and registry entry. The resource's name is the
/// workspace name (2-41 of a-z, 0-9, '-', starting with a letter).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "palaver.dev",
    version = "v1alpha1",
    kind = "Workspace",
    namespaced,
    status = "WorkspaceStatus",
    shortname = "ws",
    derive = "PartialEq",
    validation = Rule::new("self.metadata.name.matches('^[a-z][a-z0-9-]{0,39}[a-z0-9]$') && !self.metadata.name.contains('--')").message("workspace names are 2-41 of a-z, 0-9 and '-', start with a letter, and neither end with '-' nor contain '--'"),
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Partitions","type":"integer","jsonPath":".status.partitions"}"#,
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.clusterRef"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSpec {
    /// Name of the ChatCluster (same namespace) serving this workspace. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable"))]
    pub cluster_ref: String,
    /// Name shown to users.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Partitions of the workspace's events topic: may grow, never shrink.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("partitions may only grow"))]
    pub partitions: i32,
    /// How long Kafka keeps the event log, in hours (Postgres keeps history regardless).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub retention_hours: Option<i64>,
    /// Public channels every user joins on first sight.
    #[serde(default)]
    pub default_channels: Vec<String>,
    /// What deleting the Workspace does to its data.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Limits of file attachments in this workspace (issue 11); unset fields keep the pods'
    /// defaults.
    #[serde(default)]
    pub files: Option<WorkspaceFiles>,
}

/// A workspace's file attachment limits, written to its registry row; palaverd enforces them
/// when it presigns an upload and when a message refers to files.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceFiles {
    /// Largest file, in bytes (unset: `PALAVER_FILE_MAX_BYTES`).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_bytes: Option<i64>,
    /// Most files attached to one message (unset: the pod's default).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub max_per_message: Option<i32>,
    /// Media types that may be uploaded: exact (`image/png`), a whole type (`image/*`) or
    /// anything (`*/*`); lowercase. Unset: the pod's default.
    #[serde(default)]
    #[schemars(
        length(min = 1, max = 100),
        inner(length(max = 255), pattern(r"^(\*/\*|[a-z0-9][a-z0-9!#$&^_.+-]*/([a-z0-9][a-z0-9!#$&^_.+-]*|\*))$"))
    )]
    pub allowed_types: Option<Vec<String>>,
}

fn default_partitions() -> i32 {
    3
}

/// What happens to a workspace's data when its resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep schema and topics; only deregister.
    #[default]
    Retain,
    /// Drop schema and topics, then deregister.
    Delete,
}

/// Observed state of a Workspace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    /// Ready, Progressing and Degraded, with reasons.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The spec generation this status describes.
    pub observed_generation: Option<i64>,
    /// Postgres schema holding the workspace.
    pub schema: Option<String>,
    /// Kafka topics of the workspace.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Partitions the events topic has.
    pub partitions: Option<i32>,
    /// Latest applied tenant migration.
    pub migration_version: Option<i64>,
}

/// Every CRD of the group.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![ChatCluster::crd(), Workspace::crd()]
}

/// The committed manifests: (file name under crds/manifests, YAML).
pub fn manifests() -> Vec<(String, String)> {
    crds()
        .into_iter()
        .map(|crd| {
            let file = format!("{}.yaml", crd.spec.names.plural);
            let yaml = format!(
                "# Generated by `palaver-operator crdgen --out crds/manifests`; do not edit.\n{}",
                serde_yaml::to_string(&crd).expect("CRD serializes")
            );
            (file, yaml)
        })
        .collect()
}
