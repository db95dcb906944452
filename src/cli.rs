//! The `kiss-auth` command line: serve, migrate, and bootstrap records without SQL. Every command
//! reads the same configuration and prints JSON on stdout; errors go to stderr with a non-zero exit.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::app;
use crate::domain::Error;
use crate::features::admin::{self, NewAdmin};
use crate::features::api_tokens::{self, NewApiToken};
use crate::features::companies::{self, NewCompany};
use crate::http::AppState;
use crate::infra::clock::SharedClock;
use crate::infra::config::Config;
use crate::infra::crypto::SecretHasher;
use crate::infra::{db, telemetry};
use crate::services::audit::{Actor, Origin};

#[derive(Debug, Parser)]
#[command(
    name = "kiss-auth",
    version,
    about = "Authentication for self-storage operators"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and migrate the database, then serve until SIGINT/SIGTERM (the default).
    Serve,
    /// Create the database if missing and apply migrations; prints {"applied": N}.
    Migrate,
    /// Manage companies.
    Company {
        #[command(subcommand)]
        command: CompanyCommand,
    },
    /// Manage administrators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage company API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CompanyCommand {
    /// Create a company.
    Create {
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an admin; the password is read from stdin. Without --company: a super admin.
    Create {
        #[arg(long)]
        email: String,
        /// The company this admin manages.
        #[arg(long)]
        company: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an API token for a company; the token is printed once.
    Create {
        #[arg(long)]
        company: String,
        #[arg(long)]
        name: String,
    },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("kiss-auth: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kiss-auth: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kiss-auth: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command, config: Config) -> anyhow::Result<()> {
    if let Command::Serve = command {
        return serve(config).await;
    }
    let mut config = config;
    let pool = db::connect(&config).await?;
    match command {
        Command::Serve => unreachable!("handled above"),
        Command::Migrate => print(&json!({ "applied": db::migrate(&pool).await? })),
        Command::Company {
            command: CompanyCommand::Create { name },
        } => {
            let new = NewCompany::named(name).map_err(cli_error)?;
            print(
                &companies::create(&pool, new, Actor::system(), &Origin::default(), now())
                    .await
                    .map_err(cli_error)?,
            )
        }
        Command::Admin {
            command: AdminCommand::Create { email, company },
        } => {
            let company_id = match company {
                Some(raw) => Some(company_id(&pool, &raw).await?),
                None => None,
            };
            let new = NewAdmin {
                email,
                password: read_password()?,
                company_id,
            };
            let admin = admin::create(&pool, new, Actor::system(), &Origin::default(), now())
                .await
                .map_err(cli_error)?;
            print(&admin)
        }
        Command::Token {
            command: TokenCommand::Create { company, name },
        } => {
            // Without KISS_APP_KEY (development), the key the server uses is the database's.
            db::migrate(&pool).await?;
            db::keep_development_key(&pool, &mut config).await?;
            let company_id = company_id(&pool, &company).await?;
            let new = NewApiToken::named(name).map_err(cli_error)?;
            let hasher = SecretHasher::new(config.app_key.clone());
            let token = api_tokens::create(
                &pool,
                &hasher,
                company_id,
                new,
                Actor::system(),
                &Origin::default(),
                now(),
            )
            .await
            .map_err(cli_error)?;
            print(&token)
        }
    }
}

/// How often expired rows (idempotency records, sessions, tokens, codes) are deleted.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

async fn serve(mut config: Config) -> anyhow::Result<()> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // Installed before the address is announced: whoever reads it may signal at once.
    let shutdown = shutdown_signal().context("cannot install the signal handlers")?;
    let pool = db::connect(&config).await?;
    let applied = db::migrate(&pool).await?;
    db::keep_development_key(&pool, &mut config).await?;
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on KISS_BIND={}", config.bind))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, migrations_applied = applied, "kiss-auth is listening");
    // The bound address on stdout, for whoever started the server with port 0.
    print(&json!({ "listening": address.to_string() }))?;
    let state = AppState::new(pool.clone(), config, SharedClock::system())?;
    let purger = app::maintenance::spawn(state.clone(), PURGE_EVERY);
    let deliveries = app::deliveries::spawn(state.clone());
    app::serve(listener, state, shutdown).await?;
    purger.abort();
    deliveries.abort();
    pool.close().await;
    tracing::info!("kiss-auth stopped");
    Ok(())
}

/// A future that resolves on SIGINT or SIGTERM; the handlers are installed when this returns.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

/// A company id given on the command line, checked to exist.
async fn company_id(pool: &PgPool, raw: &str) -> anyhow::Result<Uuid> {
    let id = Uuid::try_parse(raw).map_err(|_| anyhow::anyhow!("{raw:?} is not a company id"))?;
    companies::find(pool, id)
        .await
        .map_err(cli_error)?
        .map(|company| company.id)
        .ok_or_else(|| anyhow::anyhow!("no company has the id {id}"))
}

/// The password from stdin, with one trailing newline removed.
fn read_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("cannot read the password from stdin")?;
    if password.ends_with('\n') {
        password.pop();
        if password.ends_with('\r') {
            password.pop();
        }
    }
    Ok(password)
}

fn now() -> chrono::DateTime<chrono::Utc> {
    SharedClock::system().now()
}

fn print(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// The message a client would see, or the full cause for an internal failure (operators only).
fn cli_error(err: Error) -> anyhow::Error {
    match err {
        Error::Internal(cause) => cause,
        other => anyhow::anyhow!(crate::http::error::message(&other)),
    }
}
