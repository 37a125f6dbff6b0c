//! Random scripts of operations, clock jumps, restarts and server faults; every invariant is
//! checked after every step.

use proptest::prelude::*;
use tenure_model_tests::{kind, step, Harness};
use tenure_sim::provider::FaultConfig;

fn play(harness: &mut Harness, script: &[tenure_model_tests::Step]) -> Result<(), TestCaseError> {
    for (index, step) in script.iter().enumerate() {
        harness
            .step(step)
            .map_err(|e| TestCaseError::fail(format!("step {index} {step:?}: {e}")))?;
        harness
            .check()
            .map_err(|e| TestCaseError::fail(format!("after step {index} {step:?}: {e}")))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// A well-behaved server: every invariant, including INV-10, holds.
    #[test]
    fn invariants_hold_without_faults(kind in kind(), seed in any::<u64>(),
                                      script in prop::collection::vec(step(), 1..30)) {
        let mut harness = Harness::new(kind, FaultConfig { seed, ..FaultConfig::default() });
        play(&mut harness, &script)?;
    }

    /// 5xx, timeouts and lost answers: nothing panics, nothing livelocks, no expired secret
    /// is sent, nothing is used before it is stored.
    #[test]
    fn invariants_hold_under_faults(kind in kind(), seed in any::<u64>(),
                                    script in prop::collection::vec(step(), 1..30)) {
        let faults = FaultConfig {
            seed,
            server_error_rate: 0.15,
            timeout_rate: 0.05,
            lost_response_rate: 0.05,
        };
        let mut harness = Harness::new(kind, faults);
        play(&mut harness, &script)?;
    }
}

#[test]
fn the_same_inputs_give_the_same_requests() {
    let script: Vec<_> = {
        use tenure_core::Operation::*;
        use tenure_model_tests::Step::*;
        vec![
            Op(Login),
            Forward(90),
            Op(Token),
            Forward(3 * 24 * 60 - 600),
            Restart,
            Op(Token),
            Op(Renew),
        ]
    };
    let run = || {
        let faults = FaultConfig {
            seed: 7,
            server_error_rate: 0.2,
            ..FaultConfig::default()
        };
        let mut harness = Harness::new(tenure_model_tests::Kind::User, faults);
        for step in &script {
            harness.step(step).unwrap();
        }
        harness
            .sim
            .timeline()
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    };
    let first = run();
    assert!(first.len() > 10);
    assert_eq!(first, run());
}
