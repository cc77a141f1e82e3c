//! The search indexer (issue 11): what the consumer does with events for search. A `message`
//! becomes a document, an `edit` replaces its text and a `delete` makes it a tombstone, in the
//! channel's order (the consumer sees each channel's events in order) and idempotently by seq.
//! What one poll brings is written in as few transactions as order allows: one per run of
//! events that touch distinct messages.
//!
//! It runs here, after the event is durable and published, never on the send path. It must not
//! decide who may find a document (the query does, per caller).

use std::collections::HashSet;

use palaver_crds::WorkspaceName;

use crate::metrics;
use crate::protocol::Event;
use crate::store::{IndexBatch, IndexDelete, IndexEdit, SearchDoc, Store};

#[derive(Clone)]
pub struct Indexer {
    pub store: Store,
}

/// The message an event changes in the index, if any.
fn indexed_message(ev: &Event) -> Option<&str> {
    match ev.kind.as_str() {
        "message" => Some(&ev.id),
        "edit" | "delete" => ev.target.as_deref(),
        _ => None,
    }
}

/// A run of events that touch distinct messages: one statement of each kind applies them all,
/// as order within the run does not matter. `members`: each event's index and message.
#[derive(Default)]
struct Run<'a> {
    batch: IndexBatch<'a>,
    seen: HashSet<&'a str>,
    members: Vec<(usize, &'a str)>,
}

impl<'a> Run<'a> {
    fn push(&mut self, i: usize, ev: &'a Event, id: &'a str) {
        match ev.kind.as_str() {
            "message" => self.batch.docs.push(SearchDoc {
                message_id: &ev.id,
                channel_id: &ev.channel,
                seq: ev.seq,
                indexed_seq: ev.seq,
                ts: ev.ts,
                user_id: &ev.user,
                thread: ev.thread.as_deref(),
                body: ev.text.as_deref().unwrap_or_default(),
                has_file: ev.files.as_ref().is_some_and(|f| !f.is_empty()),
            }),
            "edit" => self.batch.edits.push(IndexEdit { message_id: id, text: ev.text.as_deref().unwrap_or_default(), seq: ev.seq }),
            _ => self.batch.deletes.push(IndexDelete { message_id: id, channel_id: &ev.channel, seq: ev.seq }),
        }
        self.seen.insert(id);
        self.members.push((i, id));
    }
}

impl Indexer {
    /// Indexes one workspace's events, in their order; returns each one's result (indexed,
    /// unchanged, skipped) for the metric. Errors are transient (storage): the caller retries
    /// the same events, which is safe because every write is conditional on an older state.
    pub async fn index(&self, ws: &WorkspaceName, events: &[Event]) -> Result<Vec<&'static str>, sqlx::Error> {
        let mut results = vec!["skipped"; events.len()];
        let mut run = Run::default();
        for (i, ev) in events.iter().enumerate() {
            let Some(id) = indexed_message(ev) else { continue };
            if run.seen.contains(id) {
                self.apply(ws, std::mem::take(&mut run), events, &mut results).await?;
            }
            run.push(i, ev, id);
        }
        self.apply(ws, run, events, &mut results).await?;
        Ok(results)
    }

    /// Writes one run and records its events' results and lag.
    async fn apply(&self, ws: &WorkspaceName, run: Run<'_>, events: &[Event], results: &mut [&'static str]) -> Result<(), sqlx::Error> {
        if run.batch.is_empty() {
            return Ok(());
        }
        let changed = self.store.index_batch(ws, &run.batch).await?;
        let now = chrono::Utc::now();
        for (i, id) in run.members {
            results[i] = if changed.contains(id) { "indexed" } else { "unchanged" };
            // How far behind the send the index is: what an SRE watches (and the alert).
            let lag = (now - events[i].ts).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::global().search_index_lag.observe(lag);
        }
        Ok(())
    }
}
