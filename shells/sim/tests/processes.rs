//! Two processes sharing one store, driven step by step in every interleaving of their
//! commands: the real core twice, the simulated store and provider in between.
//!
//! INV-10 across processes: one token request in flight per grant among all processes sharing
//! a store; a rotated refresh token replaces the old one; a failed request never erases a
//! newer token.

use std::collections::VecDeque;

use tenure_core::{
    Client, ClientConfig, Command, Duration, Event, Grant, Input, OpId, Operation, Record,
    Timestamp,
};
use tenure_sim::provider::{ProviderConfig, Reply, SimulatedProvider};
use tenure_sim::store::SimStore;
use tenure_sim::Simulation;

fn start() -> Timestamp {
    Timestamp::parse_rfc3339("2026-04-01T08:00:00Z").unwrap()
}

fn config(issuer: &str, grant: Grant, seed: u8) -> ClientConfig {
    let mut config = ClientConfig::for_issuer("shared", issuer);
    config.scopes = vec!["read".into()];
    config.grant = grant;
    config.seed = [seed; 32];
    config
}

/// A logged-in (or, for client credentials, served) client whose access token has expired:
/// the store and the provider, handed to the processes.
fn expired(grant: Grant) -> (SimStore, SimulatedProvider, Record, Timestamp) {
    let provider = SimulatedProvider::new(ProviderConfig::default());
    let issuer = provider.config().issuer.clone();
    let mut sim = Simulation::new(config(&issuer, grant, 1), provider, start());
    let op = match grant {
        Grant::AuthorizationCode => Operation::Login,
        _ => Operation::Token,
    };
    assert!(sim.run(op).unwrap().is_token());
    sim.advance(Duration::from_hours(2));
    let now = sim.now();
    let record = sim.stored().unwrap().clone();
    (sim.store, sim.provider, record, now)
}

/// Runs one `token` operation in each of two processes, choosing which process moves next
/// from `order` (bit i: step i goes to process 1), until both have an outcome. Timers fire
/// when neither process has a command left.
fn interleave(grant: Grant, order: u64) -> (Vec<Event>, SimulatedProvider, SimStore) {
    let (mut store, mut provider, record, mut now) = expired(grant);
    let issuer = provider.config().issuer.clone();
    let mut processes: Vec<Client> = (0..2)
        .map(|i| {
            let mut client = Client::new(config(&issuer, grant, 10 + i));
            client.handle(
                now,
                Input::Start {
                    stored: Some(record.clone()),
                },
            );
            client.handle(
                now,
                Input::Operation {
                    id: OpId(1),
                    op: Operation::Token,
                },
            );
            client
        })
        .collect();
    let mut outcomes: Vec<Option<Event>> = vec![None, None];
    let mut queues: Vec<VecDeque<Command>> = vec![VecDeque::new(), VecDeque::new()];
    for step in 0..2_000 {
        if outcomes.iter().all(Option::is_some) {
            return (outcomes.into_iter().flatten().collect(), provider, store);
        }
        for (process, queue) in processes.iter_mut().zip(&mut queues) {
            queue.extend(std::iter::from_fn(|| process.poll_command()));
        }
        let preferred = usize::from(order >> (step % 64) & 1 == 1);
        let ready = [preferred, 1 - preferred]
            .into_iter()
            .find(|&i| outcomes[i].is_none() && !queues[i].is_empty());
        let Some(i) = ready else {
            // Nobody has a command: move the clock to the earliest deadline and tick.
            let next = processes
                .iter()
                .filter_map(Client::poll_timeout)
                .min()
                .expect("a process waits for nothing: stalled");
            now = now.max(next);
            for process in &mut processes {
                process.handle(now, Input::Tick);
            }
            continue;
        };
        let command = queues[i].pop_front().unwrap();
        let input = match command {
            Command::Http { id, request, .. } => match provider.handle(now, &request) {
                Reply::Response(response) => Input::HttpResponse { id, response },
                other => panic!("no faults were asked for: {other:?}"),
            },
            Command::Store { id, op } => Input::Store {
                id,
                result: store.apply(now, &op),
            },
            Command::Emit(event) => {
                if matches!(
                    event,
                    Event::TokenReady { .. } | Event::Failed { .. } | Event::LoginRequired { .. }
                ) {
                    outcomes[i] = Some(event);
                }
                continue;
            }
            other => panic!("unexpected command {other:?}"),
        };
        processes[i].handle(now, input);
    }
    panic!("the processes did not finish: {outcomes:?}");
}

fn check(grant: Grant) {
    for order in [
        0,
        u64::MAX,
        0x5555_5555_5555_5555,
        0x3333_3333_3333_3333,
        0x0F0F_0F0F,
    ] {
        let (outcomes, provider, store) = interleave(grant, order);
        for outcome in &outcomes {
            assert!(
                matches!(outcome, Event::TokenReady { .. }),
                "order {order:#x}: {outcome:?}"
            );
        }
        let stats = provider.stats();
        let sent = match grant {
            Grant::AuthorizationCode => stats.refreshes,
            _ => stats.client_credentials - 1,
        };
        assert_eq!(
            sent, 1,
            "order {order:#x}: one token request for two processes"
        );
        assert_eq!(stats.stale_refresh_presented, 0, "order {order:#x}: INV-10");
        let stored = store.records().next().unwrap();
        assert!(
            stored.tokens.is_some(),
            "order {order:#x}: the session is intact"
        );
    }
}

#[test]
fn two_processes_refresh_once_between_them_inv_10() {
    check(Grant::AuthorizationCode);
}

#[test]
fn two_processes_ask_for_one_client_credentials_token_inv_10() {
    check(Grant::ClientCredentials);
}
