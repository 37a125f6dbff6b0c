//! `gateway`: an HTTP server in front of several upstream providers. It registers itself with
//! each upstream's authorization server by DCR (client credentials) and keeps the credentials
//! in Redis, so every replica of the gateway shares them: the replicas register once per
//! upstream and renew each secret once between them, coordinated by Tenure's lease in the
//! store.
//!
//! ```text
//!   client ──GET /call/NAME──▶ gateway replica ──▶ BearerAuth (tenure-reqwest) ──▶ upstream's API
//!                                                      │ token(), challenge()
//!                                                      ▼
//!                                                   Tenure ──▶ upstream's AS
//!                                                      └── Redis (shared record, lease)
//! ```
//!
//! ```text
//! gateway --listen 127.0.0.1:8080 --store redis://127.0.0.1:6379/0 \
//!         --upstream a=https://auth.a.example=https://api.a.example/v1/ping \
//!         --upstream b=https://auth.b.example=https://api.b.example/ping
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use reqwest_middleware::ClientWithMiddleware;
use serde_json::json;
use tenure_core::Duration;
use tenure_reqwest::BearerAuth;
use tenure_store::Store;
use tenure_tokio::{ClientConfig, Grant, Tenure, TokenError};

/// An HTTP gateway whose upstream credentials Tenure keeps alive.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
struct Args {
    /// Where to listen (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// The shared store: redis://HOST:PORT/DB or redis-sentinel://HOST:PORT/MASTER/DB.
    #[arg(long)]
    store: String,
    /// An upstream: NAME=ISSUER=RESOURCE_URL. Repeat for several.
    #[arg(
        long = "upstream",
        value_name = "NAME=ISSUER=RESOURCE",
        required = true
    )]
    upstreams: Vec<String>,
    /// A scope to ask every upstream for.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Renew a client secret once it expires within this many seconds.
    #[arg(long, default_value_t = 24 * 3600)]
    renew_within: i64,
}

/// One upstream: an HTTP client that carries its tokens, and the API the gateway calls.
struct Upstream {
    http: ClientWithMiddleware,
    resource: String,
}

#[derive(Clone)]
struct Gateway {
    upstreams: Arc<HashMap<String, Upstream>>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(error) = run(args).await {
        eprintln!("gateway: {error}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let store: Arc<dyn Store> = Arc::new(
        tenure_redis::RedisStore::open(&args.store, tenure_redis::Options::default())
            .await
            .map_err(|e| e.to_string())?,
    );
    let mut upstreams = HashMap::new();
    for spec in &args.upstreams {
        let mut parts = spec.splitn(3, '=');
        let (Some(name), Some(issuer), Some(resource)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "--upstream `{spec}` is not NAME=ISSUER=RESOURCE_URL; for example \
                 a=https://auth.a.example=https://api.a.example/ping"
            ));
        };
        let mut config = ClientConfig::for_issuer(name, issuer);
        config.grant = Grant::ClientCredentials;
        config.scopes = args.scopes.clone();
        config.renew_within = Duration::from_secs(args.renew_within);
        config.client_name = format!("gateway ({name})");
        config.software_id = Some("tenure-example-gateway".into());
        let tenure = Tenure::builder(config, store.clone())
            .build()
            .await
            .map_err(|e| format!("upstream `{name}`: {e}"))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let upstream = Upstream {
            http: reqwest_middleware::ClientBuilder::new(http)
                .with(BearerAuth::new(tenure))
                .build(),
            resource: resource.to_string(),
        };
        upstreams.insert(name.to_string(), upstream);
    }
    let gateway = Gateway {
        upstreams: Arc::new(upstreams),
    };
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/call/{name}", get(call))
        .with_state(gateway);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    println!(
        "listening on http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}

/// Calls upstream `name`'s API with a token Tenure keeps valid, and relays its answer.
async fn call(State(gateway): State<Gateway>, Path(name): Path<String>) -> Response {
    let Some(upstream) = gateway.upstreams.get(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no upstream named `{name}`"));
    };
    let answer = upstream.http.get(&upstream.resource).send().await;
    match answer {
        Ok(answer) => {
            let status =
                StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = answer.text().await.unwrap_or_default();
            (status, body).into_response()
        }
        Err(reqwest_middleware::Error::Middleware(cause)) => {
            // No token could be had: say whether retrying later can help.
            let status = match cause.downcast_ref::<TokenError>() {
                Some(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            };
            error(status, format!("upstream `{name}`: {cause:#}"))
        }
        Err(_) => error(
            StatusCode::BAD_GATEWAY,
            format!("upstream `{name}`'s API could not be reached"),
        ),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
