//! The operator process: metrics server, leader election, and the two controllers, which run
//! only while this replica leads and stop (to stand by again) when it loses the Lease.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use kube::Client;
use tokio::sync::watch;

use crate::controller::{chatcluster, workspace, Context, Settings};
use crate::leader::{self, Elector};
use crate::metrics::{self, Metrics};

pub struct Options {
    pub listen: SocketAddr,
    pub lease: leader::Settings,
    /// Watch only this namespace.
    pub namespace: Option<String>,
    pub settings: Settings,
}

/// Runs until `shutdown` resolves; then stops the controllers and releases the Lease.
pub async fn run(client: Client, opts: Options, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut stopped = stop_rx.clone();
    let server = tokio::spawn(metrics::serve(opts.listen, metrics.clone(), async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    let identity = opts.lease.identity.clone();
    let (mut leading, elector) = Elector::new(client.clone(), opts.lease).spawn(metrics.clone(), stop_rx.clone());
    let ctx = Context::new(client, metrics, opts.settings, Some(identity));

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = leading.wait_for(|l| *l) => if r.is_err() { break },
        }
        tracing::info!("leading: starting controllers");
        let (lost_tx, lost_rx) = watch::channel(false);
        let stop_on = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let controllers = futures::future::join(
            workspace::run(ctx.clone(), opts.namespace.clone(), stop_on(lost_rx.clone())),
            chatcluster::run(ctx.clone(), opts.namespace.clone(), stop_on(lost_rx)),
        );
        tokio::pin!(controllers);
        let done = tokio::select! {
            _ = &mut shutdown => true,
            _ = leading.wait_for(|l| !*l) => false,
            _ = &mut controllers => false,
        };
        lost_tx.send_replace(true);
        controllers.await;
        if done {
            break;
        }
        tracing::warn!("lost leadership: controllers stopped, standing by");
    }
    stop_tx.send_replace(true);
    // Let the elector release the Lease before the process exits.
    let _ = elector.await;
    server.await.unwrap_or(Ok(()))
}
