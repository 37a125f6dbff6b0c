//! Exhaustive model checking of the fleet models (`src/fleet.rs`, described in `MODELS.md`)
//! with stateright's breadth-first checker.
//!
//! Three kinds of test:
//! - a model whose rules are expected to keep every invariant: every "always" property holds,
//!   every "sometimes" property has an example, and the exact number of distinct states is
//!   pinned so that any change to the model is noticed;
//! - the model with the rules the core had before findings F1–F3 (`MODELS.md`) were fixed:
//!   the test pins exactly which properties the checker refutes, so the fixes stay justified;
//! - a model broken on purpose (no re-read under the lease, no compare-and-swap, a lease that
//!   expires under a live holder): the checker must find the counterexample, which shows the
//!   properties are not vacuous.

use stateright::{Checker, Expectation, Model};
use tenure_model_tests::checking::{counterexample, explore, explore_until, trace};
use tenure_model_tests::fleet::{Action, Fleet, LeaseExpiry, Release};

const ONE_REGISTRATION: &str = "INV-8 one registration across replicas";
const ONE_RENEWAL: &str = "INV-1 INV-8 one renewal per secret across replicas";
const COMPARE_AND_SWAP: &str = "INV-9 compare-and-swap: no write over an unread generation";
const NO_ROLLBACK: &str = "INV-9 no stored secret rolled back or dropped while valid";
const REJECTION_KEPT: &str = "INV-9 a stored CIMD rejection is never undone";

/// Asserts that exactly the `refuted` "always" properties have counterexamples, that every
/// other one holds, and that every "sometimes" property has an example. Needs a complete
/// exploration.
fn assert_verdict(checker: &impl Checker<Fleet>, refuted: &[&str]) {
    assert!(checker.is_done(), "the exploration did not complete");
    let properties = checker.model().properties();
    for name in refuted {
        assert!(
            properties.iter().any(|p| p.name == *name),
            "no property named {name:?}"
        );
    }
    for property in properties {
        let found = checker.discovery(property.name);
        match (
            property.expectation,
            refuted.contains(&property.name),
            found,
        ) {
            (Expectation::Always, false, Some(path)) => {
                panic!(
                    "{:?} is violated:\n{}",
                    property.name,
                    trace(&path, |s| s.history.clone())
                )
            }
            (Expectation::Always, true, None) => {
                panic!("{:?} was expected to be refuted, but holds", property.name)
            }
            (Expectation::Sometimes, _, None) => {
                panic!(
                    "{:?} has no example: the model is vacuous there",
                    property.name
                )
            }
            _ => {}
        }
    }
}

// ----- models whose rules keep every invariant -----

/// INV-8, INV-9, INV-4, INV-5: three replicas register against a DCR-only AS with one crash,
/// under the core's own rules (nothing in this scenario reaches findings F1–F3).
#[test]
fn inv8_inv9_three_replicas_register_once_despite_a_crash() {
    let checker = explore(Fleet::registration());
    checker.assert_properties();
    assert_eq!(checker.unique_state_count(), 571_165);
}

/// INV-2, INV-3, INV-8, INV-9: CIMD accepted or rejected (then DCR), two replicas, one crash,
/// under the core's rules.
#[test]
fn inv2_inv3_cimd_fallback_keeps_every_invariant() {
    let checker = explore(Fleet::cimd_fallback());
    checker.assert_properties();
    assert_eq!(checker.unique_state_count(), 38_345);
}

/// INV-1, INV-4, INV-5, INV-8, INV-9: two replicas renew through two renewal windows, with one
/// crash and failing renewals, under the core's rules.
#[test]
fn inv1_inv8_renewal_keeps_every_invariant() {
    let checker = explore(Fleet::renewal());
    checker.assert_properties();
    assert_eq!(checker.unique_state_count(), 372_501);
}

/// INV-1, INV-8: two replicas register, then renew when the window opens, under the core's
/// rules.
#[test]
fn inv1_inv8_lifecycle_keeps_every_invariant() {
    let checker = explore(Fleet::lifecycle());
    checker.assert_properties();
    assert_eq!(checker.unique_state_count(), 17_861);
}

/// INV-9: an AS that revokes the old secret on renewal, under the core's rules.
#[test]
fn inv9_revoking_server_keeps_every_invariant() {
    let checker = explore(Fleet::revoking_server());
    checker.assert_properties();
    assert_eq!(checker.unique_state_count(), 6_934);
}

// ----- findings: the core's rules before the fixes -----

/// F1 (INV-1, INV-8): the core releases a lease by holder id without waiting; a replica that
/// takes the lease again before its old release is carried out has its new lease freed by
/// the old release, and a second replica renews the same secret.
#[test]
fn finding_f1_inv8_a_late_lease_release_lets_two_replicas_renew() {
    let checker = explore(Fleet::lifecycle().with_old_rules());
    assert_verdict(&checker, &[ONE_RENEWAL, NO_ROLLBACK]);
    assert_eq!(checker.unique_state_count(), 31_413);

    let renewal = explore_until(Fleet::renewal().with_old_rules(), ONE_RENEWAL);
    let path = counterexample(&renewal, ONE_RENEWAL);
    let twice = path
        .last_state()
        .history
        .renewals
        .values()
        .any(|(sent, excused)| sent - excused == 2);
    assert!(twice, "{}", trace(&path, |s| s.history.clone()));
}

/// F2 (INV-9): a refused compare-and-swap re-applies the same patch to the newer record; a
/// stale "use the CIMD id" write then undoes another replica's stored CIMD rejection.
#[test]
fn finding_f2_inv9_a_retried_write_undoes_a_cimd_rejection() {
    let checker = explore(Fleet::cimd_fallback().with_old_rules());
    assert_verdict(&checker, &[REJECTION_KEPT]);
    assert_eq!(checker.unique_state_count(), 186_226);
}

/// F3 (INV-9): against an AS that revokes the old secret on renewal, a replica whose token
/// request with the old secret is refused drops the registration; its write conflicts with
/// the renewed record and the retry drops the new, valid secret, so the replica registers
/// anew.
#[test]
fn finding_f3_inv9_a_retried_drop_discards_a_renewed_secret() {
    // The release is fenced so that F1 does not mix in.
    let checker = explore(Fleet {
        release: Release::Fenced,
        ..Fleet::revoking_server().with_old_rules()
    });
    assert_verdict(&checker, &[NO_ROLLBACK]);
    assert_eq!(checker.unique_state_count(), 8_470);
    let path = counterexample(&checker, NO_ROLLBACK);
    assert!(path.last_state().history.live_registration_dropped);
}

// ----- the model can fail: protocol steps removed on purpose -----

/// INV-8: without the re-read under the lease, a replica that loaded an empty record before
/// another registered registers a second time.
#[test]
fn inv8_without_the_reread_under_the_lease_two_replicas_register() {
    let model = Fleet {
        reread_under_lease: false,
        ..Fleet::registration()
    };
    let checker = explore_until(model, ONE_REGISTRATION);
    let path = counterexample(&checker, ONE_REGISTRATION);
    let history = &path.last_state().history;
    assert_eq!(
        history.registrations - history.registrations_excused,
        2,
        "{}",
        trace(&path, |s| s.history.clone())
    );
}

/// INV-1, INV-8: without the re-read under the lease, a replica renews a secret another
/// replica already renewed.
#[test]
fn inv8_without_the_reread_under_the_lease_two_replicas_renew() {
    let model = Fleet {
        reread_under_lease: false,
        ..Fleet::renewal()
    };
    let checker = explore_until(model, ONE_RENEWAL);
    counterexample(&checker, ONE_RENEWAL);
}

/// INV-9: a store that writes without comparing generations loses updates.
#[test]
fn inv9_without_compare_and_swap_an_update_is_lost() {
    let model = Fleet {
        compare_and_swap: false,
        ..Fleet::cimd_fallback()
    };
    let checker = explore_until(model, COMPARE_AND_SWAP);
    let path = counterexample(&checker, COMPARE_AND_SWAP);
    assert!(path.last_state().history.stale_write);
}

/// INV-8: a lease that times out under a live but slow holder lets a second replica register:
/// the core relies on the lease outliving every registration and renewal round trip.
#[test]
fn inv8_a_lease_expiring_under_a_live_holder_lets_two_replicas_register() {
    let model = Fleet {
        lease_expiry: LeaseExpiry::AnyTime,
        ..Fleet::registration()
    };
    let checker = explore_until(model, ONE_REGISTRATION);
    let path = counterexample(&checker, ONE_REGISTRATION);
    let expired = path.clone().into_actions().contains(&Action::LeaseExpires);
    assert!(expired, "{}", trace(&path, |s| s.history.clone()));
}
