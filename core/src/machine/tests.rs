//! What only the inside of the machine shows: whether a refused write still applies to the
//! record another writer stored, and when the lease may be taken again. The machine driven
//! end to end, through inputs and commands, is tested in `core/tests/` on the simulation.

use super::*;

const AS: &str = "https://as.example.com";
const NOW: Timestamp = Timestamp::from_unix_seconds(1_700_000_000);

// ----- refused writes and late lease releases (found by the stateright models) -----

fn registration(id: &str, secret: &str, expires: i64) -> Registration {
    Registration {
        client_id: id.into(),
        client_secret: Some(Secret::new(secret)),
        secret_expires: SecretExpiry::At(Timestamp::from_unix_seconds(expires)),
        registration_access_token: None,
        registration_client_uri: None,
        token_endpoint_auth_method: crate::AuthMethod::ClientSecretBasic,
        redirect_uri: None,
        registration_endpoint: format!("{AS}/register"),
        obtained_at: None,
        unproven: false,
        metadata: Default::default(),
    }
}

fn stored_with(dcr: Option<Registration>, cimd: Option<(&str, bool)>) -> Record {
    let key = ClientKey::new(AS, "up", "http://127.0.0.1:1/callback", &[]);
    let server = crate::record::AuthServer {
        issuer: AS.into(),
        authorization_endpoint: None,
        token_endpoint: format!("{AS}/token"),
        registration_endpoint: None,
        device_authorization_endpoint: None,
        cimd_supported: true,
        iss_parameter_supported: false,
        pkce_s256: true,
        token_endpoint_auth_methods: None,
        resource_scopes: None,
        resource: None,
        dpop_es256: false,
    };
    let mut record = Record::new(key, server);
    record.dcr = dcr;
    record.cimd = cimd.map(|(id, rejected)| crate::record::CimdIdentity {
        client_id: id.into(),
        rejected,
    });
    record
}

/// F2 (INV-9, INV-3): a stale "use the CIMD id" must not undo a stored rejection.
#[test]
fn a_refused_write_never_undoes_a_stored_cimd_rejection_inv_9() {
    let rejected = stored_with(None, Some(("https://app.example.com/c.json", true)));
    let set = Patch::SetCimd("https://app.example.com/c.json".into());
    assert!(!set.still_applies(Some(&rejected), None));
    assert!(!Patch::RejectCimd.still_applies(Some(&rejected), None));
    assert!(set.still_applies(None, None));
}

/// F3 (INV-9): dropping a registration judged dead must not drop the secret another replica
/// renewed meanwhile; a renewal older than the stored one is not written over it.
#[test]
fn a_refused_write_never_drops_or_rolls_back_a_newer_secret_inv_9() {
    let old = registration("c1", "old", 1_000);
    let renewed = registration("c1", "new", 2_000);
    let current = stored_with(Some(renewed.clone()), None);
    assert!(!Patch::DropRegistration(None).still_applies(Some(&current), Some(&old)));
    assert!(!Patch::DropManagement.still_applies(Some(&current), Some(&old)));
    assert!(Patch::DropRegistration(None).still_applies(Some(&current), Some(&renewed)));
    let older = Patch::Renewed(Box::new(registration("c1", "older", 1_500)));
    assert!(!older.still_applies(Some(&current), Some(&old)));
    let newer = Patch::Renewed(Box::new(registration("c1", "newest", 3_000)));
    assert!(newer.still_applies(Some(&current), Some(&old)));
    let someone_registered = Patch::SetRegistration(Box::new(registration("c2", "s", 9_000)));
    assert!(!someone_registered.still_applies(Some(&current), None));
}

/// F1 (INV-1, INV-8): the lease is not taken again while its release is unanswered, so a
/// late release can never free the new lease.
#[test]
fn the_lease_is_not_taken_again_before_its_release_is_answered_inv_8() {
    let mut config = ClientConfig::for_issuer("lease", AS);
    config.seed = [1; 32];
    let mut client = Client::new(config);
    client.handle(NOW, Input::Start { stored: None });
    client.server = Some(stored_with(None, None).server);
    client.lease_held = true;
    client.release_lease();
    let release = match client.out.pop_back() {
        Some(Command::Store {
            id,
            op: StoreOp::ReleaseLease { .. },
        }) => id,
        other => panic!("expected a release, got {other:?}"),
    };
    assert!(matches!(client.take_lease(), Step::Wait(Wait::Release)));
    client.wait = Wait::Release;
    client.handle(
        NOW,
        Input::Store {
            id: release,
            result: StoreResult::LeaseReleased,
        },
    );
    assert!(!matches!(client.wait, Wait::Release));
    assert!(matches!(
        client.take_lease(),
        Step::Wait(Wait::Store(_, StorePurpose::Lease))
    ));
}

/// INV-9: a DPoP key is stored only where none is; a replica that wrote its key first keeps
/// it (tokens may be bound to it), and the loser decides again from the stored record.
#[test]
fn a_refused_dpop_key_write_never_replaces_a_stored_key_inv_9() {
    let mut entropy = Entropy::new([2; 32]);
    let mine = DpopKey::generate(&mut entropy);
    let theirs = DpopKey::generate(&mut entropy);
    let mut current = stored_with(None, None);
    let set = Patch::SetDpopKey(mine.clone());
    assert!(set.still_applies(Some(&current), None));
    current.dpop_key = Some(theirs.clone());
    assert!(!set.still_applies(Some(&current), None));
    assert!(!set.still_applies(None, None), "no record, nothing to bind");
    set.apply(&mut current);
    assert_eq!(
        current.dpop_key,
        Some(theirs),
        "applying keeps a stored key"
    );
}
