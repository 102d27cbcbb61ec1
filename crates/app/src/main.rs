//! `voelgoed`: the VoelgoedEvents platform in one binary.

use std::{net::SocketAddr, process::ExitCode};

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use voelgoed::{bench, config::ConfigArgs, demo, server};

#[derive(Parser)]
#[command(
    name = "voelgoed",
    version,
    about = "Event ticketing and access control: one binary, SQLite by default, PostgreSQL + Redis to scale out."
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrates the database first).
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080]
        #[arg(long, env = "VOELGOED_ADDR")]
        addr: Option<SocketAddr>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Run the server with a seeded demo organization, event and device, and print what to open.
    Demo {
        /// Address to listen on [default: 127.0.0.1:8080]
        #[arg(long, env = "VOELGOED_ADDR")]
        addr: Option<SocketAddr>,
    },
    /// Load-test a fresh server over loopback HTTP and print throughput and latency per scenario.
    Bench(bench::BenchArgs),
    /// Measure the job queue (beside a raw insert+update baseline of the same database) and webhook deliveries.
    BenchJobs(voelgoed::bench_jobs::BenchJobsArgs),
    /// Check the inventory counters against the ledger and repair drift (prints the repairs as JSON).
    Reconcile {
        /// How long a difference must stand still before it is repaired, in seconds (a live node's counters move) [default: 60]
        #[arg(long, default_value_t = 60)]
        window_secs: u64,
    },
    /// The audit log: `verify` recomputes every org's hash chain and reports edited, deleted or truncated entries.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Inspect the job queue: list jobs, retry failed ones, discard ones not worth running.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// An organization's ticket-signing keys: `rotate` makes a new active key (the old ones still verify); `list` shows them.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Serve a local stand-in for Stripe's payments API (for tests and load runs; prints its base URL).
    StripeStandin(voelgoed::stripe_standin::StandinArgs),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// A new active signing key for the organization; prints it (public half) as JSON.
    Rotate {
        /// The organization (slug).
        #[arg(long)]
        org: String,
    },
    /// The organization's keys (public halves), newest first, as JSON.
    List {
        #[arg(long)]
        org: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every org's chain (or one org's); exits non-zero when any entry was tampered with.
    Verify {
        /// Only this organization (slug).
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Jobs newest first, as JSON lines, plus each queue's depth on stderr.
    List {
        /// failed (dead or discarded), available, running, done, dead or discarded [default: failed]
        #[arg(long, default_value = "failed")]
        state: String,
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Run a dead or discarded job again with a fresh set of attempts.
    Retry { id: uuid::Uuid },
    /// Give up on a waiting or dead job (it stays, discarded).
    Discard { id: uuid::Uuid },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organization with its owner; prints the owner's API key (shown once).
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner_email: String,
        /// The owner's password; a random one is generated and printed when left out.
        #[arg(long, env = "VOELGOED_OWNER_PASSWORD", hide_env_values = true)]
        owner_password: Option<String>,
    },
}

/// Logs go to stderr, so stdout carries only what a command prints (JSON).
fn init_tracing() {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_env("VOELGOED_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    if std::env::var("VOELGOED_LOG_FORMAT").as_deref() == Ok("json") {
        fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .json()
            .init();
    } else {
        fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { addr } => {
            let config = cli.config.resolve(addr)?;
            let listener = TcpListener::bind(config.addr).await?;
            let node = server::start(config, listener).await?;
            server::shutdown_signal().await;
            tracing::info!("shutting down");
            node.stop().await;
        }
        Command::Migrate => {
            let config = cli.config.resolve(None)?;
            let db = kernel::Db::connect(&config).await?;
            db.migrate().await?;
            println!("migrations applied ({:?})", db.backend());
        }
        Command::Org {
            command:
                OrgCommand::Create {
                    slug,
                    name,
                    owner_email,
                    owner_password,
                },
        } => {
            let config = cli.config.resolve(None)?;
            let (_stop, stopped) = tokio::sync::watch::channel(false);
            let app = server::build(config, stopped, kernel::Clock::system())
                .await?
                .app;
            let generated = owner_password.is_none();
            let password = owner_password.unwrap_or_else(|| {
                kernel::auth::PlainToken::generate("")
                    .expose()
                    .chars()
                    .take(20)
                    .collect()
            });
            let out = platform::identity::create_org(
                &app,
                platform::identity::NewOrg {
                    email: owner_email,
                    password: password.clone(),
                    owner_name: None,
                    org_name: name,
                    org_slug: slug,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{}", kernel::ApiError::from(e).problem().detail))?;
            let mut json = serde_json::to_value(&out)?;
            if generated {
                json["owner_password"] = password.into();
            }
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Command::Demo { addr } => {
            let config = cli.config.resolve(addr)?;
            let seed_file = config.data_dir.join("demo.json");
            let listener = TcpListener::bind(config.addr).await?;
            let base = config.public_url.clone();
            let node = server::start(config, listener).await?;
            let seed = demo::seed(&node.app, &seed_file).await?;
            println!("{}", demo::banner(&base, &seed));
            server::shutdown_signal().await;
            node.stop().await;
        }
        Command::Bench(args) => bench::run(cli.config, args).await?,
        Command::BenchJobs(args) => voelgoed::bench_jobs::run(cli.config, args).await?,
        Command::StripeStandin(args) => voelgoed::stripe_standin::run(args).await?,
        Command::Reconcile { window_secs } => {
            let config = cli.config.resolve(None)?;
            let (_stop, stopped) = tokio::sync::watch::channel(false);
            let app = server::build(config, stopped, kernel::Clock::system())
                .await?
                .app;
            let repaired = platform::sales::integrity::reconcile(
                &app,
                std::time::Duration::from_secs(window_secs),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&repaired)?);
        }
        Command::Keys { command } => {
            let config = cli.config.resolve(None)?;
            let (_stop, stopped) = tokio::sync::watch::channel(false);
            let app = server::build(config, stopped, kernel::Clock::system())
                .await?
                .app;
            let slug = match &command {
                KeysCommand::Rotate { org } | KeysCommand::List { org } => org.clone(),
            };
            let actor = platform::identity::operator(&app, &slug)
                .await
                .map_err(|e| anyhow::anyhow!("{}", kernel::ApiError::from(e).problem().detail))?;
            let out = match command {
                KeysCommand::Rotate { .. } => {
                    serde_json::to_value(platform::tickets::rotate_key(&app, &actor).await?)?
                }
                KeysCommand::List { .. } => {
                    serde_json::to_value(platform::tickets::list_keys(&app, &actor).await?)?
                }
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Audit {
            command: AuditCommand::Verify { org },
        } => {
            let config = cli.config.resolve(None)?;
            let db = kernel::Db::connect(&config).await?;
            db.migrate().await?;
            // Seal what is waiting first, so the check covers it.
            kernel::audit::seal(&db).await?;
            let only = match org {
                Some(slug) => Some(
                    kernel::db_run!(&db, p => sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM orgs WHERE slug = $1").bind(&slug).fetch_optional(p).await)?
                        .ok_or_else(|| anyhow::anyhow!("no organization {slug}"))?,
                ),
                None => None,
            };
            let verdicts = kernel::audit::verify(&db, only).await?;
            db.close().await;
            let broken = verdicts.iter().filter(|v| !v.problems.is_empty()).count();
            println!("{}", serde_json::to_string_pretty(&verdicts)?);
            anyhow::ensure!(
                broken == 0,
                "the audit log of {broken} organization(s) was tampered with"
            );
        }
        Command::Jobs { command } => {
            let config = cli.config.resolve(None)?;
            let db = kernel::Db::connect(&config).await?;
            db.migrate().await?;
            let clock = kernel::Clock::system();
            match command {
                JobsCommand::List {
                    state,
                    queue,
                    limit,
                } => {
                    for s in kernel::jobs::stats(&db, &clock).await? {
                        eprintln!(
                            "queue {}: {} waiting (oldest {:.0} s), {} running, {} dead",
                            s.queue, s.waiting, s.oldest_wait_secs, s.running, s.dead
                        );
                    }
                    let filter = kernel::jobs::Filter {
                        state: Some(state),
                        queue,
                        limit,
                        ..Default::default()
                    };
                    for j in kernel::jobs::list(&db, &filter).await? {
                        println!("{}", serde_json::to_string(&j)?);
                    }
                }
                JobsCommand::Retry { id } => {
                    anyhow::ensure!(
                        kernel::jobs::retry(&db, &clock, id, None).await?,
                        "no dead or discarded job {id}"
                    );
                    println!("job {id} queued again");
                }
                JobsCommand::Discard { id } => {
                    anyhow::ensure!(
                        kernel::jobs::discard(&db, &clock, id, None).await?,
                        "no waiting or dead job {id}"
                    );
                    println!("job {id} discarded");
                }
            }
            db.close().await;
        }
    }
    Ok(())
}
