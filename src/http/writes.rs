//! How a PMS write gets its database connection: a transaction of its own, or — when the request
//! carries an Idempotency-Key — the idempotency layer's transaction, so the write and its stored
//! response commit together. Either way nothing commits before the database has confirmed, in
//! that transaction, that the API token is still live. Never autocommit: a request dropped at its
//! deadline (the 503 of `KISS_REQUEST_TIMEOUT_SECS`) must leave nothing behind, and a statement
//! still waiting on a lock in Postgres would otherwise commit after the client was told it failed.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::AppState;
use super::auth::TokenConfirmed;
use crate::domain::{Error, Result};
use crate::infra::db;
use crate::services::auth::{CompanyAuth, api_token_live};

/// The savepoint a multi-statement write starts at inside the idempotency transaction.
pub(super) const HANDLER_SAVEPOINT: &str = "idempotent_handler";

type PgTx = Transaction<'static, Postgres>;

/// The idempotency layer's open transaction, lent to the handler through the request's extensions.
#[derive(Clone, Default)]
pub struct TxSlot(Arc<Mutex<Lent>>);

#[derive(Default)]
struct Lent {
    tx: Option<PgTx>,
    /// Whether the handler's work began with a savepoint (multi-statement writes only).
    savepoint: bool,
}

impl TxSlot {
    pub fn new(tx: PgTx) -> Self {
        TxSlot(Arc::new(Mutex::new(Lent {
            tx: Some(tx),
            savepoint: false,
        })))
    }

    fn lent(&self) -> std::sync::MutexGuard<'_, Lent> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn take(&self) -> Option<PgTx> {
        self.lent().tx.take()
    }

    pub fn has_savepoint(&self) -> bool {
        self.lent().savepoint
    }

    fn put(&self, tx: PgTx) {
        self.lent().tx = Some(tx);
    }
}

/// Extractor for the handlers of PMS writes.
pub struct Writes {
    pool: PgPool,
    slot: Option<TxSlot>,
    token: WriteToken,
}

/// The API token a write is made with, and whether it is known to be live yet.
#[derive(Clone)]
struct WriteToken {
    id: uuid::Uuid,
    confirmed: TokenConfirmed,
}

impl FromRequestParts<AppState> for Writes {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let (Some(auth), Some(confirmed)) = (
            parts.extensions.get::<CompanyAuth>(),
            parts.extensions.get::<TokenConfirmed>(),
        ) else {
            return Err(Error::Internal(anyhow::anyhow!(
                "a PMS write outside the write stack"
            )));
        };
        Ok(Writes {
            pool: state.db.clone(),
            slot: parts.extensions.get::<TxSlot>().cloned(),
            token: WriteToken {
                id: auth.token_id,
                confirmed: confirmed.clone(),
            },
        })
    }
}

impl Writes {
    /// A transaction for a write of several statements. Inside the idempotency layer's
    /// transaction it starts at a savepoint, so a refusal after partial work can undo that work
    /// and still store its answer.
    pub async fn transaction(&self) -> Result<WriteTx> {
        match &self.slot {
            Some(slot) => {
                let mut tx = self.borrow(slot)?;
                sqlx::query(&format!("SAVEPOINT {}", HANDLER_SAVEPOINT))
                    .execute(&mut *tx)
                    .await?;
                slot.lent().savepoint = true;
                Ok(tx)
            }
            None => self.open_owned().await,
        }
    }

    /// A transaction for a write that is one statement: inside the idempotency layer's
    /// transaction it needs no savepoint (the statement fails or succeeds whole).
    pub async fn single_statement(&self) -> Result<WriteTx> {
        match &self.slot {
            Some(slot) => self.borrow(slot),
            None => self.open_owned().await,
        }
    }

    async fn open_owned(&self) -> Result<WriteTx> {
        Ok(WriteTx {
            inner: Inner::Owned(Some(db::begin(&self.pool).await?)),
            token: self.token.clone(),
        })
    }

    fn borrow(&self, slot: &TxSlot) -> Result<WriteTx> {
        let tx = slot.take().ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "the idempotency transaction was taken twice"
            ))
        })?;
        Ok(WriteTx {
            inner: Inner::Borrowed(Some(tx), slot.clone()),
            token: self.token.clone(),
        })
    }
}

/// A connection to write through; derefs to `PgConnection`.
pub struct WriteTx {
    inner: Inner,
    token: WriteToken,
}

enum Inner {
    Owned(Option<PgTx>),
    /// Goes back to the idempotency layer, which commits or rolls back after storing the answer.
    Borrowed(Option<PgTx>, TxSlot),
}

impl WriteTx {
    /// Records that a statement of this transaction found the API token live (it checked
    /// `live_api_tokens` and matched a row), so the commit need not ask again.
    pub fn token_confirmed(&self) {
        self.token.confirmed.confirm();
    }

    /// Makes the write durable: commits an owned transaction, after checking in it that the API
    /// token is still live unless a statement already did; a borrowed one is handed back to the
    /// idempotency layer (which commits it with the stored response, its claim having checked the
    /// token).
    pub async fn commit(mut self) -> Result<()> {
        if let Inner::Owned(tx) = &mut self.inner
            && let Some(mut tx) = tx.take()
        {
            if !self.token.confirmed.is_confirmed() {
                if !api_token_live(&mut tx, self.token.id).await? {
                    return Err(Error::Unauthorized { token_sent: true });
                }
                self.token.confirmed.confirm();
            }
            db::commit(tx).await?;
        }
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Inner::Borrowed(tx, slot) = &mut self.inner
            && let Some(tx) = tx.take()
        {
            slot.put(tx);
        }
    }
}

impl Deref for WriteTx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match &self.inner {
            Inner::Owned(Some(tx)) | Inner::Borrowed(Some(tx), _) => tx,
            Inner::Owned(None) | Inner::Borrowed(None, _) => {
                unreachable!("the transaction is only taken when the WriteTx is consumed")
            }
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match &mut self.inner {
            Inner::Owned(Some(tx)) | Inner::Borrowed(Some(tx), _) => tx,
            Inner::Owned(None) | Inner::Borrowed(None, _) => {
                unreachable!("the transaction is only taken when the WriteTx is consumed")
            }
        }
    }
}
