//! The webhook delivery worker inside `serve`: wakes when a committed event queued deliveries
//! (Postgres `NOTIFY`, so every process hears of every event at once) and at least every second
//! (retries that came due, a missed notification), and delivers what is due in batches. The
//! work is shared through the database (`services::webhooks`), so any number of processes can
//! run it.

use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::http::AppState;
use crate::infra::config::Environment;
use crate::infra::outbound;
use crate::services::audit::DELIVERIES_CHANNEL;
use crate::services::webhooks::{BATCH, Deliverer};

/// The longest a due delivery waits for a worker when no notification comes.
const POLL_EVERY: Duration = Duration::from_secs(1);

pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    let public_only = state.config.env == Environment::Production;
    let deliverer = Deliverer {
        db: state.db.clone(),
        hasher: state.hasher.clone(),
        client: outbound::client(public_only),
        public_only,
    };
    tokio::spawn(async move {
        let mut listener = listen(&state).await;
        loop {
            loop {
                match deliverer.deliver_due(state.clock.now()).await {
                    Ok(count) if count as i64 == BATCH => continue,
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, "webhook deliveries could not be taken");
                        break;
                    }
                }
            }
            if let Ok(pending) = deliverer.pending().await {
                metrics::gauge!("webhook_deliveries_pending").set(pending as f64);
            }
            wait(&state, &mut listener).await;
        }
    })
}

/// A listener on the deliveries channel; `None` (polling only) while Postgres refuses one.
async fn listen(state: &AppState) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(&state.db).await.ok()?;
    listener.listen(DELIVERIES_CHANNEL).await.ok()?;
    Some(listener)
}

/// Until a notification or the next poll, whichever comes first.
async fn wait(state: &AppState, listener: &mut Option<PgListener>) {
    let Some(active) = listener else {
        tokio::time::sleep(POLL_EVERY).await;
        *listener = listen(state).await;
        return;
    };
    match tokio::time::timeout(POLL_EVERY, active.recv()).await {
        Ok(Ok(_)) | Err(_) => {}
        // The connection dropped: poll until a new one listens.
        Ok(Err(_)) => *listener = None,
    }
}
