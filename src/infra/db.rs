//! The Postgres pool, database creation and the embedded migrations.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::Postgres;
use sqlx::migrate::{Migrate, MigrateDatabase, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};

use secrecy::ExposeSecret as _;

use super::config::Config;

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
    PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .context("cannot connect to the database named in DATABASE_URL")
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
