//! `registry-login`: log in to a private package registry with OAuth, print a token, fetch
//! from the registry, log out. See the crate documentation for the picture.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use registry_login::{
    check_url, default_dir, ConfigFile, LoginError, RegistryClient, RegistryLogin,
};
use tenure_store::Store;
use tenure_tokio::BrowserMode;

/// Reach a private package registry with OAuth.
#[derive(Debug, Parser)]
#[command(name = "registry-login", version, about)]
struct Cli {
    /// The configuration file (default: ~/.config/registry-login/config.json).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where credentials are stored (default: ~/.local/share/registry-login).
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Log in to a registry through the browser and remember how.
    Login {
        /// The registry's URL.
        registry: String,
        /// The authorization server's issuer (needed the first time).
        #[arg(long)]
        issuer: Option<String>,
        /// A scope to ask for; repeat for several.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A client id the registry handed out, if any.
        #[arg(long)]
        client_id: Option<String>,
        /// The loopback callback port.
        #[arg(long)]
        redirect_port: Option<u16>,
        /// Print the login URL instead of opening a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// Print a valid access token (never opens a browser).
    Token {
        /// The registry's URL.
        registry: String,
    },
    /// Fetch a path from the registry with the token.
    Get {
        /// The registry's URL.
        registry: String,
        /// The path to fetch.
        path: String,
    },
    /// Drop the tokens; the configuration and registration stay.
    Logout {
        /// The registry's URL.
        registry: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(match error {
                LoginError::NotConfigured { .. } | LoginError::InsecureUrl(_) => 2,
                LoginError::LoginRequired { .. } | LoginError::Unauthorized { .. } => 4,
                _ => 1,
            })
        }
    }
}

async fn run(cli: Cli) -> Result<(), LoginError> {
    let config_path = match cli.config {
        Some(path) => path,
        None => default_dir("XDG_CONFIG_HOME", ".config")
            .ok_or_else(|| missing_home("--config FILE"))?
            .join("config.json"),
    };
    let data = match cli.data {
        Some(dir) => dir,
        None => default_dir("XDG_DATA_HOME", ".local/share")
            .ok_or_else(|| missing_home("--data DIR"))?,
    };
    let mut config = ConfigFile::load(&config_path)?;
    let open_store = || -> Result<Arc<dyn Store>, LoginError> {
        let store =
            tenure_sled::SledStore::open(&data).map_err(|e| LoginError::Tenure(e.to_string()))?;
        Ok(Arc::new(store))
    };
    let configured = |config: &ConfigFile, registry: &str| {
        config
            .registries
            .get(registry)
            .cloned()
            .ok_or_else(|| LoginError::NotConfigured {
                registry: registry.to_string(),
            })
    };
    match cli.command {
        Command::Login {
            registry,
            issuer,
            scopes,
            client_id,
            redirect_port,
            no_browser,
        } => {
            check_url("registry URL", &registry)?;
            let mut login = match (config.registries.get(&registry), issuer) {
                (_, Some(issuer)) => RegistryLogin {
                    issuer,
                    scopes: Vec::new(),
                    client_id: None,
                    redirect_port: tenure_core::config::DEFAULT_REDIRECT_PORT,
                },
                (Some(known), None) => known.clone(),
                (None, None) => return Err(LoginError::NotConfigured { registry }),
            };
            if !scopes.is_empty() {
                login.scopes = scopes;
            }
            if client_id.is_some() {
                login.client_id = client_id;
            }
            if let Some(port) = redirect_port {
                login.redirect_port = port;
            }
            check_url("issuer", &login.issuer)?;
            let browser = if no_browser {
                BrowserMode::Print
            } else {
                BrowserMode::Open
            };
            let client = RegistryClient::start(&registry, &login, open_store()?, browser).await?;
            client.login().await?;
            config.registries.insert(registry.clone(), login);
            config.save(&config_path)?;
            println!("logged in to {registry}");
        }
        Command::Token { registry } => {
            let login = configured(&config, &registry)?;
            let client =
                RegistryClient::start(&registry, &login, open_store()?, BrowserMode::Print).await?;
            println!("{}", client.bearer().await?.secret());
        }
        Command::Get { registry, path } => {
            let login = configured(&config, &registry)?;
            let client =
                RegistryClient::start(&registry, &login, open_store()?, BrowserMode::Print).await?;
            print!("{}", client.get(&path).await?);
        }
        Command::Logout { registry } => {
            let login = configured(&config, &registry)?;
            let client =
                RegistryClient::start(&registry, &login, open_store()?, BrowserMode::Print).await?;
            client.logout().await?;
            println!("logged out of {registry}; `registry-login login {registry}` logs in again");
        }
    }
    Ok(())
}

fn missing_home(option: &str) -> LoginError {
    LoginError::Config {
        path: "(none)".into(),
        reason: format!("HOME is not set, so there is no default location; pass {option}"),
    }
}
