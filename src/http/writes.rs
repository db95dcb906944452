//! How a PMS write gets its database connection: a transaction of its own, or — when the request
//! carries an Idempotency-Key — the idempotency layer's transaction, so the write and its stored
//! response commit together. Never autocommit: a request dropped at its deadline (the 503 of
//! `KISS_REQUEST_TIMEOUT_SECS`) must leave nothing behind, and a statement still waiting on a lock
//! in Postgres would otherwise commit after the client was told it failed.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::AppState;
use crate::domain::{Error, Result};
use crate::infra::db;

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
}

impl FromRequestParts<AppState> for Writes {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        Ok(Writes {
            pool: state.db.clone(),
            slot: parts.extensions.get::<TxSlot>().cloned(),
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
                let mut tx = Self::borrow(slot)?;
                sqlx::query(&format!("SAVEPOINT {}", HANDLER_SAVEPOINT))
                    .execute(&mut *tx)
                    .await?;
                slot.lent().savepoint = true;
                Ok(tx)
            }
            None => Ok(WriteTx(Inner::Owned(Some(db::begin(&self.pool).await?)))),
        }
    }

    /// A transaction for a write that is one statement: inside the idempotency layer's
    /// transaction it needs no savepoint (the statement fails or succeeds whole).
    pub async fn single_statement(&self) -> Result<WriteTx> {
        match &self.slot {
            Some(slot) => Self::borrow(slot),
            None => Ok(WriteTx(Inner::Owned(Some(db::begin(&self.pool).await?)))),
        }
    }

    fn borrow(slot: &TxSlot) -> Result<WriteTx> {
        let tx = slot.take().ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "the idempotency transaction was taken twice"
            ))
        })?;
        Ok(WriteTx(Inner::Borrowed(Some(tx), slot.clone())))
    }
}

/// A connection to write through; derefs to `PgConnection`.
pub struct WriteTx(Inner);

enum Inner {
    Owned(Option<PgTx>),
    /// Goes back to the idempotency layer, which commits or rolls back after storing the answer.
    Borrowed(Option<PgTx>, TxSlot),
}

impl WriteTx {
    /// Makes the write durable: commits an owned transaction; a borrowed one is handed back to the
    /// idempotency layer (which commits it with the stored response).
    pub async fn commit(mut self) -> Result<()> {
        if let Inner::Owned(tx) = &mut self.0
            && let Some(tx) = tx.take()
        {
            tx.commit().await?;
        }
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Inner::Borrowed(tx, slot) = &mut self.0
            && let Some(tx) = tx.take()
        {
            slot.put(tx);
        }
    }
}

impl Deref for WriteTx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match &self.0 {
            Inner::Owned(Some(tx)) | Inner::Borrowed(Some(tx), _) => tx,
            Inner::Owned(None) | Inner::Borrowed(None, _) => {
                unreachable!("the transaction is only taken when the WriteTx is consumed")
            }
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match &mut self.0 {
            Inner::Owned(Some(tx)) | Inner::Borrowed(Some(tx), _) => tx,
            Inner::Owned(None) | Inner::Borrowed(None, _) => {
                unreachable!("the transaction is only taken when the WriteTx is consumed")
            }
        }
    }
}
