//! `GET /v1/ws`: one task per connection — hello, sync/replay, sends, cursors, live events.
//!
//! Per channel the connection remembers the highest seq it has written (`sent`); the fan-out
//! only hands it events at or above the channel position read when it attached, and replay
//! covers everything from the client's position up to a Postgres read made after attaching, so
//! the two overlap and never leave a hole. Events at or below `sent` are dropped here, which
//! makes the overlap invisible to the client.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::forwarded::ClientIp;
use super::origin::OriginChecked;
use super::{Auth, Shared, TokenBucket};
use crate::auth::Principal;
use crate::domain::messages::{count_send, validate_send, ChangeResult, Send};
use crate::domain::presence::validate_users;
use crate::domain::Committed;
use crate::error::ApiError;
use crate::fanout::{ConnHandle, Outbound, Target};
use crate::ids::{ChannelId, MessageId};
use crate::metrics::{self, TypeLabel};
use crate::protocol::{close, parse_client_frame, ClientFrame, ClientStatus, HelloChannel, ServerFrame};
use crate::store::{Appended, Change, MyChannel};

/// A socket write that takes longer than this means the peer is gone or stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const REPLAY_PAGE: i64 = 500;
const READ_BUFFER: usize = 4096;
/// Most queued frames written before one flush.
const OUT_BATCH: usize = 64;
/// How long a connection trusts the member count it read for typing's size cut-off.
const MEMBER_COUNT_TTL: Duration = Duration::from_secs(60);
/// Unread notifications sent as frames after the first sync (the rest: REST).
const INBOX_ON_CONNECT: i64 = 50;

/// The origin check comes before authentication: a page of another site learns nothing, not
/// even whether its token is valid.
pub async fn upgrade(
    State(st): State<Shared>,
    _origin: OriginChecked,
    ClientIp(client_ip): ClientIp,
    Auth(p): Auth,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        // Not a WebSocket handshake: the documented JSON body, with the status HTTP gives it
        // (400, 405, 426).
        Err(e) => return ApiError::bad_request(e.body_text()).with_status(e.status()).into_response(),
    };
    let max = st.cfg.limits.max_frame_bytes;
    // tungstenite zero-fills its whole read buffer before every socket read (128 KiB by
    // default): with chat-sized frames that memset was ~9% of CPU under load. Larger frames
    // still assemble across reads.
    ws.max_message_size(max).max_frame_size(max).read_buffer_size(READ_BUFFER).on_upgrade(move |socket| async move {
        metrics::global().connections.inc();
        let mut conn = Conn::new(st, p, socket);
        let client_ip = client_ip.map(|ip| ip.to_string()).unwrap_or_default();
        let (workspace, user, session) = (conn.p.workspace.to_string(), conn.p.user.clone(), conn.session.clone());
        tracing::info!(%workspace, %user, %session, %client_ip, "websocket session opened");
        let reason = conn.run().await;
        let code = match &reason {
            End::ClientClosed => "client".to_string(),
            End::Close(code, _) => code.to_string(),
            End::Broken => "broken".to_string(),
        };
        conn.finish(reason).await;
        tracing::info!(%workspace, %user, %session, %client_ip, close = %code, "websocket session closed");
        metrics::global().connections.dec();
    })
}

/// A channel's entry in `hello` (and in `joined`).
fn hello_channel(r: MyChannel) -> HelloChannel {
    HelloChannel {
        id: r.id,
        name: r.name,
        kind: r.kind,
        last_seq: r.last_seq,
        read_seq: r.read_seq,
        unread: r.unread,
        mentions: r.mentions,
    }
}

/// How a failed read ends the connection: oversized frames and invalid UTF-8 get the close
/// codes RFC 6455 gives them (1009, 1007); anything else means the transport is gone.
fn read_error(e: axum::Error) -> End {
    use tungstenite::error::Error as WsError;
    match e.into_inner().downcast::<WsError>().map(|e| *e) {
        Ok(WsError::Capacity(_)) => {
            metrics::global().errors.get_or_create(&metrics::CodeLabel { code: "too_large" }).inc();
            End::Close(close::TOO_BIG, "frame exceeds the frame size limit")
        }
        Ok(WsError::Utf8(_)) => {
            metrics::global().errors.get_or_create(&metrics::CodeLabel { code: "bad_request" }).inc();
            End::Close(close::INVALID_PAYLOAD, "text frame is not valid UTF-8")
        }
        other => {
            tracing::debug!(error = ?other, "websocket read error");
            End::Broken
        }
    }
}

fn slow_close() -> End {
    metrics::global().slow_consumer_closes.inc();
    End::Close(close::SLOW_CONSUMER, "too slow to keep up; reconnect and resume")
}

/// How long the close frame may take: a slow consumer's socket is full, so it gets longer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A send in flight: its `ref`, when its frame came, and its result once committed.
type SendDone = (Option<Value>, Instant, Result<Committed<Appended>, ApiError>);

/// Why a connection ended, and the close frame it gets (if any can still be sent).
enum End {
    ClientClosed,
    Close(u16, &'static str),
    Broken,
}

struct ChannelState {
    /// Highest seq written to this socket.
    sent: i64,
    /// Delivered cursor known at hello (implicit sync starts here).
    delivered: i64,
    attached: bool,
    /// The channel's member count and when it was read (typing's size cut-off).
    members: Option<(i64, Instant)>,
}

struct Conn {
    st: Shared,
    p: Principal,
    handle: ConnHandle,
    rx: mpsc::Receiver<Outbound>,
    sink: SplitSink<WebSocket, Message>,
    stream: SplitStream<WebSocket>,
    channels: HashMap<String, ChannelState>,
    synced: bool,
    /// While set, writes are queued in the socket's buffer and flushed by the caller.
    batching: bool,
    bucket: TokenBucket,
    session: String,
    /// Presence: the client said it is away; the last frame other than `ping`; whether the
    /// connection counts as away now; whose presence it follows.
    client_away: bool,
    last_activity: Instant,
    away: bool,
    presence_subs: HashSet<String>,
    /// Read receipts held back by the throttle: the latest seq per channel, sent at the next
    /// receipts tick.
    pending_receipts: HashMap<String, i64>,
    /// Sends submitted and not yet answered, at most `limits.send_window` (issue 12).
    in_flight: FuturesUnordered<BoxFuture<'static, SendDone>>,
}

impl Conn {
    fn new(st: Shared, p: Principal, socket: WebSocket) -> Self {
        let (tx, rx) = mpsc::channel(st.cfg.limits.outbound_queue);
        let id = st.next_conn.fetch_add(1, Ordering::Relaxed);
        let (sink, stream) = socket.split();
        let bucket = TokenBucket::new("send", st.cfg.limits.send_rate, st.cfg.limits.send_burst);
        let session = crate::store::new_id("s");
        Self {
            st,
            p,
            handle: ConnHandle { id, tx, slow: CancellationToken::new() },
            rx,
            sink,
            stream,
            channels: HashMap::new(),
            synced: false,
            batching: false,
            bucket,
            session,
            client_away: false,
            last_activity: Instant::now(),
            away: false,
            presence_subs: HashSet::new(),
            pending_receipts: HashMap::new(),
            in_flight: FuturesUnordered::new(),
        }
    }

    async fn run(&mut self) -> End {
        if let Err(end) = self.hello().await {
            return end;
        }
        let sync_deadline = tokio::time::Instant::now() + Duration::from_millis(self.st.cfg.timing.sync_wait_ms);
        let idle = Duration::from_millis(self.st.cfg.timing.heartbeat_ms * 2);
        let mut last_heard = tokio::time::Instant::now();
        let shutdown = self.st.shutdown.clone();
        let slow = self.handle.slow.clone();
        let away_after = Duration::from_millis(self.st.cfg.timing.away_after_ms);
        // Often enough to notice inactivity within half the away time.
        let mut receipts = tokio::time::interval(crate::domain::receipts::RECEIPT_INTERVAL);
        let mut presence = tokio::time::interval(crate::presence::REFRESH.min((away_after / 2).max(Duration::from_millis(100))));
        // Each send in flight comes back as an event in this connection's own queue too: a
        // window larger than half the queue would let a pipelining client that reads
        // everything overflow it and be closed as slow.
        let limits = &self.st.cfg.limits;
        let window = limits.send_window.min(limits.outbound_queue / 2).max(1);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return End::Close(close::GOING_AWAY, "server shutting down; reconnect and resume"),
                _ = slow.cancelled() => return slow_close(),
                _ = tokio::time::sleep_until(last_heard + idle) => return End::Close(1000, "idle: no frame within two heartbeats"),
                _ = receipts.tick(), if !self.pending_receipts.is_empty() => self.flush_receipts().await,
                _ = presence.tick() => {
                    self.away = self.client_away || self.last_activity.elapsed() >= away_after;
                    self.st.presence.touch(&self.p.workspace, &self.p.user, self.handle.id, self.away).await;
                }
                _ = tokio::time::sleep_until(sync_deadline), if !self.synced => {
                    if let Err(end) = self.sync(HashMap::new()).await { return end; }
                }
                // Deliveries before new requests: a client that pipelines sends must not starve
                // its own outbound queue (it would be closed as slow while reading fine), and
                // its sends wait while its events go out, which is the backpressure we want.
                out = self.rx.recv() => {
                    let Some(out) = out else { return End::Broken };
                    if let Err(end) = self.on_outbound_batch(out).await { return end; }
                }
                Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    if let Err(end) = self.on_send_done(done).await { return end; }
                }
                // A full send window stops reading: the client's further frames wait in the
                // socket, which is the per-connection backpressure (docs/protocol.md).
                incoming = self.stream.next(), if self.in_flight.len() < window => {
                    last_heard = tokio::time::Instant::now();
                    match incoming {
                        None | Some(Ok(Message::Close(_))) => return End::ClientClosed,
                        Some(Ok(Message::Text(text))) => {
                            if let Err(end) = self.on_text(&text).await { return end; }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            if let Err(end) = self.send_error(None, ApiError::bad_request("binary frames are not supported; send JSON text")).await { return end; }
                        }
                        Some(Ok(_)) => {} // ping/pong: answered by the WebSocket layer
                        Some(Err(e)) => return read_error(e),
                    }
                }
            }
        }
    }

    async fn finish(&mut self, end: End) {
        // Sends still committing are stored whatever happens to the socket: publish them when
        // they are (the client's retry with the same cmid is answered with them).
        let mut in_flight = std::mem::take(&mut self.in_flight);
        if !in_flight.is_empty() {
            tokio::spawn(async move {
                while let Some((_, _, r)) = in_flight.next().await {
                    if let Ok(sent) = r {
                        sent.publish().await;
                    }
                }
            });
        }
        self.st.presence.gone(&self.p.workspace, &self.p.user, self.handle.id, self.away).await;
        for user in &self.presence_subs {
            self.st.fanout.detach(&self.p.workspace, &Target::Presence(user.clone()), self.handle.id);
        }
        for (id, ch) in &self.channels {
            if ch.attached {
                self.st.fanout.detach(&self.p.workspace, &Target::Channel(id.clone()), self.handle.id);
            }
        }
        self.st.fanout.detach(&self.p.workspace, &Target::User(self.p.user.clone()), self.handle.id);
        if let End::Close(code, reason) = end {
            let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.sink.send(Message::Close(Some(frame)))).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.sink.close()).await;
    }

    async fn write(&mut self, kind: &'static str, text: Utf8Bytes) -> Result<(), End> {
        // A peer that stopped reading blocks this write; its queue then fills and the fan-out
        // flags it, which must end the wait at once rather than after the write timeout.
        let slow = self.handle.slow.clone();
        let batching = self.batching;
        let msg = Message::Text(text);
        let io = async {
            if batching {
                self.sink.feed(msg).await
            } else {
                self.sink.send(msg).await
            }
        };
        tokio::select! {
            r = tokio::time::timeout(WRITE_TIMEOUT, io) => match r {
                Ok(Ok(())) => {
                    metrics::global().frames_out.get_or_create(&TypeLabel { r#type: kind }).inc();
                    Ok(())
                }
                _ => Err(End::Broken),
            },
            _ = slow.cancelled() => Err(slow_close()),
        }
    }

    async fn send_frame(&mut self, frame: ServerFrame<'_>) -> Result<(), End> {
        let kind = frame.kind();
        self.write(kind, Utf8Bytes::from(frame.to_json())).await
    }

    async fn send_error(&mut self, reference: Option<Value>, error: ApiError) -> Result<(), End> {
        metrics::global().errors.get_or_create(&metrics::CodeLabel { code: error.code.as_str() }).inc();
        self.send_frame(ServerFrame::Error { reference, error: &error }).await
    }

    async fn hello(&mut self) -> Result<(), End> {
        let ws = self.p.workspace.clone();
        let unavailable = |e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "session setup failed");
            End::Close(close::TRY_AGAIN, "temporarily unavailable; reconnect with backoff")
        };
        self.st.fanout.attach(&ws, Target::User(self.p.user.clone()), self.handle.clone()).await.map_err(|e| unavailable(&e))?;
        let fresh = self.st.cursors.fresh(&ws, &self.p.user).await;
        let rows = self.st.store.my_channels(&ws, &self.p.user, &fresh.read, None).await.map_err(|e| unavailable(&e))?;
        let mut hello = Vec::with_capacity(rows.len());
        for r in rows {
            // Clamped like every cursor: a value past the end must not hide events (issue 7).
            let delivered = r.delivered_seq.max(fresh.delivered.get(&r.id).copied().unwrap_or(0)).min(r.last_seq);
            self.channels.insert(r.id.clone(), ChannelState { sent: 0, delivered, attached: false, members: None });
            hello.push(hello_channel(r));
        }
        let json = ServerFrame::Hello {
            session: &self.session,
            user: &self.p.user,
            workspace: ws.as_str(),
            heartbeat_ms: self.st.cfg.timing.heartbeat_ms,
            channels: &hello,
        }
        .to_json();
        self.write("hello", Utf8Bytes::from(json)).await
    }

    async fn on_text(&mut self, text: &str) -> Result<(), End> {
        let frame = match parse_client_frame(text) {
            Ok(f) => f,
            Err((reference, e)) => {
                metrics::global().frames_in.get_or_create(&TypeLabel { r#type: "invalid" }).inc();
                return self.send_error(reference, e).await;
            }
        };
        metrics::global().frames_in.get_or_create(&TypeLabel { r#type: frame.kind() }).inc();
        if !matches!(frame, ClientFrame::Ping { .. }) {
            self.last_activity = Instant::now();
            if self.away && !self.client_away {
                // Back from inactivity: online now, not at the next refresh.
                self.away = false;
                self.st.presence.touch(&self.p.workspace, &self.p.user, self.handle.id, false).await;
            }
        }
        if !self.synced && !matches!(frame, ClientFrame::Sync { .. }) {
            self.sync(HashMap::new()).await?;
        }
        match frame {
            ClientFrame::Sync { since, .. } => self.sync(since.into_iter().map(|(id, seq)| (id.into_string(), seq)).collect()).await,
            ClientFrame::Ping { reference } => self.send_frame(ServerFrame::Pong { reference }).await,
            ClientFrame::Send { reference, channel, cmid, text, thread, also_channel, files } => {
                let started = Instant::now();
                let send = Send { cmid, text, thread, also_channel, files };
                if let Err(e) = validate_send(&self.st.cfg.limits, &send).and_then(|_| self.bucket.take()) {
                    count_send(&Err::<(), _>(e.clone()), false);
                    return self.send_error(reference, e).await;
                }
                match self.st.domain.submit_send(&self.p, &channel, send).await {
                    Ok(pending) => {
                        self.in_flight.push(Box::pin(async move { (reference, started, pending.committed().await) }));
                        Ok(())
                    }
                    Err(e) => self.send_error(reference, e).await,
                }
            }
            ClientFrame::Edit { reference, channel, id, text } => {
                self.drain_sends().await?;
                let r = self.st.domain.edit(&self.p, &channel, &id, &text).await;
                self.change_ack(reference, &channel, &id, r).await
            }
            ClientFrame::Delete { reference, channel, id } => {
                self.drain_sends().await?;
                let r = self.st.domain.delete(&self.p, &channel, &id).await;
                self.change_ack(reference, &channel, &id, r).await
            }
            ClientFrame::React { reference, channel, id, emoji } => {
                self.drain_sends().await?;
                let r = self.st.domain.react(&self.p, &channel, &id, &emoji).await;
                self.change_ack(reference, &channel, &id, r).await
            }
            ClientFrame::Unreact { reference, channel, id, emoji } => {
                self.drain_sends().await?;
                let r = self.st.domain.unreact(&self.p, &channel, &id, &emoji).await;
                self.change_ack(reference, &channel, &id, r).await
            }
            ClientFrame::Recv { reference, channel, seq } => self.cursor(reference, channel, seq, true).await,
            ClientFrame::Typing { reference, channel, thread } => self.typing(reference, channel, thread).await,
            ClientFrame::Presence { status, .. } => {
                self.client_away = status == ClientStatus::Away;
                self.away = self.client_away;
                self.st.presence.touch(&self.p.workspace, &self.p.user, self.handle.id, self.away).await;
                Ok(())
            }
            ClientFrame::PresenceSub { reference, users } => self.presence_sub(reference, users).await,
            ClientFrame::Read { reference, channel, seq, thread: Some(root) } => {
                match self.st.domain.read_thread(&self.p, &channel, &root, seq).await {
                    Ok(()) => Ok(()),
                    Err(e) => self.send_error(reference, e).await,
                }
            }
            ClientFrame::Read { reference, channel, seq, thread: None } => self.cursor(reference, channel, seq, false).await,
        }
    }

    /// Replaces the users whose presence this connection follows, and sends each one's status.
    async fn presence_sub(&mut self, reference: Option<Value>, users: Vec<String>) -> Result<(), End> {
        if let Err(e) = validate_users(&users) {
            return self.send_error(reference, ApiError::new(e.code, format!("presence_sub: {}", e.message))).await;
        }
        let wanted: HashSet<String> = users.into_iter().collect();
        let ws = self.p.workspace.clone();
        for gone in self.presence_subs.difference(&wanted) {
            self.st.fanout.detach(&ws, &Target::Presence(gone.clone()), self.handle.id);
        }
        let new: Vec<String> = wanted.difference(&self.presence_subs).cloned().collect();
        let attaches = new.iter().map(|u| self.st.fanout.attach(&ws, Target::Presence(u.clone()), self.handle.clone()));
        for (u, r) in new.iter().zip(futures::future::join_all(attaches).await) {
            if let Err(e) = r {
                tracing::debug!(user = %u, error = %e, "presence subscription failed");
            }
        }
        self.presence_subs = wanted;
        let mut users: Vec<&String> = self.presence_subs.iter().collect();
        users.sort();
        let statuses = futures::future::join_all(users.iter().map(|u| self.st.presence.status(&ws, u))).await;
        for p in statuses {
            self.write("presence", Utf8Bytes::from(p.frame())).await?;
        }
        Ok(())
    }

    /// A typing signal: members only; never answered unless refused (it is best effort).
    async fn typing(&mut self, reference: Option<Value>, channel: ChannelId, thread: Option<MessageId>) -> Result<(), End> {
        if !self.channels.contains_key(channel.as_str()) {
            return self.send_error(reference, ApiError::not_found(format!("not a member of {channel}"))).await;
        }
        let Some(members) = self.member_count(&channel).await else { return Ok(()) };
        self.st.domain.typing(&self.p, &channel, thread.as_ref(), members).await;
        Ok(())
    }

    /// Acks a committed send (and then publishes it), or answers its error.
    async fn on_send_done(&mut self, (reference, started, r): SendDone) -> Result<(), End> {
        match r {
            Ok(sent) => {
                let e = &sent.value.event;
                self.send_frame(ServerFrame::Ack { reference, channel: &e.channel, seq: e.seq, id: &e.id, ts: e.ts }).await?;
                metrics::global().ack_latency.observe(started.elapsed().as_secs_f64());
                sent.publish().await;
                Ok(())
            }
            Err(e) => self.send_error(reference, e).await,
        }
    }

    /// Answers every send in flight. A change of a message comes after the connection's
    /// earlier sends in the channel's sequence, as the client sent them.
    async fn drain_sends(&mut self) -> Result<(), End> {
        while let Some(done) = self.in_flight.next().await {
            self.on_send_done(done).await?;
        }
        Ok(())
    }

    /// The answer to a change of a message: `ack` with the change event's seq, or `noop`.
    async fn change_ack(&mut self, reference: Option<Value>, channel: &ChannelId, id: &MessageId, r: ChangeResult) -> Result<(), End> {
        let committed = match r {
            Ok(c) => c,
            Err(e) => return self.send_error(reference, e).await,
        };
        let (seq, ts) = match &committed.value {
            Change::Applied(a) => (Some(a.event.seq), Some(a.event.ts)),
            Change::Noop => (None, None),
        };
        self.send_frame(ServerFrame::ChangeAck { reference, channel, id, seq, ts, noop: seq.is_none() }).await?;
        committed.publish().await;
        Ok(())
    }

    async fn cursor(&mut self, reference: Option<Value>, channel: ChannelId, seq: i64, delivered: bool) -> Result<(), End> {
        if seq < 0 {
            return self.send_error(reference, ApiError::bad_request("seq must be >= 0")).await;
        }
        let Some(sent) = self.channels.get(channel.as_str()).map(|ch| ch.sent) else {
            return self.send_error(reference, ApiError::not_found(format!("not a member of {channel}"))).await;
        };
        // A seq past the channel's end is clamped to it: stored as it came, it would make every
        // later session of the user skip the events up to it (issue 7). At or below what this
        // socket was sent needs no lookup, which is what clients acknowledge.
        let seq = if seq <= sent {
            seq
        } else {
            match self.st.store.positions(&self.p.workspace, &[channel.to_string()]).await {
                Ok(p) => p.first().map_or(0, |(_, last)| seq.min(*last)),
                Err(e) => return self.send_error(reference, e.into()).await,
            }
        };
        let (d, r) = if delivered { (seq, 0) } else { (seq, seq) };
        self.st.cursors.update(&self.p.workspace, &self.p.user, &channel, d, r).await;
        if !delivered && seq > 0 {
            self.receipt(channel.into_string(), seq).await;
        }
        Ok(())
    }

    /// Forwards a read receipt, or holds it back (the latest per channel) while throttled.
    async fn receipt(&mut self, channel: String, seq: i64) {
        let Some(members) = self.member_count(&channel).await else { return };
        let Ok(id) = ChannelId::new(channel.clone()) else { return };
        if self.st.domain.receipt(&self.p, &id, seq, members).await == "throttled" {
            let held = self.pending_receipts.entry(channel).or_default();
            *held = (*held).max(seq);
        } else {
            self.pending_receipts.remove(&channel);
        }
    }

    async fn flush_receipts(&mut self) {
        let pending: Vec<(String, i64)> = self.pending_receipts.drain().collect();
        for (channel, seq) in pending {
            self.receipt(channel, seq).await;
        }
    }

    /// The channel's member count, read at most once per [`MEMBER_COUNT_TTL`] (None if the
    /// connection is not in it or Postgres cannot say).
    async fn member_count(&mut self, channel: &str) -> Option<i64> {
        let cached = self.channels.get(channel)?.members;
        if let Some((n, _)) = cached.filter(|(_, at)| at.elapsed() < MEMBER_COUNT_TTL) {
            return Some(n);
        }
        match self.st.store.member_count(&self.p.workspace, channel).await {
            Ok(n) => {
                if let Some(ch) = self.channels.get_mut(channel) {
                    ch.members = Some((n, Instant::now()));
                }
                Some(n)
            }
            Err(e) => {
                tracing::debug!(error = %e, "member count unavailable");
                None
            }
        }
    }

    /// Attaches every channel not yet attached, then replays from `since` (or the stored
    /// delivered cursor) up to the current position.
    async fn sync(&mut self, since: HashMap<String, i64>) -> Result<(), End> {
        let first = !self.synced;
        self.synced = true;
        let unknown: Vec<String> = since.keys().filter(|id| !self.channels.contains_key(*id)).cloned().collect();
        for id in unknown {
            self.send_error(None, ApiError::not_found(format!("sync: not a member of {id}; ignored"))).await?;
        }
        let ids: Vec<String> = self.channels.keys().cloned().collect();
        let mut from = HashMap::new();
        for id in &ids {
            let ch = &self.channels[id];
            let start = match since.get(id) {
                Some(s) => (*s).max(0),
                None if ch.attached => continue, // already live and no replay asked for
                None => ch.sent.max(ch.delivered),
            };
            from.insert(id.clone(), start);
        }
        self.replay(from).await?;
        if first {
            self.send_inbox().await?;
        }
        Ok(())
    }

    /// After the first sync: the unread inbox (newest first) as `notification` frames.
    async fn send_inbox(&mut self) -> Result<(), End> {
        let items = match self.st.store.notifications(&self.p.workspace, &self.p.user, true, INBOX_ON_CONNECT).await {
            Ok(items) => items,
            Err(e) => {
                // The inbox stays available over REST; the session goes on.
                tracing::warn!(error = %e, "inbox read failed");
                return Ok(());
            }
        };
        for n in items {
            self.write("notification", Utf8Bytes::from(crate::protocol::notification_frame(&n).to_string())).await?;
        }
        Ok(())
    }

    async fn replay(&mut self, from: HashMap<String, i64>) -> Result<(), End> {
        if from.is_empty() {
            return Ok(());
        }
        let ws = self.p.workspace.clone();
        let to_attach: Vec<String> = from.keys().filter(|id| !self.channels[*id].attached).cloned().collect();
        let attaches = to_attach.iter().map(|id| self.st.fanout.attach(&ws, Target::Channel(id.clone()), self.handle.clone()));
        let results = futures::future::join_all(attaches).await;
        for (id, r) in to_attach.iter().zip(results) {
            if let Err(e) = r {
                tracing::warn!(channel = %id, error = %e, "attach failed");
                return Err(End::Close(close::TRY_AGAIN, "temporarily unavailable; reconnect with backoff"));
            }
            self.channels.get_mut(id).expect("known").attached = true;
        }
        let ids: Vec<String> = from.keys().cloned().collect();
        let positions = self.st.store.positions(&ws, &ids).await.map_err(|e| {
            tracing::warn!(error = %e, "replay position read failed");
            End::Close(close::TRY_AGAIN, "temporarily unavailable; reconnect with backoff")
        })?;
        let limit = self.st.cfg.limits.replay_limit;
        for (id, last) in positions {
            // A client position past the channel's end is clamped to it: trusted, it would
            // swallow the next live events (issue 7).
            let mut after = from[&id].min(last);
            if last - after > limit {
                let to = last - limit;
                self.send_frame(ServerFrame::Gap { channel: &id, from: after + 1, to }).await?;
                after = to;
            }
            while after < last {
                // Replay renders each message as it is now (edits, tombstones, reactions); the
                // change events follow at their own seqs (docs/protocol.md, state_seq).
                let events = self.st.store.replay_range(&ws, &id, &self.p.user, after + 1, last, REPLAY_PAGE).await.map_err(|e| {
                    tracing::warn!(error = %e, "replay read failed");
                    End::Close(close::TRY_AGAIN, "temporarily unavailable; reconnect with backoff")
                })?;
                let Some(max) = events.last().map(|e| e.seq) else { break };
                for e in events {
                    self.write("event", Utf8Bytes::from(e.frame_json())).await?;
                }
                after = max;
            }
            let ch = self.channels.get_mut(&id).expect("known");
            ch.sent = ch.sent.max(after);
        }
        Ok(())
    }

    /// Writes `first` and whatever else is already queued (up to [`OUT_BATCH`]) with one flush:
    /// one syscall for a burst instead of one per frame.
    async fn on_outbound_batch(&mut self, first: Outbound) -> Result<(), End> {
        self.batching = true;
        let mut result = self.on_outbound(first).await;
        for _ in 1..OUT_BATCH {
            let Ok(next) = self.rx.try_recv() else { break };
            if result.is_err() {
                break;
            }
            result = self.on_outbound(next).await;
        }
        self.batching = false;
        result?;
        let slow = self.handle.slow.clone();
        tokio::select! {
            r = tokio::time::timeout(WRITE_TIMEOUT, self.sink.flush()) => r.map_err(|_| End::Broken)?.map_err(|_| End::Broken),
            _ = slow.cancelled() => Err(slow_close()),
        }
    }

    async fn on_outbound(&mut self, out: Outbound) -> Result<(), End> {
        match out {
            Outbound::Event { channel, seq, ts, json } => {
                let Some(ch) = self.channels.get_mut(&channel) else { return Ok(()) };
                if seq <= ch.sent {
                    return Ok(()); // already written by replay
                }
                ch.sent = seq;
                self.write("event", json).await?;
                let m = metrics::global();
                m.deliveries.inc();
                let lag = (chrono::Utc::now() - ts).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
                m.delivery_latency.observe(lag);
                Ok(())
            }
            Outbound::User(payload) => self.on_user_message(&payload).await,
            Outbound::Ephemeral(payload) => self.on_ephemeral(payload).await,
        }
    }

    /// A typing or receipt frame of a channel: not to the sender's own connections, nor after
    /// leaving.
    async fn on_ephemeral(&mut self, payload: Utf8Bytes) -> Result<(), End> {
        #[derive(serde::Deserialize)]
        struct Head {
            t: String,
            channel: String,
            user: String,
        }
        let Ok(h) = serde_json::from_str::<Head>(payload.as_str()) else { return Ok(()) };
        if h.user == self.p.user || !self.channels.contains_key(&h.channel) {
            return Ok(());
        }
        self.write(if h.t == "receipt" { "receipt" } else { "typing" }, payload).await
    }

    /// Messages published to `us:{ws}:{user}` by whichever pod made them: membership changes,
    /// and notifications created while the user connected.
    async fn on_user_message(&mut self, payload: &str) -> Result<(), End> {
        #[derive(serde::Deserialize)]
        struct UserMessage {
            t: String,
            #[serde(default)]
            channel: String,
            #[serde(default)]
            seq: i64,
            #[serde(default)]
            user: String,
        }
        let Ok(m) = serde_json::from_str::<UserMessage>(payload) else { return Ok(()) };
        match m.t.as_str() {
            // A followed user's transition (the set may have changed since it was sent).
            "presence" if self.presence_subs.contains(&m.user) => self.write("presence", Utf8Bytes::from(payload.to_string())).await?,
            // Already a complete `notification` frame: forward as is.
            "notification" => self.write("notification", Utf8Bytes::from(payload.to_string())).await?,
            "joined" if !self.channels.contains_key(&m.channel) => {
                self.channels.insert(m.channel.clone(), ChannelState { sent: 0, delivered: 0, attached: false, members: None });
                // The channel's metadata first, as hello would have had it, then its events.
                let fresh = self.st.cursors.fresh(&self.p.workspace, &self.p.user).await;
                match self.st.store.my_channels(&self.p.workspace, &self.p.user, &fresh.read, Some(&m.channel)).await {
                    Ok(rows) => {
                        if let Some(r) = rows.into_iter().next() {
                            self.send_frame(ServerFrame::Joined { channel: &hello_channel(r) }).await?;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "joined channel's metadata unavailable"),
                }
                if self.synced {
                    // Replay from just before the join so the client sees its member_join.
                    self.replay(HashMap::from([(m.channel, m.seq - 1)])).await?;
                }
            }
            "left" => {
                if let Some(ch) = self.channels.remove(&m.channel) {
                    // Write what is still pending up to the member_leave itself, then stop.
                    if ch.attached {
                        self.st.fanout.detach(&self.p.workspace, &Target::Channel(m.channel.clone()), self.handle.id);
                    }
                    if ch.attached && ch.sent < m.seq {
                        let events = self
                            .st
                            .store
                            .events_range(&self.p.workspace, &m.channel, ch.sent + 1, m.seq, REPLAY_PAGE)
                            .await
                            .unwrap_or_default();
                        for e in events {
                            self.write("event", Utf8Bytes::from(e.frame_json())).await?;
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
