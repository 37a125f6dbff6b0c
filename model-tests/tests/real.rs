//! Exhaustive model checking of the real core: the replicas of the models in `src/real.rs`
//! are `tenure_core::Client` values (see `MODELS.md`, "Models of the real core").
//!
//! Two kinds of test, as in `tests/stateright.rs`:
//! - a model expected to keep every invariant: every "always" property holds, every
//!   "sometimes" property has an example, and the number of distinct states is pinned;
//! - a model broken on purpose (no compare-and-swap, a lease that lapses under a live
//!   holder, one seed shared by every process): the checker must find the counterexample.

use stateright::Checker;
use tenure_model_tests::checking::{counterexample, explore, explore_until, trace};
use tenure_model_tests::real::{
    Action, LeaseExpiry, RealFleet, COMPARE_AND_SWAP, NO_TOKEN_LOST, ONE_REFRESH, ONE_REGISTRATION,
};

// ----- the core keeps every invariant -----

/// INV-1, INV-4, INV-5, INV-9: two replicas discover the server and register; one may crash
/// under the lease, one request may fail in transport (before or after the AS acted on it).
#[test]
fn real_core_registers_once_across_replicas_despite_a_crash() {
    let checker = explore(RealFleet::registration());
    assert!(checker.is_done());
    checker.assert_properties();
    assert_eq!(checker.unique_state_count(), 52_803);
}

/// INV-1, INV-8, INV-9: two replicas find a secret in its renewal window; one renewal per
/// secret across the fleet, one per start, and no renewed secret lost, despite a crash.
#[test]
fn real_core_renews_once_across_replicas_despite_a_crash() {
    let checker = explore(RealFleet::renewal());
    assert!(checker.is_done());
    checker.assert_properties();
    assert_eq!(checker.unique_state_count(), 110_721);
}

/// INV-10: two replicas find an expired access token; one refresh per refresh token across
/// processes, and no failed refresh erases the newer token, despite a crash and a transport
/// failure.
#[test]
fn real_core_refreshes_once_across_replicas_despite_a_crash() {
    let checker = explore(RealFleet::refresh());
    assert!(checker.is_done());
    checker.assert_properties();
    assert_eq!(checker.unique_state_count(), 17_445);
}

/// INV-1, INV-8, INV-9: the renewal scenario without a crash, but with a request that fails
/// in transport, before or after the AS acted on it (a lost renewal answer).
#[test]
fn real_core_renews_once_across_replicas_despite_a_lost_answer() {
    let checker = explore(RealFleet::renewal_over_a_lossy_network());
    assert!(checker.is_done());
    checker.assert_properties();
    assert_eq!(checker.unique_state_count(), 371);
}

/// INV-9 (the scenario of finding F3): an AS that refuses the old secret as soon as it issued
/// the new one; after the renewal both replicas request tokens with the secret, and one
/// request may fail in transport.
#[test]
fn real_core_keeps_the_renewed_secret_against_a_revoking_server() {
    let checker = explore(RealFleet::revoking_server());
    assert!(checker.is_done());
    checker.assert_properties();
    assert_eq!(checker.unique_state_count(), 6_765);
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
