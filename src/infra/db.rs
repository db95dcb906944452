//! The Postgres pool, database creation and the embedded migrations.

use std::str::FromStr as _;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::Postgres;
use sqlx::Transaction;
use sqlx::migrate::{Migrate, MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use secrecy::ExposeSecret as _;

use super::config::{AppKey, Config};

pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Creates the database if it does not exist yet, then opens a pool to it.
pub async fn connect(config: &Config) -> anyhow::Result<PgPool> {
    let url = config.database_url.expose_secret();
    let exists = Postgres::database_exists(url)
        .await
        .context("cannot reach Postgres at DATABASE_URL")?;
    if !exists {
        Postgres::create_database(url)
            .await
            .context("cannot create the database named in DATABASE_URL")?;
        tracing::info!("created the database named in DATABASE_URL");
    }
    // Set at connection start-up, so it costs no round trip: no statement waits on a lock longer
    // than this (it fails with 55P03, which requests answer as a 503).
    let options = PgConnectOptions::from_str(url)
        .context("DATABASE_URL is not a valid Postgres URL")?
        .options([(
            "lock_timeout",
            format!("{}ms", config.lock_timeout.as_millis()),
        )]);
    PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // No ping before each use: it is a round trip per acquire (two per PMS write). A
        // connection that died while idle fails its first statement instead, which is answered
        // as a 503 with Retry-After (`domain::error`), and is then dropped from the pool.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .context("cannot connect to the database named in DATABASE_URL")
}

/// Begins a transaction. A caller dropped while `BEGIN` is on the wire (its client went away, its
/// deadline passed) must not leave the connection in a transaction sqlx does not know about: the
/// pool would hand it out again, and the next user's autocommit statements would run inside it,
/// uncommitted. So `BEGIN` runs in a task of its own, which always finishes it; a transaction
/// nobody takes is then rolled back when the task drops it.
pub async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.begin().await })
        .await
        .unwrap_or(Err(sqlx::Error::WorkerCrashed))
}

/// Commits a transaction. A caller dropped while `COMMIT` is on the wire would leave sqlx to queue
/// a `ROLLBACK` behind it (a no-op that Postgres answers with a warning, the commit having gone
/// through); in a task of its own the commit simply finishes.
pub async fn commit(tx: Transaction<'static, Postgres>) -> Result<(), sqlx::Error> {
    tokio::spawn(tx.commit())
        .await
        .unwrap_or(Err(sqlx::Error::WorkerCrashed))
}

/// Development without `KISS_APP_KEY`: replaces the configuration's stand-in key with the one kept
/// in the database, storing the stand-in first if no process has stored one yet. Every process and
/// every restart then hashes tokens with the same key. A configured key is left alone.
pub async fn keep_development_key(pool: &PgPool, config: &mut Config) -> anyhow::Result<()> {
    if !config.app_key.ephemeral {
        return Ok(());
    }
    let stored: Vec<u8> = sqlx::query_scalar(
        "WITH made AS (
             INSERT INTO development_app_key (key) VALUES ($1)
             ON CONFLICT (singleton) DO NOTHING RETURNING key
         )
         SELECT key FROM made UNION ALL SELECT key FROM development_app_key LIMIT 1",
    )
    .bind(config.app_key.as_bytes())
    .fetch_one(pool)
    .await
    .context("cannot read the development app key")?;
    config.app_key = AppKey::from_bytes(stored)
        .context("the stored development app key is shorter than 32 bytes")?;
    Ok(())
}

/// Applies pending migrations and returns how many were newly applied.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<usize> {
    let pending = {
        let mut conn = pool.acquire().await?;
        conn.ensure_migrations_table().await?;
        let applied = conn.list_applied_migrations().await?;
        MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .filter(|m| !applied.iter().any(|a| a.version == m.version))
            .count()
    };
    MIGRATOR.run(pool).await.context("migration failed")?;
    Ok(pending)
}
