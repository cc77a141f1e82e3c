//! A minimal Palaver client for tests: WebSocket frames as JSON values, plus REST calls.

use std::time::Duration;

use anyhow::{bail, Context};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, Clone)]
pub enum Frame {
    Json(Value),
    /// The server closed the connection (code and reason if a close frame came).
    Closed(Option<(u16, String)>),
}

/// How a test's WebSocket handshake differs from a plain one.
#[derive(Debug, Clone, Default)]
pub struct Upgrade {
    /// Extra request headers (`Origin`, `X-Forwarded-For`, …).
    pub headers: Vec<(String, String)>,
    /// Connect from this loopback address (e.g. 127.0.0.2) instead of the default.
    pub local_ip: Option<std::net::IpAddr>,
}

async fn handshake(url: &str, up: &Upgrade) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    use tokio_tungstenite::tungstenite::Error;
    let mut req = url.into_client_request()?;
    for (k, v) in &up.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| Error::HttpFormat(e.into()))?;
        let value = HeaderValue::from_str(v).map_err(|e| Error::HttpFormat(e.into()))?;
        req.headers_mut().append(name, value);
    }
    let Some(local) = up.local_ip else {
        return tokio_tungstenite::connect_async_with_config(req, Some(crate::ws_config()), true).await.map(|(ws, _)| ws);
    };
    let uri = req.uri().clone();
    let addr = format!("{}:{}", uri.host().unwrap_or("127.0.0.1"), uri.port_u16().unwrap_or(80));
    let remote: std::net::SocketAddr = addr.parse().map_err(|_| Error::Url(tokio_tungstenite::tungstenite::error::UrlError::NoHostName))?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(local, 0))?;
    let tcp = socket.connect(remote).await?;
    tcp.set_nodelay(true)?;
    tokio_tungstenite::client_async_with_config(req, MaybeTlsStream::Plain(tcp), Some(crate::ws_config())).await.map(|(ws, _)| ws)
}

pub struct Client {
    sink: SplitSink<Ws, Message>,
    rx: mpsc::UnboundedReceiver<Frame>,
    pub hello: Value,
    /// JSON frames received while waiting for something else, in arrival order.
    pub log: Vec<Value>,
    next_ref: u64,
}

/// Why a WebSocket upgrade was refused.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: Value,
}

impl Client {
    /// Connects and waits for `hello`.
    pub async fn connect(url: &str, token: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, token, &Upgrade::default()).await
    }

    /// Connects with extra handshake headers and/or from a chosen local address, and waits
    /// for `hello`.
    pub async fn connect_with(url: &str, token: &str, up: &Upgrade) -> anyhow::Result<Self> {
        let ws = tokio::time::timeout(Duration::from_secs(10), handshake(&format!("{url}?token={token}"), up))
            .await
            .context("connect timed out")?
            .map_err(|e| anyhow::anyhow!("upgrade failed: {e}"))?;
        let (sink, mut stream) = ws.split();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(m) = stream.next().await {
                let frame = match m {
                    Ok(Message::Text(t)) => Frame::Json(serde_json::from_str(t.as_str()).unwrap_or(Value::String(t.to_string()))),
                    Ok(Message::Close(c)) => Frame::Closed(c.map(|c| (u16::from(c.code), c.reason.to_string()))),
                    Ok(_) => continue,
                    Err(_) => Frame::Closed(None),
                };
                let closed = matches!(frame, Frame::Closed(_));
                if tx.send(frame).is_err() || closed {
                    return;
                }
            }
            let _ = tx.send(Frame::Closed(None));
        });
        let mut c = Self { sink, rx, hello: Value::Null, log: Vec::new(), next_ref: 1 };
        c.hello = c.expect(Duration::from_secs(10), |v| v["t"] == "hello").await?;
        Ok(c)
    }

    /// Attempts an upgrade that is expected to be refused; returns status and JSON body.
    pub async fn connect_refused(url: &str, token: Option<&str>) -> anyhow::Result<Refused> {
        Self::connect_refused_with(url, token, &Upgrade::default()).await
    }

    /// [`Client::connect_refused`] with extra handshake headers.
    pub async fn connect_refused_with(url: &str, token: Option<&str>, up: &Upgrade) -> anyhow::Result<Refused> {
        let url = match token {
            Some(t) => format!("{url}?token={t}"),
            None => url.to_string(),
        };
        match tokio::time::timeout(Duration::from_secs(10), handshake(&url, up)).await.context("connect timed out")? {
            Ok(_) => bail!("upgrade unexpectedly accepted"),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let body = resp.body().as_ref().map(|b| serde_json::from_slice(b).unwrap_or(Value::Null)).unwrap_or(Value::Null);
                Ok(Refused { status, body })
            }
            Err(e) => bail!("unexpected error: {e}"),
        }
    }

    /// The `hello` entry of a channel (panics if the user is not a member: a test failure).
    pub fn hello_channel(&self, id: &str) -> Value {
        let channels = self.hello["channels"].as_array().expect("hello has channels");
        channels.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("channel {id} not in hello: {channels:?}")).clone()
    }

    pub fn channel_id(&self, name: &str) -> Option<String> {
        self.hello["channels"].as_array()?.iter().find(|c| c["name"] == name).and_then(|c| c["id"].as_str()).map(str::to_string)
    }

    pub async fn send(&mut self, v: Value) -> anyhow::Result<()> {
        self.send_text(v.to_string()).await
    }

    pub async fn send_text(&mut self, s: String) -> anyhow::Result<()> {
        self.sink.send(Message::Text(s.into())).await.context("websocket send")
    }

    /// Closes the connection the way a client leaving does (a close frame), and waits (bounded)
    /// for the server to close its side. Dropping a `Client` alone leaves the socket open.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.sink.send(Message::Close(None)).await.context("websocket close")?;
        self.expect_close(Duration::from_secs(10)).await.map(|_| ())
    }

    /// Sends any WebSocket message, e.g. a raw frame a well-behaved client never sends.
    pub async fn send_ws(&mut self, m: Message) -> anyhow::Result<()> {
        self.sink.send(m).await.context("websocket send")
    }

    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<Frame> {
        tokio::time::timeout(timeout, self.rx.recv()).await.context("no frame in time")?.context("reader ended")
    }

    /// Waits for a JSON frame matching `pred`; other frames go to `log`.
    pub async fn expect(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await? {
                Frame::Json(v) if pred(&v) => return Ok(v),
                Frame::Json(v) => self.log.push(v),
                Frame::Closed(c) => bail!("connection closed while waiting: {c:?}"),
            }
        }
    }

    /// Waits for the close frame, skipping (logging) anything else.
    pub async fn expect_close(&mut self, timeout: Duration) -> anyhow::Result<Option<(u16, String)>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await? {
                Frame::Json(v) => self.log.push(v),
                Frame::Closed(c) => return Ok(c),
            }
        }
    }

    /// Sends a request frame with a fresh `ref` and waits for the reply carrying it.
    pub async fn request(&mut self, mut v: Value) -> anyhow::Result<Value> {
        let r = format!("r{}", self.next_ref);
        self.next_ref += 1;
        v["ref"] = json!(r);
        self.send(v).await?;
        self.expect(Duration::from_secs(10), |f| f["ref"] == r.as_str()).await
    }

    /// Sends a message and returns the ack (or the error frame).
    pub async fn send_message(&mut self, channel: &str, cmid: &str, text: &str) -> anyhow::Result<Value> {
        self.request(json!({"t": "send", "channel": channel, "cmid": cmid, "text": text})).await
    }

    /// Events logged so far for a channel, by seq order of arrival.
    pub fn events(&self, channel: &str) -> Vec<Value> {
        self.log.iter().filter(|v| v["t"] == "event" && v["channel"] == channel).cloned().collect()
    }

    /// Reads frames until an event of `channel` with seq >= `seq` has been logged.
    pub async fn wait_seq(&mut self, channel: &str, seq: i64, timeout: Duration) -> anyhow::Result<()> {
        let reached = |v: &Value| v["t"] == "event" && v["channel"] == channel && v["seq"].as_i64() >= Some(seq);
        if self.log.iter().any(reached) {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await.with_context(|| format!("waiting for {channel} seq {seq}"))? {
                Frame::Json(v) => {
                    let done = reached(&v);
                    self.log.push(v);
                    if done {
                        return Ok(());
                    }
                }
                Frame::Closed(c) => bail!("closed while waiting for {channel} seq {seq}: {c:?}"),
            }
        }
    }
}

/// Checks one client's view of a channel: after dropping repeats of a seq, seqs must be
/// strictly increasing with no holes from `first` to `last`.
pub fn check_in_order(events: &[Value], first: i64, last: i64) -> Result<usize, String> {
    let mut expect = first;
    let mut dups = 0;
    for e in events {
        let s = e["seq"].as_i64().ok_or("event without seq")?;
        if s < expect {
            dups += 1;
            continue;
        }
        if s != expect {
            return Err(format!("expected seq {expect}, got {s}"));
        }
        expect += 1;
    }
    if expect != last + 1 {
        return Err(format!("ended at seq {}, expected through {last}", expect - 1));
    }
    Ok(dups)
}

/// REST calls with one user's token.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Rest {
    pub fn new(base: &str, token: &str) -> Self {
        Self { http: reqwest::Client::new(), base: base.into(), token: token.into() }
    }

    /// The same server and HTTP client (its connection pool), another user's token.
    pub fn with_token(&self, token: &str) -> Self {
        Self { http: self.http.clone(), base: self.base.clone(), token: token.into() }
    }

    /// Sends the request; returns the status and JSON body (Null if it is not JSON), after
    /// checking both against docs/openapi.yaml.
    async fn exchange(&self, method: reqwest::Method, path: &str, req: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let r = req.send().await?;
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        crate::openapi::check(method.as_str(), path, status, &body).map_err(anyhow::Error::msg)?;
        Ok((status, body))
    }

    fn request(&self, method: &reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::GET, path).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    /// Any method, no body.
    pub async fn call(&self, method: reqwest::Method, path: &str) -> anyhow::Result<(u16, Value)> {
        let req = self.request(&method, path);
        self.exchange(method, path, req).await
    }

    /// Any method with a JSON body.
    pub async fn send_json(&self, method: reqwest::Method, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let req = self.request(&method, path).json(&body);
        self.exchange(method, path, req).await
    }

    /// GET with the token in the query string (`?token=`) instead of the header.
    pub async fn get_with_query_token(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let req = self.http.get(format!("{}{path}{sep}token={}", self.base, self.token));
        self.exchange(reqwest::Method::GET, path, req).await
    }

    /// POST of a body as it is (malformed or oversized JSON).
    pub async fn post_raw(&self, path: &str, body: String) -> anyhow::Result<(u16, Value)> {
        let req = self.request(&reqwest::Method::POST, path).header("content-type", "application/json").body(body);
        self.exchange(reqwest::Method::POST, path, req).await
    }
}

/// Writes `request` as it is to a fresh TCP connection and reads until the server closes it or
/// `timeout` passes; returns what was read and whether the server closed the connection.
pub async fn raw_http(addr: &str, request: &[u8], timeout: Duration) -> anyhow::Result<(String, bool)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await?;
    // A server may answer and close before reading all of it (a 413): read what it said.
    let _ = tcp.write_all(request).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return Ok((String::from_utf8_lossy(&out).into_owned(), false)),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok((String::from_utf8_lossy(&out).into_owned(), true)),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}
