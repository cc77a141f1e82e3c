//! The pod's Redis SUBSCRIBE set, changed by one task so subscribe/unsubscribe of the same key
//! can never be reordered, and the pump from Redis messages into the actor.

use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Shards;

const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) enum SubCmd {
    Subscribe { key: String, done: oneshot::Sender<bool> },
    Unsubscribe { key: String },
}

pub(super) fn start(subscriber: SubscriberClient, stop: CancellationToken) -> mpsc::UnboundedSender<SubCmd> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let cmd = tokio::select! {
                _ = stop.cancelled() => return,
                c = rx.recv() => match c { Some(c) => c, None => return },
            };
            match cmd {
                SubCmd::Subscribe { key, done } => {
                    let ok = match tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscriber.subscribe(key.clone())).await {
                        Ok(Ok(())) => true,
                        Ok(Err(e)) => {
                            tracing::warn!(key, error = %e, "redis subscribe failed; serving from Postgres until it works");
                            false
                        }
                        Err(_) => {
                            tracing::warn!(key, "redis subscribe timed out; serving from Postgres until it works");
                            false
                        }
                    };
                    let _ = done.send(ok);
                }
                SubCmd::Unsubscribe { key } => {
                    if let Err(e) = tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscriber.unsubscribe(key.clone())).await {
                        tracing::debug!(key, error = %e, "redis unsubscribe timed out");
                    }
                }
            }
        }
    });
    tx
}

/// Forwards every pub/sub message to its shard, waiting while that shard's queue is full. A
/// lagging receiver loses messages; the position check then reads them from Postgres.
pub(super) async fn pump(subscriber: SubscriberClient, shards: Shards, stop: CancellationToken) {
    let mut rx = subscriber.message_rx();
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return,
            m = rx.recv() => m,
        };
        match msg {
            Ok(m) => {
                let Some(text) = m.value.as_string() else { continue };
                let sent = tokio::select! {
                    _ = stop.cancelled() => return,
                    sent = shards.message(m.channel.to_string(), Utf8Bytes::from(text)) => sent,
                };
                if !sent {
                    return;
                }
            }
            Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "redis message pump lagged; position check will fill"),
            Err(RecvError::Closed) => return,
        }
    }
}
