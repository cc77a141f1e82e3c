//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator replicas are safe: only
//! the holder runs the controllers, the other stands by and takes over when the Lease expires
//! (or at once when the holder releases it on a graceful shutdown).
//!
//! Every write is a replace carrying the Lease's resourceVersion, so two candidates racing for
//! an expired Lease cannot both win: the loser gets a 409 and stays standby.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews (and a standby retries).
    pub retry: Duration,
}

pub struct Elector {
    api: Api<Lease>,
    s: Settings,
}

impl Elector {
    pub fn new(client: Client, s: Settings) -> Self {
        Self { api: Api::namespaced(client, &s.namespace), s }
    }

    /// Tries once to acquire or renew; returns whether this replica holds the Lease now.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.s.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.s.name.clone()), ..Default::default() },
                spec: Some(self.spec(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let mine = spec.holder_identity.as_deref() == Some(&self.s.identity);
        let expired = match (&spec.renew_time, spec.lease_duration_seconds, spec.holder_identity.as_deref()) {
            (_, _, None | Some("")) => true,
            (Some(renewed), Some(secs), _) => renewed.0.as_second() + i64::from(secs) < now.as_second(),
            _ => true,
        };
        if !mine && !expired {
            return Ok(false);
        }
        let (acquired, transitions) = if mine {
            (spec.acquire_time.map(|t| t.0).unwrap_or(now), spec.lease_transitions.unwrap_or(0))
        } else {
            (now, spec.lease_transitions.unwrap_or(0) + 1)
        };
        lease.spec = Some(self.spec(acquired, now, transitions));
        match self.api.replace(&self.s.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.s.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(self.s.lease_duration.as_secs()).unwrap_or(i32::MAX)),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Gives the Lease up if held, so a standby takes over without waiting for expiry.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.s.name).await? else { return Ok(()) };
        let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(&self.s.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        self.api.replace(&self.s.name, &PostParams::default(), &lease).await.map(drop)
    }

    /// Keeps trying and renewing until `stop` flips, then releases the Lease; publishes leadership
    /// on the returned channel (the task ends after the release).
    /// A failed renewal counts as lost leadership once the Lease would have expired, so a
    /// partitioned leader stops before another replica can take over.
    pub fn spawn(
        self,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
        mut stop: watch::Receiver<bool>,
    ) -> (watch::Receiver<bool>, JoinHandle<()>) {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut last_ok = tokio::time::Instant::now();
            loop {
                let leading = match self.try_acquire().await {
                    Ok(held) => {
                        metrics.started.store(true, std::sync::atomic::Ordering::Relaxed);
                        last_ok = tokio::time::Instant::now();
                        held
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election: API server unavailable");
                        *tx.borrow() && last_ok.elapsed() < self.s.lease_duration.saturating_sub(self.s.retry)
                    }
                };
                if leading != *tx.borrow() {
                    tracing::info!(identity = %self.s.identity, leading, "leadership changed");
                }
                metrics.leader.set(i64::from(leading));
                tx.send_replace(leading);
                tokio::select! {
                    _ = tokio::time::sleep(self.s.retry) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            tx.send_replace(false);
            metrics.leader.set(0);
            if let Err(e) = self.release().await {
                tracing::warn!(error = %e, "could not release the leader Lease; the standby takes over when it expires");
            }
        });
        (rx, task)
    }
}
