//! `synchub console --listen ADDR [--database URL] [--config-dir DIR]`: the
//! ops console (synchub-console) served alone; and `synchub users
//! add|list`: the people who may sign in to it, with their roles.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use clap::{Subcommand, ValueEnum};
use synchub_console::{Console, ConsoleConfig, PipelineHandle, MIN_PASSWORD_CHARS};
use synchub_store::users::Role;
use synchub_store::Store;

use crate::commands::{engine_with, open_store, token_vault};
use crate::output::{emit, Table};

#[derive(Debug, Subcommand)]
pub enum UsersAction {
    /// Add a user, or give an existing one a new role and password (their
    /// sessions end). The password is asked for on the terminal.
    Add {
        /// Login name.
        name: String,
        /// What the user may do.
        #[arg(long, value_enum)]
        role: UserRole,
        /// Read the password from the first line of standard input instead.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Every user with their role.
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UserRole {
    /// Reads every page; changes nothing.
    Viewer,
    /// Also resolves, replays, merges and unmerges.
    Operator,
    /// Also sees the audit log and the users.
    Admin,
}

impl From<UserRole> for Role {
    fn from(r: UserRole) -> Role {
        match r {
            UserRole::Viewer => Role::Viewer,
            UserRole::Operator => Role::Operator,
            UserRole::Admin => Role::Admin,
        }
    }
}

/// The console over `store`, its cookies Secure when people reach it
/// over https.
pub fn console(
    store: Store,
    pipelines: Vec<PipelineHandle>,
    public_url: Option<&str>,
) -> anyhow::Result<Console> {
    let secure_cookies = match public_url.map(str::trim) {
        None | Some("") => false,
        Some(u) if u.starts_with("https://") => true,
        Some(u) if u.starts_with("http://") => false,
        Some(u) => bail!("--public-url `{u}` must start with https:// or http://"),
    };
    Ok(Console::new(
        store,
        pipelines,
        ConsoleConfig {
            secure_cookies,
            ..ConsoleConfig::default()
        },
    )?)
}

/// The pipelines of a folder, for replaying dead letters; a file that does
/// not load is skipped with why.
fn pipelines_of(store: &Store, dir: &Path) -> anyhow::Result<Vec<PipelineHandle>> {
    let mut out = Vec::new();
    for file in crate::pipeline::toml_files(dir)? {
        let loaded = match crate::pipeline::load(&file) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("skipping a pipeline file: {e}");
                continue;
            }
        };
        let connections = match loaded.connections_with(Some(token_vault(store))) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skipping a pipeline file: {e}");
                continue;
            }
        };
        out.push(PipelineHandle {
            name: loaded.config.name.clone(),
            engine: Arc::new(engine_with(store.clone(), &loaded, connections)),
            every: loaded
                .config
                .schedule
                .as_ref()
                .map(|s| std::time::Duration::from_secs(s.every_seconds)),
        });
    }
    Ok(out)
}

/// `synchub console`.
pub async fn serve(
    db: &str,
    listen: &str,
    config_dir: Option<&Path>,
    public_url: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| anyhow!("--listen `{listen}` is not HOST:PORT (e.g. 127.0.0.1:8751)"))?;
    let store = open_store(db).await?;
    let pipelines = match config_dir {
        Some(dir) => pipelines_of(&store, dir)?,
        None => Vec::new(),
    };
    let users = store.users().await?.len();
    let app = synchub_console::router(console(store.clone(), pipelines, public_url)?);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    println!(
        "synchub console: {} on http://{bound}/",
        store.display_url()
    );
    if users == 0 {
        println!("  no users yet: add one with `synchub users add NAME --role admin`");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::daemon::wait_for_stop())
        .await
        .map_err(|e| anyhow!("console server failed: {e}"))?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.chars().count() > 64 {
        bail!("a user name has 1 to 64 characters");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("user name `{name}` has a space or a control character; use letters, digits, '.', '-', '_' or '@'");
    }
    Ok(())
}

/// The new password: the first line of stdin, or asked twice on the
/// terminal. Errors never say "password" before a word: the log redactor
/// would take the word for a password and hide it.
fn read_password(name: &str, from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| anyhow!("cannot read standard input: {e}"))?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        if !std::io::stdin().is_terminal() {
            bail!("no terminal to prompt on: give the new one as one line on standard input with --password-stdin");
        }
        let first = rpassword::prompt_password(format!("password for {name}: "))
            .map_err(|e| anyhow!("cannot read from the terminal: {e}"))?;
        let again = rpassword::prompt_password("the same password again: ")
            .map_err(|e| anyhow!("cannot read from the terminal: {e}"))?;
        if first != again {
            bail!("the two passwords differ; nothing was changed");
        }
        first
    };
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("passwords need at least {MIN_PASSWORD_CHARS} characters; nothing was changed");
    }
    Ok(password)
}

/// `synchub users add|list`.
pub async fn users(db: &str, action: UsersAction) -> anyhow::Result<ExitCode> {
    match action {
        UsersAction::Add {
            name,
            role,
            password_stdin,
        } => {
            check_name(&name)?;
            let password = read_password(&name, password_stdin)?;
            let hash = synchub_console::hash_password(&password)?;
            drop(password);
            let store = open_store(db).await?;
            let role = Role::from(role);
            if store.put_user(&name, role, &hash).await? {
                emit(&format!("added user {name} ({role})\n"))?;
            } else {
                emit(&format!(
                    "user {name} now has the {role} role and the new password; their sessions were ended\n"
                ))?;
            }
        }
        UsersAction::List => {
            let store = open_store(db).await?;
            let users = store.users().await?;
            if users.is_empty() {
                emit("no users (synchub users add NAME --role admin)\n")?;
            } else {
                let mut t = Table::new(&["NAME", "ROLE", "ADDED"]);
                for u in users {
                    t.row(vec![u.name, u.role.to_string(), u.created_at]);
                }
                emit(&t.render(0))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
