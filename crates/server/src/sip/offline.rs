//! Offline IM over SIP: a MESSAGE nobody could take is held (202 Accepted),
//! and held messages are delivered as MESSAGEs, in order, with the original
//! sender and Date, when the recipient signs in again. A message is deleted
//! only after a device answered 2xx.

use super::location::LocationEvent;
use super::{SipServer, UacOutcome, ids};
use crate::transport::lock;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::{Address, InstantMessage, OfflineOutcome};
use switchboard_sip::{Request, Response, TransactionKey};

impl SipServer {
    /// Stores `msg` (received on `key`) and answers 202, or 480 if the
    /// recipient's policy keeps no offline messages.
    pub async fn hold_offline(
        self: Arc<Self>,
        key: TransactionKey,
        req: Request,
        msg: InstantMessage,
        hook: Option<super::routing::FinalHook>,
    ) {
        let outcome = self
            .offline
            .hold(self.store.as_ref(), &self.policies, &msg)
            .await;
        let resp = match outcome {
            OfflineOutcome::Stored(_) => Response::to_request(&req, 202)
                .with_reason("Accepted (stored for offline delivery)"),
            OfflineOutcome::Disabled => {
                Response::to_request(&req, 480).with_reason("Temporarily Unavailable")
            }
            OfflineOutcome::Full => Response::to_request(&req, 480)
                .with_reason("Temporarily Unavailable (offline message limit reached)"),
            OfflineOutcome::Unavailable(e) => {
                tracing::error!(error = %e, "cannot store an offline message");
                Response::to_request(&req, 500)
                    .with_reason("Cannot store the message for later delivery")
            }
        };
        if let Some(h) = hook {
            h(resp.status);
        }
        self.respond(&key, resp.with_to_tag(&ids::tag()));
    }

    /// Starts offline delivery: at each sign-in, periodically for users who
    /// are signed in with messages waiting, and expiry of old messages.
    pub fn start_offline(self: &Arc<Self>) {
        let me = self.clone();
        let mut events = self.location.subscribe();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(LocationEvent::Registered { aor, .. }) => me.clone().deliver_offline(aor),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                if let Err(e) = me
                    .offline
                    .expire(me.store.as_ref(), switchboard_core::now_ms())
                    .await
                {
                    tracing::warn!(error = %e, "cannot expire offline messages");
                }
                match me.offline.recipients(me.store.as_ref()).await {
                    Ok(list) => {
                        for aor in list {
                            if me.location.is_registered(&aor, switchboard_core::now_ms())
                                || me.endpoints.is_attached(&aor)
                            {
                                me.clone().deliver_offline(aor);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot list offline recipients"),
                }
            }
        });
    }

    /// Delivers what is waiting for `aor`. One delivery run per user at a
    /// time keeps messages in order; a request during a run (a device signed
    /// in meanwhile) makes the run go round once more.
    pub fn deliver_offline(self: Arc<Self>, aor: Address) {
        {
            let mut runs = lock(&self.delivering);
            if let Some(again) = runs.get_mut(&aor) {
                *again = true;
                return;
            }
            runs.insert(aor.clone(), false);
        }
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.deliver_pending(&aor).await {
                    tracing::warn!(user = %aor, error = %e, "offline delivery interrupted");
                }
                let mut runs = lock(&self.delivering);
                match runs.get_mut(&aor) {
                    Some(again) if *again => *again = false,
                    _ => {
                        runs.remove(&aor);
                        return;
                    }
                }
            }
        });
    }

    async fn deliver_pending(&self, aor: &Address) -> anyhow::Result<()> {
        let pending = self.offline.pending(self.store.as_ref(), aor).await?;
        for (id, msg, _attempts) in pending {
            let now = switchboard_core::now_ms();
            let targets = self.device_targets(aor, now);
            // Web sessions take it at once (their queue is the delivery);
            // SIP devices must answer 2xx.
            let taken_by_web = self.deliver_to_endpoints_at(
                &msg.from,
                aor,
                &msg.content_type,
                &msg.body,
                msg.received_ms,
            ) > 0;
            if taken_by_web {
                if !targets.is_empty() {
                    let _ = self.send_to_devices(self.im_request(&msg), targets).await;
                }
                self.offline.delivered(self.store.as_ref(), id).await?;
                tracing::info!(id, to = %aor, from = %msg.from, "offline instant message delivered");
                continue;
            }
            if targets.is_empty() {
                return Ok(());
            }
            match self.send_to_devices(self.im_request(&msg), targets).await {
                UacOutcome::Response(r) if r.status < 300 => {
                    self.offline.delivered(self.store.as_ref(), id).await?;
                    tracing::info!(id, to = %aor, from = %msg.from, "offline instant message delivered");
                }
                other => {
                    self.offline.failed(self.store.as_ref(), id).await?;
                    tracing::info!(id, to = %aor, outcome = ?other.status(), "offline delivery failed; will retry");
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

impl UacOutcome {
    /// The status for logs (408 for a timeout, 503 for a transport error).
    pub fn status(&self) -> u16 {
        match self {
            UacOutcome::Response(r) => r.status,
            UacOutcome::Timeout => 408,
            UacOutcome::TransportError => 503,
        }
    }
}
