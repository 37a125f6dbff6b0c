//! `tenure demo`: one whole lifecycle against the simulated provider, in virtual time.
//!
//! The script is a story in five acts. Each act runs one operation and checks what must be
//! true afterwards (which requests went out, what the outcome was); if the core ever behaves
//! otherwise, the demo says so and exits 1, so the demo doubles as a smoke test.

use serde_json::json;
use tenure_core::{
    AuthMethod, ClientConfig, Duration, Error, Operation, RequestKind, SecretExpiry, Timestamp,
};
use tenure_sim::driver::{Entry, Outcome, Simulation};
use tenure_sim::provider::{Endpoint, Fault, ProviderConfig, SimulatedProvider};

use crate::exit;

/// Runs the demo and returns the exit code.
pub fn run(json: bool) -> u8 {
    let mut printer = Printer { json };
    match script(&mut printer) {
        Ok(()) => exit::OK,
        Err(problem) => {
            eprintln!("tenure demo: the lifecycle did not go as expected: {problem}");
            exit::FAILURE
        }
    }
}

/// What an act expects of its operation's outcome.
enum Expect {
    Token,
    SecretExpired,
}

fn script(printer: &mut Printer) -> Result<(), String> {
    let start = Timestamp::parse_rfc3339("2026-01-05T09:00:00Z").ok_or("bad start time")?;
    let provider = SimulatedProvider::new(ProviderConfig {
        secret_lifetime: Some(Duration::from_hours(7 * 24)),
        access_token_lifetime: Duration::from_hours(1),
        ..ProviderConfig::default()
    });
    let mut config = ClientConfig::for_issuer("demo", provider.config().issuer.clone());
    config.auth_method = Some(AuthMethod::ClientSecretPost);
    config.scopes = vec!["read".into()];
    config.seed = [42; 32];
    let mut sim = Simulation::new(config, provider, start);
    printer.intro(&sim);

    act(
        printer,
        &mut sim,
        "1. First login: discover the server, register (RFC 7591), log in with PKCE",
        Operation::Login,
        Expect::Token,
    )?;
    expect_count(&sim, RequestKind::Registration, 1)?;

    sim.advance(Duration::from_hours(2));
    act(
        printer,
        &mut sim,
        "2. Two hours later the access token has expired: refresh it (the refresh token rotates)",
        Operation::Token,
        Expect::Token,
    )?;
    expect_count(&sim, RequestKind::Refresh, 1)?;

    sim.set_now(start + Duration::from_hours(6 * 24 + 1));
    sim.restart();
    act(
        printer,
        &mut sim,
        "3. Six days later a new process starts: the secret expires within 24 h, so it is renewed (RFC 7592)",
        Operation::Token,
        Expect::Token,
    )?;
    expect_count(&sim, RequestKind::RegistrationUpdate, 1)?;

    sim.advance(Duration::from_secs(600));
    sim.restart();
    let before = sim.requests().len();
    act(
        printer,
        &mut sim,
        "4. Ten minutes later another restart: the token is served from the stored record",
        Operation::Token,
        Expect::Token,
    )?;
    if sim.requests().len() != before {
        return Err("the warm start sent a request".into());
    }

    let renewed_expiry = match sim
        .stored()
        .and_then(|r| r.dcr.as_ref())
        .map(|d| d.secret_expires)
    {
        Some(SecretExpiry::At(at)) => at,
        other => return Err(format!("the renewed secret has no expiry: {other:?}")),
    };
    sim.provider
        .fail_always(Endpoint::Management, Fault::ServerError);
    sim.set_now(renewed_expiry + Duration::from_hours(1));
    sim.restart();
    act(
        printer,
        &mut sim,
        "5. The renewed secret has expired while the server's registration management is down: a hard error",
        Operation::Token,
        Expect::SecretExpired,
    )?;

    let presented = sim.provider.stats().expired_secret_presented;
    if presented != 0 {
        return Err(format!("an expired secret was sent {presented} times"));
    }
    printer.summary(&sim);
    Ok(())
}

fn act(
    printer: &mut Printer,
    sim: &mut Simulation,
    title: &str,
    op: Operation,
    expect: Expect,
) -> Result<(), String> {
    let outcome = sim.run(op).map_err(|e| e.to_string())?;
    printer.act(title, &sim.take_timeline());
    match (&expect, &outcome) {
        (Expect::Token, Outcome::Token { .. }) => Ok(()),
        (Expect::SecretExpired, Outcome::Failed(Error::SecretExpired { .. })) => Ok(()),
        _ => Err(format!("{title}: unexpected outcome {outcome:?}")),
    }
}

fn expect_count(sim: &Simulation, kind: RequestKind, expected: usize) -> Result<(), String> {
    let sent = sim.count(kind);
    if sent == expected {
        Ok(())
    } else {
        Err(format!(
            "{kind:?}: {sent} requests sent, expected {expected}"
        ))
    }
}

/// Prints the timeline for people, or as JSON lines for programs.
struct Printer {
    json: bool,
}

impl Printer {
    fn intro(&self, sim: &Simulation) {
        if !self.json {
            out!(
                "Tenure demo: one client's credential lifecycle against a simulated authorization"
            );
            out!(
                "server ({}), in virtual time. Secrets live 7 days and are renewed",
                sim.config().issuer.as_deref().unwrap_or("")
            );
            out!("within 24 h of expiry; access tokens live 1 hour.");
        }
    }

    fn act(&self, title: &str, entries: &[Entry]) {
        if self.json {
            for entry in entries {
                let line = entry.to_string();
                let (at, rest) = line.split_once("  ").unwrap_or((&line, ""));
                out!("{}", json!({"act": title, "at": at, "event": rest.trim()}));
            }
        } else {
            out!("\n{title}");
            for entry in entries {
                out!("  {entry}");
            }
        }
    }

    fn summary(&self, sim: &Simulation) {
        let counts = [
            ("metadata", RequestKind::ServerMetadata),
            ("registrations", RequestKind::Registration),
            ("renewals", RequestKind::RegistrationUpdate),
            ("code exchanges", RequestKind::CodeExchange),
            ("refreshes", RequestKind::Refresh),
        ];
        if self.json {
            let mut summary = serde_json::Map::new();
            for (name, kind) in counts {
                summary.insert(name.into(), json!(sim.count(kind)));
            }
            let presented = sim.provider.stats().expired_secret_presented;
            out!(
                "{}",
                json!({"summary": summary, "expired_secret_sent": presented})
            );
        } else {
            let parts: Vec<String> = counts
                .iter()
                .map(|(name, kind)| format!("{} {name}", sim.count(*kind)))
                .collect();
            out!("\nRequests sent: {}.", parts.join(", "));
            out!("The expired secret was never sent to the token endpoint.");
        }
    }
}
