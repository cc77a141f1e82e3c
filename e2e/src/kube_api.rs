//! A small in-memory Kubernetes API server for controller tests, served to `kube::Client` as a
//! tower service (no sockets), or over loopback HTTP for a separate process such as the operator
//! binary: the real kube-runtime `Controller`, watcher, finalizer helper, event recorder and
//! leader election run against it unchanged.
//!
//! What it implements, because the controllers depend on it:
//! - any resource path (`/api/v1/...`, `/apis/{group}/{version}/...`), namespaced or not;
//! - get, list (label and `metadata.name` field selectors) and streaming watch from a
//!   resourceVersion (the whole history is kept, so a watch never gets 410 Gone);
//! - create (409 AlreadyExists, generateName), replace (409 on a stale resourceVersion), JSON
//!   patch (a failed `test` is 422, as the finalizer helper expects), merge patch, and apply patch
//!   (create if missing, else merged in: a simplification of server-side apply that keeps what
//!   the applied configuration sets, which is what drift repair needs);
//! - the status subresource (writes to it change only `.status`; writes to the object never
//!   change `.status`);
//! - `metadata.generation` bumped only when something outside metadata and status changes, and
//!   a write that changes nothing is a no-op: no new resourceVersion, no watch event;
//! - finalizer-aware delete (deletionTimestamp first, removal when the last finalizer goes) and
//!   the garbage collector's background cascade along owner references.
//!
//! Tests read what happened through [`ApiServer::resource_version`] (moves only on effective
//! writes), [`ApiServer::calls`] and inject failures with [`ApiServer::fail_when`].

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// One request the server answered (watches included), for assertions.
#[derive(Debug, Clone)]
pub struct Call {
    /// Which client sent it (see [`ApiServer::client_as`]).
    pub client: String,
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    /// An apply that created its object (authorized as `create` too, as the API server does).
    pub applied_create: bool,
}

impl Call {
    /// A request that may change state (watches and reads are not writes).
    pub fn is_write(&self) -> bool {
        self.method != Method::GET
    }

    /// What RBAC must allow for this request: (API group, resource or resource/subresource, verb).
    pub fn permissions(&self) -> Vec<(String, String, &'static str)> {
        let Some(t) = Target::parse(&self.path) else { return Vec::new() };
        let watch = self.query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
        let verb = match (&self.method, t.name.is_some()) {
            (&Method::GET, true) => "get",
            (&Method::GET, false) if watch => "watch",
            (&Method::GET, false) => "list",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, _) => "delete",
            _ => return Vec::new(),
        };
        let resource = match &t.sub {
            Some(sub) => format!("{}/{sub}", t.plural),
            None => t.plural.clone(),
        };
        let mut out = vec![(t.group.clone(), resource.clone(), verb)];
        if self.applied_create {
            out.push((t.group, resource, "create"));
        }
        out
    }
}

type Fault = Box<dyn Fn(&Call) -> Option<u16> + Send + Sync>;
type Reply = Response<BoxBody<Bytes, Infallible>>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    /// `{group}/{plural}`; the version is not part of the identity.
    res: String,
    ns: String,
    name: String,
}

#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    res: String,
    ns: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    uid: u64,
    history: Vec<Change>,
    calls: Vec<Call>,
    fault: Option<Fault>,
}

/// The in-memory API server. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct ApiServer {
    state: Arc<Mutex<State>>,
    changes: broadcast::Sender<Change>,
}

impl Default for ApiServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiServer {
    pub fn new() -> Self {
        Self { state: Arc::default(), changes: broadcast::channel(16_384).0 }
    }

    /// A client of this server whose default namespace is `default`.
    pub fn client(&self) -> kube::Client {
        self.client_as("test")
    }

    /// A client whose requests are recorded as sent by `who`.
    pub fn client_as(&self, who: &str) -> kube::Client {
        let (server, who) = (self.clone(), who.to_string());
        let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
            let (server, who) = (server.clone(), who.clone());
            async move { Ok::<_, Infallible>(server.handle(req, who).await) }
        });
        kube::Client::new(svc, "default")
    }

    /// The latest resourceVersion: it moves on every effective write and on nothing else.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Every request answered so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Answers every request for which `f` returns a status code with that error instead.
    pub fn fail_when(&self, f: impl Fn(&Call) -> Option<u16> + Send + Sync + 'static) {
        self.lock().fault = Some(Box::new(f));
    }

    pub fn clear_faults(&self) {
        self.lock().fault = None;
    }

    /// The stored object, if any (`res` as `{group}/{plural}`, e.g. `apps/deployments`, `/secrets`).
    pub fn object(&self, res: &str, ns: &str, name: &str) -> Option<Value> {
        self.lock().objects.get(&Key { res: res.into(), ns: ns.into(), name: name.into() }).cloned()
    }

    /// Names of the stored objects of one resource in one namespace.
    pub fn names(&self, res: &str, ns: &str) -> Vec<String> {
        self.lock().objects.keys().filter(|k| k.res == res && k.ns == ns).map(|k| k.name.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves this API over HTTP on a free loopback port (for a process such as the operator
    /// binary, given a kubeconfig pointing there); until the runtime ends.
    pub async fn serve_http(&self) -> std::io::Result<std::net::SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.handle(req, "http".into()).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
                });
            }
        });
        Ok(addr)
    }

    async fn handle<B>(&self, req: Request<B>, client: String) -> Reply
    where
        B: http_body::Body,
        B::Error: std::fmt::Display,
    {
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return status(400, "BadRequest", format!("unreadable body: {e}")),
        };
        let call = Call {
            client,
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            content_type: parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string),
            applied_create: false,
        };
        let query: HashMap<String, String> = form_urlencoded::parse(call.query.as_bytes()).into_owned().collect();
        let index = {
            let mut st = self.lock();
            st.calls.push(call.clone());
            if let Some(code) = st.fault.as_ref().and_then(|f| f(&call)) {
                return status(code, "InternalError", format!("injected failure for {} {}", call.method, call.path));
            }
            st.calls.len() - 1
        };
        let Some(t) = Target::parse(&call.path) else {
            return status(404, "NotFound", format!("no such path {}", call.path));
        };
        let body: Option<Value> = if body.is_empty() {
            None
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => Some(v),
                Err(e) => return status(400, "BadRequest", format!("body is not JSON: {e}")),
            }
        };
        let result = match (&parts.method, &t.name) {
            (&Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => return self.watch(&t, &query),
            (&Method::GET, None) => Ok(self.lock().list(&t, &query)),
            (&Method::GET, Some(name)) => self.lock().get(&t.key(name)),
            (&Method::POST, None) => self.create(&t, body.unwrap_or(Value::Null)),
            (&Method::PUT, Some(name)) => self.write(&t, name, |_| Ok(body.clone().unwrap_or(Value::Null)), false).map(|(v, _)| v),
            (&Method::PATCH, Some(name)) => {
                let written = self.patch(&t, name, call.content_type.as_deref().unwrap_or_default(), body.unwrap_or(Value::Null));
                if let Ok((_, true)) = &written {
                    self.lock().calls[index].applied_create = true;
                }
                written.map(|(v, _)| v)
            }
            (&Method::DELETE, Some(name)) => self.delete(&t.key(name)),
            _ => Err((405, "MethodNotAllowed", format!("{} {} is not supported", parts.method, call.path))),
        };
        match result {
            Ok(v) => json_reply(200, &v),
            Err((code, reason, message)) => status(code, reason, message),
        }
    }

    /// JSON patch, or merge patch; an apply patch is merged in too, creating a missing object.
    fn patch(&self, t: &Target, name: &str, content_type: &str, patch: Value) -> Result<(Value, bool), Failure> {
        if !content_type.starts_with("application/json-patch") {
            let apply = content_type.starts_with("application/apply-patch");
            let merge = move |old: &Value| {
                let mut doc = old.clone();
                json_patch::merge(&mut doc, &patch);
                Ok(doc)
            };
            return self.write(t, name, merge, apply);
        }
        let ops: json_patch::Patch = serde_json::from_value(patch).map_err(|e| (400, "BadRequest", format!("not a JSON patch: {e}")))?;
        let apply_ops = move |old: &Value| {
            // As in the API server, `test` against null passes for a missing path (the finalizer
            // helper relies on it when there are no finalizers yet).
            let ops: Vec<_> = ops
                .0
                .into_iter()
                .filter(|op| match op {
                    json_patch::PatchOperation::Test(t) => !(t.value.is_null() && old.pointer(t.path.as_str()).is_none()),
                    _ => true,
                })
                .collect();
            let mut doc = old.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| (422, "Invalid", format!("JSON patch failed: {e}")))?;
            Ok(doc)
        };
        self.write(t, name, apply_ops, false)
    }

    fn create(&self, t: &Target, mut obj: Value) -> Result<Value, Failure> {
        if t.sub.is_some() {
            return Err((405, "MethodNotAllowed", "create on a subresource".into()));
        }
        let mut st = self.lock();
        let name = match obj.pointer("/metadata/name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match obj.pointer("/metadata/generateName").and_then(Value::as_str) {
                Some(prefix) => format!("{prefix}{:05x}", st.uid + 1),
                None => return Err((422, "Invalid", "metadata.name is required".into())),
            },
        };
        let key = t.key(&name);
        if st.objects.contains_key(&key) {
            return Err((409, "AlreadyExists", format!("{} {name:?} already exists", t.plural)));
        }
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
        st.uid += 1;
        let uid = format!("00000000-0000-4000-8000-{:012x}", st.uid);
        let meta = metadata(&mut obj);
        meta.insert("name".into(), json!(name));
        if let Some(ns) = &t.ns {
            meta.insert("namespace".into(), json!(ns));
        }
        meta.insert("uid".into(), json!(uid));
        meta.insert("generation".into(), json!(1));
        meta.insert("creationTimestamp".into(), json!(now()));
        meta.remove("deletionTimestamp");
        Ok(st.commit(key, "ADDED", obj, &self.changes))
    }

    /// Replace or patch: `edit` turns the stored object into the requested one. With
    /// `create_missing` (apply) a missing object is created from `edit({})`. Returns the stored
    /// object and whether it was created.
    fn write(
        &self,
        t: &Target,
        name: &str,
        edit: impl FnOnce(&Value) -> Result<Value, Failure>,
        create_missing: bool,
    ) -> Result<(Value, bool), Failure> {
        let key = t.key(name);
        let mut st = self.lock();
        let Some(old) = st.objects.get(&key).cloned() else {
            drop(st);
            if create_missing && t.sub.is_none() {
                let obj = edit(&json!({}))?;
                return Ok((self.create(t, obj)?, true));
            }
            return Err(not_found(t, name));
        };
        let requested = edit(&old)?;
        if let Some(rv) = requested.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
            if !rv.is_empty() && Some(rv) != old.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
                return Err((
                    409,
                    "Conflict",
                    format!("the object has been modified: {} {name:?} is at a newer resourceVersion", t.plural),
                ));
            }
        }
        let mut next = old.clone();
        if t.sub.as_deref() == Some("status") {
            set_or_remove(&mut next, "status", requested.get("status").cloned());
        } else if t.sub.is_some() {
            return Err((404, "NotFound", format!("subresource {:?} is not supported", t.sub)));
        } else {
            next = requested;
            set_or_remove(&mut next, "status", old.get("status").cloned());
            let keep = ["name", "namespace", "uid", "creationTimestamp", "generation", "deletionTimestamp", "resourceVersion"];
            let old_meta = old.get("metadata").cloned().unwrap_or_default();
            let meta = metadata(&mut next);
            for k in keep {
                match old_meta.get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            if without(&next, &["metadata", "status"]) != without(&old, &["metadata", "status"]) {
                let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
                metadata(&mut next).insert("generation".into(), json!(g + 1));
            }
        }
        if next == old {
            return Ok((old, false));
        }
        let released = next.pointer("/metadata/deletionTimestamp").is_some() && !has_finalizers(&next);
        let stored = st.commit(key.clone(), "MODIFIED", next, &self.changes);
        if released {
            st.remove(&key, &self.changes);
        }
        Ok((stored, false))
    }

    fn delete(&self, key: &Key) -> Result<Value, Failure> {
        self.lock().delete(key, &self.changes)
    }

    fn watch(&self, t: &Target, query: &HashMap<String, String>) -> Reply {
        let since: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
        let selector = Selector::parse(query);
        let (backlog, rx) = {
            let st = self.lock();
            // Subscribed under the lock: nothing committed after the backlog is missed.
            let rx = self.changes.subscribe();
            let backlog: Vec<Change> = if since == 0 {
                st.objects
                    .iter()
                    .filter(|(k, _)| t.matches(&k.res, &k.ns))
                    .map(|(k, o)| Change { rv: st.rv, res: k.res.clone(), ns: k.ns.clone(), kind: "ADDED", object: o.clone() })
                    .collect()
            } else {
                st.history.iter().filter(|c| c.rv > since && t.matches(&c.res, &c.ns)).cloned().collect()
            };
            (backlog, rx)
        };
        let t2 = t.clone();
        // A lagging or closed watch ends; the client watches again from its last version.
        let live = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.ok().map(|c| (c, rx)) })
            .filter(move |c| std::future::ready(t2.matches(&c.res, &c.ns)));
        let frames = futures::stream::iter(backlog).chain(live).filter(move |c| std::future::ready(selector.matches(&c.object))).map(|c| {
            let mut line = serde_json::to_vec(&json!({ "type": c.kind, "object": c.object })).unwrap_or_default();
            line.push(b'\n');
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(line)))
        });
        Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(BodyExt::boxed(StreamBody::new(frames)))
            .unwrap_or_else(|_| status(500, "InternalError", "response".into()))
    }
}

impl State {
    fn list(&self, t: &Target, query: &HashMap<String, String>) -> Value {
        let selector = Selector::parse(query);
        let items: Vec<Value> =
            self.objects.iter().filter(|(k, o)| t.matches(&k.res, &k.ns) && selector.matches(o)).map(|(_, o)| o.clone()).collect();
        let kind =
            items.first().and_then(|o| o.get("kind")).and_then(Value::as_str).map(|k| format!("{k}List")).unwrap_or_else(|| "List".into());
        json!({
            "apiVersion": t.api_version(),
            "kind": kind,
            "metadata": { "resourceVersion": self.rv.to_string() },
            "items": items,
        })
    }

    fn get(&self, key: &Key) -> Result<Value, Failure> {
        self.objects.get(key).cloned().ok_or_else(|| (404, "NotFound", format!("{} {:?} not found", key.res, key.name)))
    }

    /// Stores `obj` at a new resourceVersion and tells the watchers.
    fn commit(&mut self, key: Key, kind: &'static str, obj: Value, tx: &broadcast::Sender<Change>) -> Value {
        let obj = self.record(&key, kind, obj, tx);
        self.objects.insert(key, obj.clone());
        obj
    }

    /// A new resourceVersion for `obj`, and the change in the history and to the watchers.
    fn record(&mut self, key: &Key, kind: &'static str, mut obj: Value, tx: &broadcast::Sender<Change>) -> Value {
        self.rv += 1;
        metadata(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let change = Change { rv: self.rv, res: key.res.clone(), ns: key.ns.clone(), kind, object: obj.clone() };
        self.history.push(change.clone());
        let _ = tx.send(change);
        obj
    }

    /// Deletes as the API server does: an object with finalizers only gets its
    /// deletionTimestamp (once); one without is removed.
    fn delete(&mut self, key: &Key, tx: &broadcast::Sender<Change>) -> Result<Value, Failure> {
        let old = self.get(key)?;
        if !has_finalizers(&old) {
            return Ok(self.remove(key, tx).unwrap_or(old));
        }
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(old);
        }
        let mut next = old;
        metadata(&mut next).insert("deletionTimestamp".into(), json!(now()));
        Ok(self.commit(key.clone(), "MODIFIED", next, tx))
    }

    /// Removes the object, then (as the garbage collector would) deletes what it owns.
    fn remove(&mut self, key: &Key, tx: &broadcast::Sender<Change>) -> Option<Value> {
        let obj = self.objects.remove(key)?;
        let obj = self.record(key, "DELETED", obj, tx);
        let uid = obj.pointer("/metadata/uid").cloned();
        let owned: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                o.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r.get("uid") == uid.as_ref()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in owned {
            let _ = self.delete(&k, tx);
        }
        Some(obj)
    }
}

fn has_finalizers(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty())
}

type Failure = (u16, &'static str, String);

#[derive(Debug, Clone)]
struct Target {
    group: String,
    version: String,
    ns: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

impl Target {
    fn parse(path: &str) -> Option<Self> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segs.as_slice() {
            ["api", v, rest @ ..] => ("", *v, rest),
            ["apis", g, v, rest @ ..] => (*g, *v, rest),
            _ => return None,
        };
        let (ns, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            _ => (None, rest),
        };
        let (plural, name, sub) = match rest {
            [p] => (*p, None, None),
            [p, n] => (*p, Some(n.to_string()), None),
            [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
            _ => return None,
        };
        Some(Self { group: group.into(), version: version.into(), ns, plural: plural.into(), name, sub })
    }

    fn res(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    fn key(&self, name: &str) -> Key {
        Key { res: self.res(), ns: self.ns.clone().unwrap_or_default(), name: name.into() }
    }

    fn matches(&self, res: &str, ns: &str) -> bool {
        res == self.res() && self.ns.as_deref().is_none_or(|want| want == ns)
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Equality-based label selector plus the `metadata.name` / `metadata.namespace` field selectors.
#[derive(Debug, Clone, Default)]
struct Selector {
    labels: Vec<(String, Option<String>, bool)>,
    fields: Vec<(String, String)>,
}

impl Selector {
    fn parse(query: &HashMap<String, String>) -> Self {
        let mut s = Self::default();
        for term in query.get("labelSelector").map(String::as_str).unwrap_or_default().split(',').filter(|t| !t.is_empty()) {
            if let Some((k, v)) = term.split_once("!=") {
                s.labels.push((k.trim().into(), Some(v.trim().into()), false));
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                s.labels.push((k.trim().into(), Some(v.trim().into()), true));
            } else if let Some(k) = term.strip_prefix('!') {
                s.labels.push((k.trim().into(), None, false));
            } else {
                s.labels.push((term.trim().into(), None, true));
            }
        }
        for term in query.get("fieldSelector").map(String::as_str).unwrap_or_default().split(',').filter(|t| !t.is_empty()) {
            if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                s.fields.push((k.trim().into(), v.trim().into()));
            }
        }
        s
    }

    fn matches(&self, obj: &Value) -> bool {
        let label = |k: &str| obj.pointer("/metadata/labels").and_then(|l| l.get(k)).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|(k, v, eq)| match (v, label(k)) {
            (Some(v), got) => (got == Some(v.as_str())) == *eq,
            (None, got) => got.is_some() == *eq,
        });
        let fields_ok = self.fields.iter().all(|(k, v)| {
            let path = format!("/{}", k.replace('.', "/"));
            obj.pointer(&path).and_then(Value::as_str) == Some(v.as_str())
        });
        labels_ok && fields_ok
    }
}

fn metadata(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let o = obj.as_object_mut().expect("an object");
    let meta = o.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("an object")
}

fn set_or_remove(obj: &mut Value, field: &str, value: Option<Value>) {
    if let Some(o) = obj.as_object_mut() {
        match value {
            Some(v) => o.insert(field.into(), v),
            None => o.remove(field),
        };
    }
}

fn without(obj: &Value, fields: &[&str]) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        for f in fields {
            m.remove(*f);
        }
    }
    o
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn not_found(t: &Target, name: &str) -> Failure {
    (404, "NotFound", format!("{} {name:?} not found", t.plural))
}

fn json_reply(code: u16, v: &Value) -> Reply {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(BodyExt::boxed(Full::new(Bytes::from(serde_json::to_vec(v).unwrap_or_default()))))
        .expect("a valid response")
}

fn status(code: u16, reason: &str, message: String) -> Reply {
    json_reply(
        code,
        &json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code }),
    )
}
