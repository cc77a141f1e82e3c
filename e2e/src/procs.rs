//! Child processes: palaverd pods and private Redis / broker / S3 instances. Every child is
//! killed when its handle drops, so a failing test leaves nothing running.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::{eventually, Services, TEST_SECRET};

/// A free loopback port (bound and released; the child binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("addr").port()
}

fn target_dir_bin(name: &str) -> PathBuf {
    // Test binaries live in target/<profile>/deps; the workspace's binaries one level up.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join(name)
}

pub fn palaverd_bin() -> PathBuf {
    let p = std::env::var_os("PALAVER_PALAVERD_BIN").map(PathBuf::from).unwrap_or_else(|| target_dir_bin("palaverd"));
    assert!(p.exists(), "{} not found: build it first (`cargo build --bin palaverd`, or run via `make test`)", p.display());
    p
}

/// The `palaver-operator` binary next to the test binaries (`make test` builds every binary).
pub fn operator_bin() -> PathBuf {
    let p = target_dir_bin("palaver-operator");
    assert!(p.exists(), "{} not found: build it first (`cargo build --bins`, or run via `make test`)", p.display());
    p
}

async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

#[derive(Debug, Clone, Default)]
pub struct PodOptions {
    /// Extra PALAVER_* settings (e.g. limits) for this pod.
    pub env: Vec<(String, String)>,
    /// Use this Redis instead of the shared one.
    pub redis_url: Option<String>,
    pub kafka_brokers: Option<String>,
    /// Run the Kafka consumer group in this pod. Off by default: every pod of every test
    /// joining one group on the shared broker would keep it rebalancing.
    pub consumers: bool,
    /// Append the pod's stdout and stderr here (discarded when `None`).
    pub log: Option<PathBuf>,
}

pub struct Pod {
    pub name: String,
    pub port: u16,
    child: Option<Child>,
    svc: Services,
    opts: PodOptions,
}

impl Pod {
    pub async fn start(name: &str, svc: &Services, opts: PodOptions) -> anyhow::Result<Self> {
        let mut pod = Self { name: name.into(), port: free_port(), child: None, svc: svc.clone(), opts };
        pod.spawn().await?;
        Ok(pod)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(palaverd_bin());
        cmd.arg("serve")
            .env("PALAVER_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("PALAVER_POD_ID", &self.name)
            .env("PALAVER_DATABASE_URL", &self.svc.database_url)
            .env("PALAVER_REDIS_URL", self.opts.redis_url.as_deref().unwrap_or(&self.svc.redis_url))
            .env("PALAVER_KAFKA_BROKERS", self.opts.kafka_brokers.as_deref().unwrap_or(&self.svc.kafka_brokers))
            .env("PALAVER_S3_ENDPOINT", &self.svc.s3_endpoint)
            .env("PALAVER_S3_BUCKET", &self.svc.s3_bucket)
            .env("PALAVER_S3_REGION", &self.svc.s3_region)
            .env("PALAVER_S3_ACCESS_KEY_ID", &self.svc.s3_access_key_id)
            .env("PALAVER_S3_SECRET_ACCESS_KEY", &self.svc.s3_secret_access_key)
            .env("PALAVER_DEV_JWT_SECRET", TEST_SECRET)
            .env("PALAVER_DB_POOL", "8")
            .env("PALAVER_POSITION_CHECK_MS", "300")
            .env("PALAVER_SWEEP_INTERVAL_MS", "300")
            .env("PALAVER_SWEEP_AGE_MS", "1000")
            .env("PALAVER_SYNC_WAIT_MS", "200")
            .env("PALAVER_LOG_FORMAT", "text")
            .env("PALAVER_CONSUMERS", self.opts.consumers.to_string())
            .env("RUST_LOG", std::env::var("PALAVER_TEST_POD_LOG").unwrap_or_else(|_| "warn".into()))
            // Last, so that the test's own settings win over every default above.
            .envs(self.opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .kill_on_drop(true);
        match &self.opts.log {
            Some(path) => {
                let out = std::fs::OpenOptions::new().create(true).append(true).open(path).context("opening the pod log")?;
                cmd.stdout(out.try_clone()?).stderr(out);
            }
            None => drop(cmd.stdout(Stdio::null())),
        }
        self.child = Some(cmd.spawn().context("spawning palaverd")?);
        let port = self.port;
        let name = self.name.clone();
        eventually(Duration::from_secs(20), &format!("pod {name} to listen"), || async move { port_open(port).await.then_some(()) }).await
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1/ws", self.port)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no cleanup, no flush — a crashed pod.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// SIGTERM and wait for the exit (bounded).
    pub async fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let mut c = self.child.take().context("pod not running")?;
        let pid = c.id().context("pid")?;
        Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await?;
        Ok(tokio::time::timeout(Duration::from_secs(20), c.wait()).await.context("pod did not exit within 20 s of SIGTERM")??)
    }

    /// Starts again on the same port after kill/terminate.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await;
        self.spawn().await
    }

    /// Resident memory of the pod process, in KiB (Linux).
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The value of an unlabelled metric (first sample whose name matches exactly).
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        metric_in(&self.metrics().await?, name)
    }

    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(reqwest::get(format!("{}/metrics", self.http_url())).await?.text().await?)
    }
}

/// The value of an unlabelled series (`name value`) on a `/metrics` page, for comparing
/// several series of one scrape.
pub fn metric_in(page: &str, name: &str) -> anyhow::Result<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| anyhow::anyhow!("metric {name} not exported"))
}

/// A service process of the test's own on a loopback port: started by a command factory so
/// it can be restarted the same way, killed on stop and on drop.
struct Service {
    port: u16,
    what: &'static str,
    command: Box<dyn Fn(u16) -> Command + Send + Sync>,
    /// Where the child's stdout and stderr go (appended); discarded when `None`.
    log: Option<PathBuf>,
    /// How long a start may take until the port answers.
    start_timeout: Duration,
    child: Option<Child>,
}

impl Service {
    async fn start(what: &'static str, command: impl Fn(u16) -> Command + Send + Sync + 'static) -> anyhow::Result<Self> {
        let mut s =
            Self { port: free_port(), what, command: Box::new(command), log: None, start_timeout: Duration::from_secs(20), child: None };
        s.spawn().await?;
        Ok(s)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = (self.command)(self.port);
        match &self.log {
            Some(path) => {
                let out = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
                cmd.stdout(out.try_clone()?).stderr(out);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        cmd.kill_on_drop(true);
        self.child = Some(cmd.spawn().with_context(|| format!("spawning {} (is it installed? `make deps`)", self.what))?);
        let port = self.port;
        eventually(self.start_timeout, self.what, || async move { port_open(port).await.then_some(()) }).await.map_err(|e| self.with_log(e))
    }

    /// `e` with the last lines of the child's log, if it has one.
    fn with_log(&self, e: anyhow::Error) -> anyhow::Error {
        let Some(path) = &self.log else { return e };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
        e.context(format!("last lines of {}:\n{}", path.display(), tail.join("\n")))
    }

    async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        self.spawn().await
    }
}

/// A redis-server of the test's own, on its own port, for fault tests.
pub struct PrivateRedis(Service);

impl PrivateRedis {
    pub async fn start() -> anyhow::Result<Self> {
        Ok(Self(
            Service::start("private redis-server", |port| {
                let mut c = Command::new("redis-server");
                c.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"]);
                c
            })
            .await?,
        ))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.0.port)
    }

    pub async fn stop(&mut self) {
        self.0.stop().await
    }

    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.0.restart().await
    }
}

/// An Apache Kafka broker of the test's own: own ports, own data directory, started by
/// `scripts/kafka.sh` exactly as `make up` starts the shared one (KRaft, broker and controller in
/// one JVM, the storage formatted on the first start). Broker outages and restarts must never
/// touch the shared broker. `stop` kills the JVM (a crash); `restart` starts it again on the same
/// ports and data, so the topics survive.
pub struct PrivateBroker {
    service: Service,
    dir: PathBuf,
}

/// A JVM start, and formatting the storage on the first one, take seconds (more on a loaded
/// machine).
const BROKER_START: Duration = Duration::from_secs(90);

impl PrivateBroker {
    pub async fn start() -> anyhow::Result<Self> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh");
        let dir = std::env::temp_dir().join(format!("palaver-kafka-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        // The controller's address is recorded when the storage is formatted: it keeps its
        // port across restarts, like the client listener does.
        let controller_port = free_port();
        let data = dir.clone();
        let command = move |port: u16| {
            let mut c = Command::new("bash");
            c.arg(&script).arg(&data).arg(port.to_string()).arg(controller_port.to_string());
            c
        };
        let mut service = Service {
            port: free_port(),
            what: "private Kafka broker",
            command: Box::new(command),
            log: Some(dir.join("broker.log")),
            start_timeout: BROKER_START,
            child: None,
        };
        service.spawn().await?;
        let mut broker = Self { service, dir };
        broker.wait_ready().await?;
        Ok(broker)
    }

    /// Waits until the broker answers a metadata request naming itself: its port opens a
    /// little before it serves.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let brokers = self.brokers();
        eventually(BROKER_START, "private Kafka broker to serve metadata", || {
            let brokers = brokers.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    use rdkafka::consumer::{BaseConsumer, Consumer};
                    let c: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).create().ok()?;
                    let m = c.fetch_metadata(None, Duration::from_secs(2)).ok()?;
                    (!m.brokers().is_empty()).then_some(())
                })
                .await
                .ok()
                .flatten()
            }
        })
        .await
        .map_err(|e| self.service.with_log(e))
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.service.port)
    }

    /// SIGKILL: the broker is gone at once, as in a crash.
    pub async fn stop(&mut self) {
        self.service.stop().await
    }

    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.service.restart().await?;
        self.wait_ready().await
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        // Kill the JVM before its files go (the child handle would kill it only after this).
        if let Some(c) = self.service.child.as_mut() {
            let _ = c.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The versitygw binary `make deps` builds: `VERSITYGW_BIN`, else `$VERSITYGW_ROOT/bin/versitygw`,
/// the root defaulting to `~/.local/share/palaver/versitygw-<VERSITYGW_VERSION>` (v1.8.0), as in
/// the Makefile.
pub fn versitygw_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VERSITYGW_BIN") {
        return PathBuf::from(p);
    }
    let root = std::env::var_os("VERSITYGW_ROOT").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
        let version = std::env::var("VERSITYGW_VERSION").unwrap_or_else(|_| "v1.8.0".into());
        home.join(".local/share/palaver").join(format!("versitygw-{version}"))
    });
    root.join("bin/versitygw")
}

/// An S3 server of the test's own: versitygw serving a directory of its own (every
/// sub-directory a bucket), on its own loopback port, run as `make up` runs the shared one. For
/// fault tests: `stop` kills it (the object store is gone at once), `restart` starts it again on
/// the same port and data, so the bucket and its objects survive. Bucket, region and credentials
/// are those of [`Services::from_env`], so a pod needs only another `PALAVER_S3_ENDPOINT`:
/// [`PrivateS3::env`] gives every `PALAVER_S3_*` setting for [`PodOptions::env`] (which
/// overrides the shared server's), [`PrivateS3::services`] a [`Services`] pointing here.
pub struct PrivateS3 {
    service: Service,
    dir: PathBuf,
    /// Serving HTTPS with a certificate of its own CA ([`PrivateS3::start_tls`]).
    tls: bool,
    bucket: String,
    region: String,
    access_key_id: String,
    secret_access_key: String,
}

/// versitygw serves within a second; a loaded machine gets some slack.
const S3_START: Duration = Duration::from_secs(20);

impl PrivateS3 {
    /// Starts it, waits until it answers HTTP and creates the bucket.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(false).await
    }

    /// [`PrivateS3::start`] serving HTTPS with a self-signed certificate for 127.0.0.1, which
    /// only clients trusting [`PrivateS3::ca_file`] accept (a store with a private CA).
    pub async fn start_tls() -> anyhow::Result<Self> {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> anyhow::Result<Self> {
        let bin = versitygw_bin();
        anyhow::ensure!(bin.exists(), "{} not found: run `make deps` (it builds versitygw)", bin.display());
        let svc = Services::from_env();
        let dir = std::env::temp_dir().join(format!("palaver-s3-{}", uuid::Uuid::new_v4().simple()));
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        if tls {
            let key = rcgen::KeyPair::generate()?;
            let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
            params.subject_alt_names.push(rcgen::SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
            params.distinguished_name.push(rcgen::DnType::CommonName, "palaver-test-s3");
            let cert = params.self_signed(&key)?;
            std::fs::write(dir.join("tls.crt"), cert.pem())?;
            std::fs::write(dir.join("tls.key"), key.serialize_pem())?;
        }
        let tls_files = tls.then(|| (dir.join("tls.crt"), dir.join("tls.key")));
        let (region, key, secret) = (svc.s3_region.clone(), svc.s3_access_key_id.clone(), svc.s3_secret_access_key.clone());
        let command = move |port: u16| {
            let mut c = Command::new(&bin);
            if let Some((cert, key)) = &tls_files {
                c.arg("--cert").arg(cert).arg("--key").arg(key);
            }
            // Single-account mode: the root account's keys, in the environment, not on the
            // command line (as scripts/up.sh starts it).
            c.arg("--port")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--region")
                .arg(&region)
                .arg("--quiet")
                .arg("posix")
                .arg(&data)
                .env("ROOT_ACCESS_KEY_ID", &key)
                .env("ROOT_SECRET_ACCESS_KEY", &secret);
            c
        };
        let service = Service {
            port: free_port(),
            what: "private S3 server (versitygw)",
            command: Box::new(command),
            log: Some(dir.join("versitygw.log")),
            start_timeout: S3_START,
            child: None,
        };
        // Built before the start, so a failed start still kills the child and removes the files.
        let mut s3 = Self {
            service,
            dir,
            tls,
            bucket: svc.s3_bucket,
            region: svc.s3_region,
            access_key_id: svc.s3_access_key_id,
            secret_access_key: svc.s3_secret_access_key,
        };
        s3.service.spawn().await?;
        s3.wait_ready().await?;
        s3.create_bucket().await?;
        Ok(s3)
    }

    /// Waits until it answers an HTTP request (any status: an unsigned one gets 403); over
    /// TLS, until it accepts connections (the harness' HTTP client has no TLS of its own).
    async fn wait_ready(&self) -> anyhow::Result<()> {
        if self.tls {
            let addr = format!("127.0.0.1:{}", self.service.port);
            return eventually(S3_START, "private S3 server (TLS) to accept connections", || {
                let addr = addr.clone();
                async move { tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ()) }
            })
            .await
            .map_err(|e| self.service.with_log(e));
        }
        let url = format!("{}/", self.endpoint());
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        eventually(S3_START, "private S3 server to answer HTTP", || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.ok().map(|_| ()) }
        })
        .await
        .map_err(|e| self.service.with_log(e))
    }

    /// Creates the bucket with a SigV4-signed PUT (curl --aws-sigv4, as scripts/up.sh does; the
    /// keys go to curl on its stdin), so versitygw records its owner and ACL as for any bucket.
    async fn create_bucket(&self) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        let url = format!("{}/{}", self.endpoint(), self.bucket);
        let mut cmd = Command::new("curl");
        let sigv4 = format!("aws:amz:{}:s3", self.region);
        cmd.args(["-sS", "--max-time", "10", "-K", "-", "--aws-sigv4", &sigv4, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]);
        cmd.args(["-X", "PUT", "-w", "\n%{http_code}"]);
        if self.tls {
            cmd.arg("--cacert").arg(self.ca_file());
        }
        if self.region != "us-east-1" {
            cmd.arg("--data-binary").arg(format!(
                r#"<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>"#,
                self.region
            ));
        }
        cmd.arg(&url).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().context("spawning curl to create the private S3 server's bucket (`make deps` installs curl)")?;
        let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let config = format!("user = \"{}:{}\"\n", quote(&self.access_key_id), quote(&self.secret_access_key));
        let mut stdin = child.stdin.take().context("curl's stdin")?;
        stdin.write_all(config.as_bytes()).await?;
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
            .await
            .context("curl did not finish creating the bucket within 15 s")??;
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        match status.trim() {
            "200" => Ok(()),
            "409" if body.contains("BucketAlreadyOwnedByYou") => Ok(()),
            other => Err(self.service.with_log(anyhow::anyhow!(
                "creating bucket {} on the private S3 server: HTTP {other}: {body} {}",
                self.bucket,
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }

    /// `http://127.0.0.1:<port>` (`https://` with TLS), path-style: objects are at
    /// `<endpoint>/<bucket>/<key>`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.service.port)
    }

    /// The PEM certificate a client must trust to reach a [`PrivateS3::start_tls`] server.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    pub fn port(&self) -> u16 {
        self.service.port
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// Every `PALAVER_S3_*` setting of a pod using this server, for [`PodOptions::env`].
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("PALAVER_S3_ENDPOINT", self.endpoint()),
            ("PALAVER_S3_BUCKET", self.bucket.clone()),
            ("PALAVER_S3_REGION", self.region.clone()),
            ("PALAVER_S3_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("PALAVER_S3_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// `svc` with its object storage replaced by this server.
    pub fn services(&self, svc: &Services) -> Services {
        Services {
            s3_endpoint: self.endpoint(),
            s3_bucket: self.bucket.clone(),
            s3_region: self.region.clone(),
            s3_access_key_id: self.access_key_id.clone(),
            s3_secret_access_key: self.secret_access_key.clone(),
            ..svc.clone()
        }
    }

    /// SIGKILL: the object store is gone at once, as in a crash.
    pub async fn stop(&mut self) {
        self.service.stop().await
    }

    /// Starts it again on the same port and data (the bucket and its objects are still there).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.service.restart().await?;
        self.wait_ready().await
    }
}

impl Drop for PrivateS3 {
    fn drop(&mut self) {
        // Kill the server before its files go (the child handle would kill it only after this).
        if let Some(c) = self.service.child.as_mut() {
            let _ = c.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An nginx of the test's own on a loopback port, proxying to palaverd pods as an ingress
/// controller does (issue 13): HTTP/1.1 to the upstreams, WebSocket upgrades passed through,
/// `Host` kept, `X-Forwarded-For` appended, and a short `proxy_read_timeout` so a test can
/// outlive it. It routes what the operator's Ingress routes at the root path (the API under
/// `/v1/`, the web app's `/assets/` and its page `/`), so /healthz, /readyz and /metrics are
/// nginx's 404 here too. `/stall` goes to an upstream of the test's choosing (one that never
/// answers shows the timeout is in force).
pub struct PrivateNginx {
    service: Service,
    dir: PathBuf,
}

/// What the private nginx proxies to, and how long it waits on a silent upstream.
pub struct NginxConfig {
    pub upstreams: Vec<u16>,
    pub stall_upstream: u16,
    pub read_timeout: Duration,
}

impl PrivateNginx {
    pub async fn start(cfg: NginxConfig) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("palaver-nginx-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let bin = std::env::var_os("NGINX_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"));
        anyhow::ensure!(bin.exists(), "{} not found: run `make deps-test` (it installs nginx-light)", bin.display());
        let conf_dir = dir.clone();
        let mut service = Service {
            port: free_port(),
            what: "private nginx",
            command: Box::new(move |port| {
                let conf = conf_dir.join("nginx.conf");
                if let Err(e) = std::fs::write(&conf, nginx_conf(&conf_dir, port, &cfg)) {
                    eprintln!("writing {}: {e}", conf.display());
                }
                let mut c = Command::new(&bin);
                c.arg("-p").arg(&conf_dir).arg("-c").arg(&conf).args(["-e", "stderr"]);
                c
            }),
            log: Some(dir.join("nginx.log")),
            start_timeout: Duration::from_secs(10),
            child: None,
        };
        service.spawn().await?;
        Ok(Self { service, dir })
    }

    pub fn port(&self) -> u16 {
        self.service.port
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1/ws", self.service.port)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.service.port)
    }
}

impl Drop for PrivateNginx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_conf(dir: &std::path::Path, port: u16, cfg: &NginxConfig) -> String {
    let d = dir.display();
    let servers: String = cfg.upstreams.iter().map(|p| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n")).collect();
    let timeout = cfg.read_timeout.as_millis();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream palaver {{
{servers}    }}
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_read_timeout {timeout}ms;
        proxy_send_timeout {timeout}ms;
        location /v1/ {{ proxy_pass http://palaver; }}
        location /assets/ {{ proxy_pass http://palaver; }}
        location = / {{ proxy_pass http://palaver; }}
        location /stall {{ proxy_pass http://127.0.0.1:{stall}; }}
    }}
}}
"#,
        stall = cfg.stall_upstream,
    )
}
