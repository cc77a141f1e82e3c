//! The search indexer (issue 11): what the consumer does with an event for search. A `message`
//! becomes a document, an `edit` replaces its text and a `delete` makes it a tombstone, in the
//! channel's order (the consumer sees each channel's events in order) and idempotently by seq.
//!
//! It runs here, after the event is durable and published, never on the send path. It must not
//! decide who may find a document (the query does, per caller).

use palaver_crds::WorkspaceName;

use crate::metrics;
use crate::protocol::Event;
use crate::store::{SearchDoc, Store};

#[derive(Clone)]
pub struct Indexer {
    pub store: Store,
}

impl Indexer {
    /// Indexes one event; returns what happened (for the metric). Errors are transient
    /// (storage): the caller retries the same event.
    pub async fn index(&self, ws: &WorkspaceName, ev: &Event) -> Result<&'static str, sqlx::Error> {
        let changed = match ev.kind.as_str() {
            "message" => {
                let doc = SearchDoc {
                    message_id: &ev.id,
                    channel_id: &ev.channel,
                    seq: ev.seq,
                    ts: ev.ts,
                    user_id: &ev.user,
                    thread: ev.thread.as_deref(),
                    body: ev.text.as_deref().unwrap_or_default(),
                };
                self.store.index_message(ws, &doc).await?
            }
            "edit" => match ev.target.as_deref() {
                Some(target) => self.store.index_edit(ws, target, ev.text.as_deref().unwrap_or_default(), ev.seq).await?,
                None => return Ok("skipped"),
            },
            "delete" => match ev.target.as_deref() {
                Some(target) => self.store.index_delete(ws, &ev.channel, target, ev.seq).await?,
                None => return Ok("skipped"),
            },
            _ => return Ok("skipped"),
        };
        // How far behind the send the index is: what an SRE watches (and the alert).
        let lag = (chrono::Utc::now() - ev.ts).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::global().search_index_lag.observe(lag);
        Ok(if changed { "indexed" } else { "unchanged" })
    }
}
