//! A real Kubernetes API server for the operator tests, started the way controller-runtime's
//! envtest starts one: a private etcd and kube-apiserver (and, on request, the garbage collector
//! of kube-controller-manager) per test, on free loopback ports, with a self-signed serving
//! certificate, a static token file and RBAC authorization, and the CRDs of crds/manifests
//! installed. Everything is killed and its directory removed when the [`KubeServer`] drops.
//!
//! The binaries come from `make deps-test` (scripts/kube-tools.sh), which builds them once per
//! machine into `KUBE_TOOLS_ROOT` (default `~/.local/share/palaver/kube-<KUBE_VERSION>`).
//!
//! Identities (static tokens):
//! - [`KubeServer::client`]: `admin`, in `system:masters` — the test itself;
//! - [`KubeServer::controller_client`]: `palaver-controller`, also in `system:masters` — controllers
//!   a test runs in-process, so their requests can be told apart in the audit log;
//! - [`KubeServer::operator_client`]: the operator's ServiceAccount `palaver-system/palaver`, with
//!   only what RBAC grants it (install the chart's roles first).
//!
//! The API server writes an audit log of the requests of the last two ([`KubeServer::audit`]): the
//! real authorizer's view of each request (verb, resource, decision).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

use crate::{eventually, free_port};

/// The pinned Kubernetes release (the Makefile's KUBE_VERSION).
pub const KUBE_VERSION: &str = "1.33.13";
/// The pinned Gateway API release (the Makefile's GATEWAY_API_VERSION).
pub const GATEWAY_API_VERSION: &str = "v1.6.3";
/// The user the operator's ServiceAccount token authenticates as.
pub const OPERATOR_USER: &str = "system:serviceaccount:palaver-system:palaver";
/// The user of [`KubeServer::controller_client`].
pub const CONTROLLER_USER: &str = "palaver-controller";

/// How long the API server may take to become ready (2 shared cores, several servers at once).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// What to start besides etcd and the API server.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// Run kube-controller-manager's garbage collector, so owner-reference cascades happen.
    pub garbage_collector: bool,
    /// Namespaces to create.
    pub namespaces: Vec<String>,
}

impl Default for KubeOptions {
    fn default() -> Self {
        Self { garbage_collector: false, namespaces: vec!["chat".into(), "palaver-system".into()] }
    }
}

impl KubeOptions {
    pub fn with_garbage_collector(mut self) -> Self {
        self.garbage_collector = true;
        self
    }
}

/// Directory of the installed tools (`KUBE_TOOLS_ROOT/bin`).
pub fn tools_bin() -> PathBuf {
    let root = std::env::var_os("KUBE_TOOLS_ROOT").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| "/root".into());
        home.join(format!(".local/share/palaver/kube-{KUBE_VERSION}"))
    });
    root.join("bin")
}

/// The Gateway API's HTTPRoute CRD (standard channel) that `make deps-test` puts into
/// `GATEWAY_API_ROOT` (default `~/.local/share/palaver/gateway-api-<GATEWAY_API_VERSION>`).
pub fn gateway_api_httproute_crd() -> anyhow::Result<PathBuf> {
    let root = std::env::var_os("GATEWAY_API_ROOT").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| "/root".into());
        home.join(format!(".local/share/palaver/gateway-api-{GATEWAY_API_VERSION}"))
    });
    let p = root.join("httproutes.yaml");
    if !p.exists() {
        bail!("{} not found: run `make deps-test` to fetch the Gateway API {GATEWAY_API_VERSION} HTTPRoute CRD", p.display());
    }
    Ok(p)
}

fn tool(name: &str) -> anyhow::Result<PathBuf> {
    let p = tools_bin().join(name);
    if !p.exists() {
        bail!("{} not found: run `make deps-test` (scripts/kube-tools.sh) to build the Kubernetes test tools", p.display());
    }
    Ok(p)
}

/// One child process, with its log file for error messages.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, dir: &Path, program: &Path, args: &[String]) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("spawning {}", program.display()))?;
        Ok(Self { name, child, log })
    }

    /// The exit status if it has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// A private etcd + kube-apiserver (+ garbage collector); see the module docs.
pub struct KubeServer {
    dir: PathBuf,
    /// Started in order, stopped in reverse.
    procs: Vec<Proc>,
    url: String,
    ca_der: Vec<u8>,
    admin_token: String,
    controller_token: String,
    operator_token: String,
    admin: Client,
}

impl KubeServer {
    /// etcd, the API server, the CRDs of crds/manifests and `opts.namespaces`; the garbage
    /// collector if asked for. Fails (with the log tail) if any of it is not ready in time.
    pub async fn start(opts: KubeOptions) -> anyhow::Result<Self> {
        let (etcd, apiserver) = (tool("etcd")?, tool("kube-apiserver")?);
        let dir = std::env::temp_dir().join(format!("palaver-kube-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("etcd"))?;
        let token = || uuid::Uuid::new_v4().simple().to_string();
        let (admin_token, controller_token, operator_token) = (token(), token(), token());

        // Serving certificate for 127.0.0.1 (its own CA: the clients trust exactly it) and the
        // service-account signing key the API server insists on.
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
        params.subject_alt_names.push(rcgen::SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        params.distinguished_name.push(rcgen::DnType::CommonName, "palaver-test-apiserver");
        let cert = params.self_signed(&key)?;
        let ca_der = cert.der().to_vec();
        std::fs::write(dir.join("serving.crt"), cert.pem())?;
        write_private(&dir.join("serving.key"), &key.serialize_pem())?;
        let sa = rcgen::KeyPair::generate()?;
        write_private(&dir.join("sa.key"), &sa.serialize_pem())?;
        // The verifying side wants the public key: it does not derive it from a private one.
        std::fs::write(dir.join("sa.pub"), sa.public_key_pem())?;
        write_private(
            &dir.join("tokens.csv"),
            &format!(
                "{admin_token},admin,uid-admin,\"system:masters\"\n\
                 {controller_token},{CONTROLLER_USER},uid-controller,\"system:masters\"\n\
                 {operator_token},{OPERATOR_USER},uid-operator,\"system:serviceaccounts,system:serviceaccounts:palaver-system\"\n"
            ),
        )?;
        std::fs::write(
            dir.join("audit-policy.yaml"),
            format!(
                "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n\
                 - level: Metadata\n  users: [\"{CONTROLLER_USER}\", \"{OPERATOR_USER}\"]\n- level: None\n"
            ),
        )?;

        let (client_port, peer_port, secure_port) = (free_port(), free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let d = |f: &str| dir.join(f).display().to_string();
        let url = format!("https://127.0.0.1:{secure_port}");
        let mut server = Self {
            procs: Vec::new(),
            admin: client_for(&url, &ca_der, &admin_token)?,
            url,
            ca_der,
            admin_token,
            controller_token,
            operator_token,
            dir: dir.clone(),
        };

        let etcd_args = [
            "--name=test".to_string(),
            format!("--data-dir={}", d("etcd")),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=test={peer_url}"),
            // A throwaway store: durability buys nothing here and fsync costs the shared disk.
            "--unsafe-no-fsync".into(),
            "--log-level=warn".into(),
        ];
        server.procs.push(Proc::spawn("etcd", &dir, &etcd, &etcd_args)?);
        let apiserver_args = [
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={secure_port}"),
            format!("--cert-dir={}", d("certs")),
            format!("--tls-cert-file={}", d("serving.crt")),
            format!("--tls-private-key-file={}", d("serving.key")),
            format!("--token-auth-file={}", d("tokens.csv")),
            "--authorization-mode=RBAC".into(),
            // Addresses the API server allocates to Services; nothing is ever sent to them.
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            format!("--service-account-issuer={}", server.url),
            format!("--service-account-key-file={}", d("sa.pub")),
            format!("--service-account-signing-key-file={}", d("sa.key")),
            // No ServiceAccount token controller runs: do not require the default ServiceAccount.
            "--disable-admission-plugins=ServiceAccount".into(),
            // As on a hardened cluster: owning an object with blockOwnerDeletion needs update on
            // the owner's finalizers (the chart grants it; operator_rbac.rs relies on this check).
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement".into(),
            "--allow-privileged=true".into(),
            format!("--audit-policy-file={}", d("audit-policy.yaml")),
            format!("--audit-log-path={}", d("audit.log")),
            "--audit-log-mode=blocking".into(),
            "--profiling=false".into(),
            // The advertised 127.0.0.1 is not a valid endpoint address: no kubernetes Endpoints.
            "--endpoint-reconciler-type=none".into(),
        ];
        server.procs.push(Proc::spawn("kube-apiserver", &dir, &apiserver, &apiserver_args)?);
        server.wait_ready().await?;

        server.install_crds().await?;
        for ns in &opts.namespaces {
            server.create_namespace(ns).await?;
        }
        if opts.garbage_collector {
            server.start_garbage_collector().await?;
        }
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            for p in &mut self.procs {
                if let Some(status) = p.exited() {
                    bail!("{} exited ({status}) before the API server was ready:\n{}", p.name, p.tail(40));
                }
            }
            let req = http::Request::get("/readyz").body(Vec::new())?;
            if let Ok(text) = self.admin.request_text(req).await {
                if text.trim() == "ok" {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let logs: Vec<String> = self.procs.iter().map(|p| format!("--- {} ---\n{}", p.name, p.tail(40))).collect();
                bail!("the API server was not ready after {READY_TIMEOUT:?}:\n{}", logs.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The CRDs of crds/manifests, created and established.
    async fn install_crds(&self) -> anyhow::Result<()> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/manifests");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        paths.sort();
        for p in paths.iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")) {
            let crd: CustomResourceDefinition = serde_yaml::from_str(&std::fs::read_to_string(p)?)?;
            self.install_crd(&crd).await?;
        }
        Ok(())
    }

    /// Creates `crd` and waits until it is established (served).
    pub async fn install_crd(&self, crd: &CustomResourceDefinition) -> anyhow::Result<()> {
        let api = Api::<CustomResourceDefinition>::all(self.admin.clone());
        let name = crd.name_any();
        api.create(&PostParams::default(), crd).await.with_context(|| format!("creating CRD {name}"))?;
        self.wait_established(&name).await
    }

    /// Applies (server-side) the CRD of a YAML file as it is, such as a project's published CRD,
    /// and waits until it is established. Sent untyped, so no field of it is lost on the way.
    pub async fn install_crd_file(&self, path: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let crd: Value = serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let name = crd["metadata"]["name"].as_str().with_context(|| format!("{}: no metadata.name", path.display()))?.to_string();
        let api: Api<DynamicObject> = Api::all_with(self.admin.clone(), &ApiResource::erase::<CustomResourceDefinition>(&()));
        api.patch(&name, &PatchParams::apply("palaver-test").force(), &Patch::Apply(&crd))
            .await
            .with_context(|| format!("applying CRD {name} from {}", path.display()))?;
        self.wait_established(&name).await
    }

    async fn wait_established(&self, name: &str) -> anyhow::Result<()> {
        let api = Api::<CustomResourceDefinition>::all(self.admin.clone());
        eventually(Duration::from_secs(30), &format!("CRD {name} established"), || async {
            let crd = api.get(name).await.ok()?;
            let conds = crd.status?.conditions?;
            conds.iter().any(|c| c.type_ == "Established" && c.status == "True").then_some(())
        })
        .await
    }

    /// A minimal CRD of `plural.group` (any content accepted), such as the Prometheus
    /// operator's, whose presence the ChatCluster controller checks.
    pub async fn install_schemaless_crd(&self, group: &str, plural: &str, kind: &str) -> anyhow::Result<()> {
        let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": { "name": format!("{plural}.{group}") },
            "spec": { "group": group, "scope": "Namespaced",
                      "names": { "plural": plural, "kind": kind, "singular": kind.to_lowercase(), "listKind": format!("{kind}List") },
                      "versions": [{ "name": "v1", "served": true, "storage": true,
                                     "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } }] }
        }))?;
        self.install_crd(&crd).await
    }

    pub async fn create_namespace(&self, name: &str) -> anyhow::Result<()> {
        let ns = Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() };
        match Api::<Namespace>::all(self.admin.clone()).create(&PostParams::default(), &ns).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e).with_context(|| format!("creating namespace {name}")),
        }
    }

    /// kube-controller-manager running only its garbage collector. Started after the CRDs are
    /// in, so its first discovery already sees them; ready once it has synced its informers.
    async fn start_garbage_collector(&mut self) -> anyhow::Result<()> {
        let kcm = tool("kube-controller-manager")?;
        let kubeconfig = self.dir.join("admin.kubeconfig");
        self.write_kubeconfig(&kubeconfig, &self.admin_token.clone())?;
        let args = [
            format!("--kubeconfig={}", kubeconfig.display()),
            "--controllers=garbagecollector".into(),
            "--leader-elect=false".into(),
            // Serves nothing: the tests watch its effects, not its endpoints.
            "--secure-port=0".into(),
            "--concurrent-gc-syncs=5".into(),
            "--v=2".into(),
        ];
        self.procs.push(Proc::spawn("kube-controller-manager", &self.dir, &kcm, &args)?);
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let p = self.procs.last_mut().expect("just pushed");
            if let Some(status) = p.exited() {
                bail!("kube-controller-manager exited ({status}):\n{}", p.tail(40));
            }
            if p.tail(100_000).contains("all resource monitors have synced") {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("the garbage collector did not sync within {READY_TIMEOUT:?}:\n{}", p.tail(40));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn client_with(&self, token: &str) -> anyhow::Result<Client> {
        client_for(&self.url, &self.ca_der, token)
    }

    /// The test's own client (`admin`, system:masters).
    pub fn client(&self) -> Client {
        self.admin.clone()
    }

    /// For controllers run in-process: system:masters, recorded in the audit log.
    pub fn controller_client(&self) -> Client {
        self.client_with(&self.controller_token).expect("a client config")
    }

    /// The operator's ServiceAccount: only what RBAC grants it.
    pub fn operator_client(&self) -> Client {
        self.client_with(&self.operator_token).expect("a client config")
    }

    /// A path for a file of the test's inside this server's directory (removed with it).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes a kubeconfig for this server authenticating with `token` (for kubectl, or a
    /// process such as the operator binary).
    pub fn write_kubeconfig(&self, path: &Path, token: &str) -> anyhow::Result<()> {
        let ca = self.dir.join("serving.crt");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
             users:\n- name: test\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n\
             current-context: test\n",
            self.url,
            ca.display()
        );
        write_private(path, &text)
    }

    /// A kubeconfig of the admin identity, in the server's directory.
    pub fn admin_kubeconfig(&self) -> anyhow::Result<PathBuf> {
        let p = self.dir.join("admin.kubeconfig");
        self.write_kubeconfig(&p, &self.admin_token)?;
        Ok(p)
    }

    /// A kubeconfig of the operator's ServiceAccount.
    pub fn operator_kubeconfig(&self) -> anyhow::Result<PathBuf> {
        let p = self.dir.join("operator.kubeconfig");
        self.write_kubeconfig(&p, &self.operator_token)?;
        Ok(p)
    }

    /// `kubectl` of the pinned release, as admin of this server; run it with
    /// [`KubeServer::kubectl_output`] or as a Command.
    pub fn kubectl(&self) -> anyhow::Result<Command> {
        let mut cmd = Command::new(tool("kubectl")?);
        cmd.env("KUBECONFIG", self.admin_kubeconfig()?).env_remove("KUBECTL_EXTERNAL_DIFF").stdin(Stdio::null());
        Ok(cmd)
    }

    /// Runs kubectl with `args` (bounded: 60 s); returns (success, stdout, stderr).
    pub async fn kubectl_output(&self, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
        let mut cmd = tokio::process::Command::from(self.kubectl()?);
        cmd.args(args).kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.context("kubectl took over 60 s")??;
        Ok((out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned()))
    }

    /// Audit events of `user` so far, one JSON object per request (the first stage logged: a
    /// watch is logged when its response starts, everything else when it completes), with
    /// `verb`, `objectRef` (`apiGroup`, `resource`, `subresource`, `namespace`, `name`),
    /// `responseStatus.code` and the authorizer's decision in `annotations`.
    pub fn audit(&self, user: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.join("audit.log")).unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["user"]["username"] == user)
            .filter(|e| seen.insert(e["auditID"].as_str().unwrap_or_default().to_string()))
            .collect()
    }

    /// The audited requests of `user` that may change state.
    pub fn audited_writes(&self, user: &str) -> Vec<Value> {
        self.audit(user).into_iter().filter(|e| !matches!(e["verb"].as_str(), Some("get" | "list" | "watch"))).collect()
    }

    /// `kind/name -> resourceVersion` of every object of `resources` in `ns` (as
    /// `group/version/plural`; `""` group for core): moves exactly when one of them is written.
    pub async fn versions(&self, ns: &str, resources: &[&str]) -> anyhow::Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for r in resources {
            let ar = api_resource(r);
            let api: Api<DynamicObject> = Api::namespaced_with(self.admin.clone(), ns, &ar);
            match api.list(&ListParams::default()).await {
                Ok(list) => {
                    for o in list.items {
                        out.insert(format!("{}/{}", ar.plural, o.name_any()), o.resource_version().unwrap_or_default());
                    }
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e).with_context(|| format!("listing {r}")),
            }
        }
        Ok(out)
    }

    /// Names of the objects of `resource` (`group/version/plural`) in `ns`, sorted.
    pub async fn names(&self, ns: &str, resource: &str) -> Vec<String> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.admin.clone(), ns, &api_resource(resource));
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                let mut names: Vec<String> = list.items.iter().map(|o| o.name_any()).collect();
                names.sort();
                names
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Vec::new(),
            Err(e) => panic!("listing {resource}: {e}"),
        }
    }

    /// The object as JSON, if it exists.
    pub async fn object(&self, ns: &str, resource: &str, name: &str) -> Option<Value> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.admin.clone(), ns, &api_resource(resource));
        api.get_opt(name).await.expect("a get").map(|o| serde_json::to_value(o).expect("JSON"))
    }
}

/// The resources the operator tests look at, for [`KubeServer::versions`].
pub const OPERATOR_RESOURCES: [&str; 13] = [
    "apps/v1/deployments",
    "/v1/services",
    "/v1/configmaps",
    "/v1/secrets",
    "policy/v1/poddisruptionbudgets",
    "autoscaling/v2/horizontalpodautoscalers",
    "events.k8s.io/v1/events",
    "palaver.dev/v1alpha1/chatclusters",
    "palaver.dev/v1alpha1/workspaces",
    "monitoring.coreos.com/v1/servicemonitors",
    "monitoring.coreos.com/v1/prometheusrules",
    "networking.k8s.io/v1/ingresses",
    "gateway.networking.k8s.io/v1/httproutes",
];

fn api_resource(r: &str) -> ApiResource {
    let mut it = r.rsplitn(3, '/');
    let (plural, version, group) = (it.next().unwrap_or_default(), it.next().unwrap_or_default(), it.next().unwrap_or_default());
    let api_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    ApiResource { group: group.into(), version: version.into(), api_version, kind: String::new(), plural: plural.into() }
}

/// A client of the server at `url` trusting only its certificate `ca_der`, sending `token`.
fn client_for(url: &str, ca_der: &[u8], token: &str) -> anyhow::Result<Client> {
    let mut config = kube::Config::new(url.parse()?);
    config.root_cert = Some(vec![ca_der.to_vec()]);
    config.auth_info.token = Some(token.to_string().into());
    config.default_namespace = "default".into();
    // Watches idle longer than this are re-established by the watcher (they time out server-side
    // after 5-10 minutes anyway).
    config.read_timeout = Some(Duration::from_secs(300));
    Ok(Client::try_from(config)?)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

impl Drop for KubeServer {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for p in self.procs.iter_mut().rev() {
            if panicking {
                eprintln!("--- last lines of {} ({}) ---\n{}", p.name, p.log.display(), p.tail(25));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
