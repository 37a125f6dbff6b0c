//! Exhaustive model checking of the real core: the replicas of the models in `src/real.rs`
//! are `tenure_core::Client` values (see `MODELS.md`, "Models of the real core").
//!
//! Two kinds of test:
//! - a model expected to keep every invariant: every "always" property holds, every
//!   "sometimes" property has an example, and the number of distinct states is pinned;
//! - a model broken on purpose (no compare-and-swap, a lease that lapses under a live
//!   holder, one seed shared by every process): the checker must find the counterexample.

use stateright::Checker;
use tenure_model_tests::checking::{counterexample, explore, explore_until, trace};
use tenure_model_tests::real::{
    explain, Action, Kind, LeaseExpiry, RealFleet, COMPARE_AND_SWAP, DPOP_BINDING_KEPT,
    NO_DEAD_END, NO_TOKEN_LOST, ONE_REFRESH, ONE_REGISTRATION,
};

// ----- the core keeps every invariant -----

/// Explores every state of `model`, asserts that every "always" and "eventually" property
/// holds and every "sometimes" one has an example; the number of distinct states, to pin.
fn keeps_every_invariant(model: RealFleet) -> usize {
    let checker = explore(model);
    assert!(checker.is_done());
    checker.assert_properties();
    checker.unique_state_count()
}

/// INV-1, INV-4, INV-5, INV-9: two replicas discover the server and register; one may crash
/// under the lease, one request may fail in transport (before or after the AS acted on it).
#[test]
fn real_core_registers_once_across_replicas_despite_a_crash() {
    let model = RealFleet::registration();
    assert_eq!(keeps_every_invariant(model), 52_803);
}

/// INV-1, INV-8, INV-9: two replicas find a secret in its renewal window; one renewal per
/// secret across the fleet, one per start, and no renewed secret lost, despite a crash.
#[test]
fn real_core_renews_once_across_replicas_despite_a_crash() {
    let model = RealFleet::renewal();
    assert_eq!(keeps_every_invariant(model), 110_721);
}

/// INV-10: two replicas find an expired access token; one refresh per refresh token across
/// processes, and no failed refresh erases the newer token, despite a crash and a transport
/// failure.
#[test]
fn real_core_refreshes_once_across_replicas_despite_a_crash() {
    let model = RealFleet::refresh();
    assert_eq!(keeps_every_invariant(model), 17_445);
}

/// INV-1, INV-8, INV-9: the renewal scenario without a crash, but with a request that fails
/// in transport, before or after the AS acted on it (a lost renewal answer).
#[test]
fn real_core_renews_once_across_replicas_despite_a_lost_answer() {
    let model = RealFleet::renewal_over_a_lossy_network();
    assert_eq!(keeps_every_invariant(model), 371);
}

/// INV-9 (the scenario of finding F3): an AS that refuses the old secret as soon as it issued
/// the new one; after the renewal both replicas request tokens with the secret, and one
/// request may fail in transport.
#[test]
fn real_core_keeps_the_renewed_secret_against_a_revoking_server() {
    let model = RealFleet::revoking_server();
    assert_eq!(keeps_every_invariant(model), 6_765);
}

/// RFC 9449 §5 across processes: with DPoP, each process draws a key of its own; the key
/// is stored before its first proof, so the refresh token bound to it is always refreshed
/// with a proof of that key, by any replica and after a crash, and every stored token is
/// stored with the key it is bound to (INV-10 too).
#[test]
fn real_core_refreshes_dpop_bound_tokens_with_the_stored_key() {
    let model = RealFleet::refresh_with_dpop();
    assert_eq!(keeps_every_invariant(model), 17_445);
}

/// RFC 9449 §5, INV-1: two replicas with keys of their own register and ask for their first
/// DPoP-bound tokens against an empty store, one may crash: the tokens stored are bound to
/// the key stored with them.
#[test]
fn real_core_binds_first_tokens_to_the_stored_key() {
    let model = RealFleet::registration_with_dpop();
    assert_eq!(keeps_every_invariant(model), 64_799);
}

// ----- the model can fail: the environment broken on purpose -----

/// INV-9, INV-10: a store that writes without comparing generations lets a crashed
/// process's late write land over a newer record, and the refreshed token is lost.
#[test]
fn real_core_without_compare_and_swap_loses_a_write() {
    let model = RealFleet {
        compare_and_swap: false,
        ..RealFleet::refresh()
    };
    let checker = explore_until(model, COMPARE_AND_SWAP);
    let path = counterexample(&checker, COMPARE_AND_SWAP);
    assert!(
        path.last_state().history.flags.stale_write,
        "{}",
        trace(&path, |s| s.history.clone())
    );
    let checker = explore_until(
        RealFleet {
            compare_and_swap: false,
            ..RealFleet::refresh()
        },
        NO_TOKEN_LOST,
    );
    counterexample(&checker, NO_TOKEN_LOST);
}

/// RFC 9449 §5: a store adapter that keeps only the record fields it knew before DPoP never
/// persists the key, so the next process draws another one and its refresh is refused: the
/// user would be logged out. (Without compare-and-swap, or with a lease lapsing under its
/// holder, the binding still holds in the registration model without crashes: every record a
/// process writes pairs its tokens with the key it proved.)
#[test]
fn real_core_on_a_store_that_drops_the_key_loses_the_binding() {
    let model = RealFleet {
        store_drops_dpop_key: true,
        crashes: 0,
        transport_failures: 0,
        ..RealFleet::refresh_with_dpop()
    };
    let checker = explore_until(model, DPOP_BINDING_KEPT);
    let path = counterexample(&checker, DPOP_BINDING_KEPT);
    assert!(
        path.last_state().history.flags.dpop_key_switched,
        "{}",
        trace(&path, |s| s.history.clone())
    );
}

/// INV-1: a lease that lapses under a live, slow holder lets the second replica register
/// too; the core relies on the lease outliving every round trip.
#[test]
fn real_core_with_a_lease_lapsing_under_its_holder_registers_twice() {
    let model = RealFleet {
        lease_expiry: LeaseExpiry::AnyTime,
        crashes: 0,
        ..RealFleet::registration()
    };
    let checker = explore_until(model, ONE_REGISTRATION);
    let path = counterexample(&checker, ONE_REGISTRATION);
    let lapsed = path.clone().into_actions().contains(&Action::LeaseExpires);
    assert!(lapsed, "{}", trace(&path, |s| s.history.clone()));
}

/// INV-10: the same, for a refresh: two processes present one refresh token.
#[test]
fn real_core_with_a_lease_lapsing_under_its_holder_refreshes_twice() {
    let model = RealFleet {
        lease_expiry: LeaseExpiry::AnyTime,
        crashes: 0,
        ..RealFleet::refresh()
    };
    let checker = explore_until(model, ONE_REFRESH);
    counterexample(&checker, ONE_REFRESH);
}

/// INV-1: processes that share one seed share one lease holder id, so both hold the lease
/// at once and both register.
#[test]
fn real_core_with_a_shared_seed_registers_twice() {
    let model = RealFleet {
        shared_seed: true,
        crashes: 0,
        ..RealFleet::registration()
    };
    let checker = explore_until(model, ONE_REGISTRATION);
    let path = counterexample(&checker, ONE_REGISTRATION);
    let last = path.last_state();
    assert_eq!(
        last.replicas[0].client.holder(),
        last.replicas[1].client.holder()
    );
}

/// INV-10: the same, for a refresh.
#[test]
fn real_core_with_a_shared_seed_refreshes_twice() {
    let model = RealFleet {
        shared_seed: true,
        crashes: 0,
        ..RealFleet::refresh()
    };
    let checker = explore_until(model, ONE_REFRESH);
    counterexample(&checker, ONE_REFRESH);
}

/// INV-2, INV-3, INV-11, INV-13: two replicas log in with a CIMD id the server accepts; no
/// DCR; a forged callback may reach a replica waiting for its browser, and is ignored.
#[test]
fn real_core_logs_in_with_an_accepted_cimd_id() {
    let model = RealFleet::cimd(true);
    assert_eq!(keeps_every_invariant(model), 540);
}

/// INV-1, INV-2, INV-3, INV-9 (the scenario of finding F2), INV-13: the server refuses the
/// CIMD id at the token endpoint; each replica falls back to DCR at most once, one client is
/// registered for both, the stored rejection is never undone, and both end with a token.
#[test]
fn real_core_falls_back_from_a_refused_cimd_id_once() {
    let model = RealFleet::cimd(false);
    assert_eq!(keeps_every_invariant(model), 21_940);
}

/// INV-1, INV-9, INV-13, INV-14: the server forgot the client; one replacement is
/// registered for both replicas, despite a crash; a replica that meets the backoff a crashed
/// process left behind recovers when it asks again.
#[test]
fn real_core_registers_anew_when_the_server_forgot_its_client() {
    let model = RealFleet::forgotten();
    assert_eq!(keeps_every_invariant(model), 130_720);
}

/// INV-1, INV-5, INV-13: a server without RFC 7592 (the MCP SDKs'): one replacement client
/// before the secret expires, despite a crash.
#[test]
fn real_core_replaces_a_secret_it_cannot_renew() {
    let model = RealFleet::no_management();
    assert_eq!(keeps_every_invariant(model), 2_257);
}

/// INV-6, INV-9, INV-13: the renewal fails before the secret expires (a 503, a transport
/// failure); a warning, the old secret stays in use, and every replica ends with a token.
#[test]
fn real_core_keeps_the_old_secret_when_a_renewal_fails() {
    let model = RealFleet::failing_renewal();
    assert_eq!(keeps_every_invariant(model), 495);
}

/// INV-1, INV-7, INV-13 (SEP-2352): the resource names another authorization server; each
/// replica that meets the resource's challenge discovers it, one registers there for both,
/// and no credential of the first server reaches the second.
#[test]
fn real_core_registers_once_with_the_new_server_after_a_migration() {
    let model = RealFleet::migration();
    assert_eq!(keeps_every_invariant(model), 21_803);
}

/// INV-1, INV-4, INV-9: three replicas register once.
#[test]
fn real_core_registers_once_across_three_replicas() {
    let model = RealFleet::registration_by_three();
    assert_eq!(keeps_every_invariant(model), 10_956);
}

/// INV-1, INV-5, INV-8, INV-9 (the scenario of finding F1): after the first renewal each
/// process asks again once the next window opened, while its earlier lease release may still
/// be on its way; one request may be answered with a 503.
#[test]
fn real_core_renews_once_per_window_across_two_windows() {
    let model = RealFleet::two_windows();
    assert_eq!(keeps_every_invariant(model), 10_152);
}

/// INV-1, INV-4, INV-9, INV-13: the registration scenario with the crash at any moment,
/// not only under the lease mid-request.
#[test]
fn real_core_registers_once_with_a_crash_anywhere() {
    let model = RealFleet {
        crash_anywhere: true,
        transport_failures: 0,
        ..RealFleet::registration()
    };
    assert_eq!(keeps_every_invariant(model), 45_837);
}

/// INV-1: a store whose re-read under the lease returns what the process saw before (no
/// re-read, in effect) lets the second replica register too.
#[test]
fn real_core_without_a_reread_under_the_lease_registers_twice() {
    let model = RealFleet {
        stale_reads: true,
        crashes: 0,
        transport_failures: 0,
        ..RealFleet::registration()
    };
    let checker = explore_until(model, ONE_REGISTRATION);
    let path = counterexample(&checker, ONE_REGISTRATION);
    let registrations = path
        .last_state()
        .history
        .attempts
        .iter()
        .filter(|a| a.kind == Kind::Registration && a.succeeded)
        .count();
    assert_eq!(registrations, 2, "{}", explain(&path));
}

/// INV-1: the same broken store in the refused-CIMD scenario: the replica that falls back
/// second does not see the first one's registration and registers too.
#[test]
fn real_core_without_a_reread_under_the_lease_falls_back_twice() {
    let model = RealFleet {
        stale_reads: true,
        ..RealFleet::cimd(false)
    };
    let checker = explore_until(model, ONE_REGISTRATION);
    counterexample(&checker, ONE_REGISTRATION);
}

/// INV-13, INV-14 (what the checker found, 2 in `MODELS.md`): without asking again, a replica
/// that reads the backoff a crashed process left behind ends with `RegistrationPaused`: a
/// transient failure, which the model with one `Retry` shows to recover.
#[test]
fn real_core_pauses_a_replica_behind_a_crashed_processs_backoff() {
    let model = RealFleet {
        retries: 0,
        ..RealFleet::forgotten()
    };
    let checker = explore_until(model, NO_DEAD_END);
    let path = counterexample(&checker, NO_DEAD_END);
    let paused = path.last_state().replicas.iter().any(|r| {
        r.outcome
            .as_deref()
            .is_some_and(|o| o.contains("RegistrationPaused"))
    });
    assert!(paused, "{}", explain(&path));
}
