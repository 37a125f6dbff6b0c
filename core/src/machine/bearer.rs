//! The jwt-bearer grant family in the machine (SEP-990, SEP-1933; see
//! [`crate::jwt_bearer`]).
//!
//! Every grant request runs these steps under the store lease, each chosen again by
//! [`Client::next_step`] once the previous one is answered:
//!
//! ```text
//!   workload:    ReadAssertion ──▶ jwt-bearer grant (assertion = what the shell read)
//!   enterprise:  ReadAssertion ──▶ token exchange at the IdP ──▶ jwt-bearer grant
//!                (the ID token)     (ID token for an ID-JAG)     (assertion = the ID-JAG)
//!
//! An identity provider configured by its issuer has its metadata read first, once per
//! process, for its token endpoint.
//! ```
//!
//! What the shell read and what the identity provider issued live in the job until sent,
//! then are dropped: the next grant request reads again. A refusal anywhere ends the
//! operation; nothing is retried and no other grant is tried (SEP-1933).

use super::*;
use crate::jwt_bearer::{
    assertion_text, parse_token_exchange, token_exchange_request, AssertionSource, BearerAssertion,
    ExchangeFailure, ExchangeParams, IdentityProvider,
};

impl Client {
    /// The next step of a jwt-bearer grant request; the lease is held.
    pub(super) fn step_jwt_bearer(&mut self, now: Timestamp, server: &AuthServer) -> Step {
        let Some(bearer) = self.config.bearer_assertion.clone() else {
            return Step::Finish(Outcome::Failed(Error::Config(
                ConfigError::BearerAssertion("no assertion source is configured".into()),
            )));
        };
        let scopes = self.scopes_to_request(server);
        let Some(job) = self.jobs.front_mut() else {
            return Step::Finish(Outcome::Done);
        };
        let ready = match &bearer {
            BearerAssertion::Workload(_) => job.assertion.take(),
            BearerAssertion::Enterprise(_) => job.id_jag.take(),
        };
        if let Some(assertion) = ready {
            self.scopes.requested = Some(scopes.clone());
            return self.send_token_request(
                now,
                GrantRequest::JwtBearer {
                    assertion: &assertion,
                    scopes: &scopes,
                },
            );
        }
        let id_token = match &bearer {
            BearerAssertion::Enterprise(_) => job.assertion.take(),
            _ => None,
        };
        match (bearer, id_token) {
            (BearerAssertion::Enterprise(idp), id_token) if self.idp_endpoint(&idp).is_none() => {
                // The ID token waits (if it was read already) until the endpoint is known.
                if let (Some(job), Some(id_token)) = (self.jobs.front_mut(), id_token) {
                    job.assertion = Some(id_token);
                }
                self.begin_idp_discovery(&idp)
            }
            (BearerAssertion::Enterprise(idp), Some(id_token)) => {
                // SEP-990: the ID-JAG names the authorization server as its audience and the
                // resource it is for; the identity provider's credentials go to it alone.
                let endpoint = self.idp_endpoint(&idp).unwrap_or_default();
                let request = token_exchange_request(
                    &endpoint,
                    &idp,
                    &ExchangeParams {
                        id_token: &id_token,
                        audience: &server.issuer,
                        resource: self.resource_indicator(),
                        scopes: &scopes,
                    },
                );
                match request {
                    Ok(request) => self.http(
                        RequestKind::TokenExchange,
                        request,
                        HttpPurpose::TokenExchange,
                    ),
                    Err(reason) => Step::Finish(Outcome::Failed(Error::Protocol(reason))),
                }
            }
            (BearerAssertion::Enterprise(idp), None) => self.read_assertion(idp.id_token),
            (BearerAssertion::Workload(source), _) => self.read_assertion(source),
        }
    }

    /// The identity provider's token endpoint: as configured, or as its metadata named it.
    fn idp_endpoint(&self, idp: &IdentityProvider) -> Option<String> {
        idp.token_endpoint
            .clone()
            .or_else(|| self.idp_token_endpoint.clone())
    }

    /// Fetches the identity provider's metadata for its token endpoint, at the well-known
    /// locations of its issuer in turn (RFC 8414, OpenID discovery).
    fn begin_idp_discovery(&mut self, idp: &IdentityProvider) -> Step {
        let issuer = idp.issuer.clone().unwrap_or_default();
        match metadata_candidates(&issuer) {
            Ok(candidates) => self.next_idp_candidate(issuer, candidates.into(), Vec::new()),
            Err(reason) => Step::Finish(Outcome::Failed(Error::Discovery(format!(
                "identity provider {}: {reason}",
                sanitize(&issuer)
            )))),
        }
    }

    fn next_idp_candidate(
        &mut self,
        issuer: String,
        mut candidates: VecDeque<String>,
        failures: Vec<String>,
    ) -> Step {
        let Some(current) = candidates.pop_front() else {
            return Step::Finish(Outcome::Failed(Error::Discovery(format!(
                "no usable metadata for the identity provider {}: {}; give its token endpoint instead",
                sanitize(&issuer),
                failures.join("; ")
            ))));
        };
        let request = http::Request::get(&current)
            .header(http::header::ACCEPT, crate::wire::JSON)
            .body(Vec::new());
        match request {
            Ok(request) => self.http(
                RequestKind::ServerMetadata,
                request,
                HttpPurpose::IdpMetadata {
                    issuer,
                    candidates,
                    current,
                    failures,
                },
            ),
            Err(e) => Step::Finish(Outcome::Failed(Error::Protocol(e.to_string()))),
        }
    }

    /// One answer of the identity provider's metadata: its token endpoint when the document
    /// is for exactly the configured issuer, else the next location.
    pub(super) fn handle_idp_metadata(
        &mut self,
        issuer: String,
        candidates: VecDeque<String>,
        current: String,
        mut failures: Vec<String>,
        answer: Result<(u16, Vec<u8>), String>,
    ) {
        let found = answer.and_then(|(status, body)| {
            if status != 200 {
                return Err(format!("HTTP {status}"));
            }
            parse_server_metadata(&json_object(&body)?, &issuer)
        });
        match found {
            Ok(metadata) => self.idp_token_endpoint = Some(metadata.token_endpoint),
            Err(reason) => {
                failures.push(format!("{}: {reason}", sanitize(&current)));
                let step = self.next_idp_candidate(issuer, candidates, failures);
                self.apply(step);
            }
        }
    }

    /// Asks the shell for the current assertion at `source`.
    fn read_assertion(&mut self, source: AssertionSource) -> Step {
        let id = AssertionId(self.next_id());
        self.out.push_back(Command::ReadAssertion { id, source });
        Step::Wait(Wait::Assertion(id))
    }

    /// The source the machine reads from: the workload token or the user's ID token.
    fn assertion_source(&self) -> Option<&AssertionSource> {
        match self.config.bearer_assertion.as_ref()? {
            BearerAssertion::Workload(source) => Some(source),
            BearerAssertion::Enterprise(idp) => Some(&idp.id_token),
        }
    }

    /// The shell's answer to [`Command::ReadAssertion`]: kept for the next step, or the end
    /// of the operation when there is none. Answers to no pending read are ignored.
    pub(super) fn handle_assertion(&mut self, id: AssertionId, result: Result<Secret, String>) {
        if !matches!(self.wait, Wait::Assertion(waiting) if waiting == id) {
            return;
        }
        self.wait = Wait::Nothing;
        let checked = match (result, self.assertion_source()) {
            (Ok(text), Some(source)) => assertion_text(source, text.expose()),
            (Ok(_), None) => Err("no assertion source is configured".into()),
            (Err(reason), _) => Err(reason),
        };
        match checked {
            Ok(assertion) => {
                if let Some(job) = self.jobs.front_mut() {
                    job.assertion = Some(assertion);
                }
            }
            Err(reason) => self.finish(Outcome::Failed(Error::AssertionUnavailable(reason))),
        }
    }

    /// The identity provider's answer to the token exchange: the ID-JAG, kept for the
    /// jwt-bearer grant that follows, or the end of the operation.
    pub(super) fn handle_exchange_answer(&mut self, answer: Result<(u16, Vec<u8>), String>) {
        let endpoint = match &self.config.bearer_assertion {
            Some(BearerAssertion::Enterprise(idp)) => {
                sanitize(&self.idp_endpoint(idp).unwrap_or_default())
            }
            _ => String::new(),
        };
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(detail) => {
                self.finish(Outcome::Failed(Error::Transport {
                    url: endpoint,
                    detail,
                }));
                return;
            }
        };
        match parse_token_exchange(status, &body) {
            Ok(id_jag) => {
                if let Some(job) = self.jobs.front_mut() {
                    job.id_jag = Some(id_jag);
                }
            }
            Err(ExchangeFailure::Refused(cause)) => {
                let hint = match cause.code.as_deref() {
                    Some("invalid_grant") => "; the identity provider did not accept the ID token: check that it is current and was issued for this client at the identity provider",
                    Some("invalid_client" | "unauthorized_client") => "; check the client id and secret at the identity provider, and that the client may use the token exchange there",
                    Some("invalid_target" | "invalid_scope") => "; check that the identity provider allows this authorization server, resource and scope",
                    _ => "",
                };
                self.finish(Outcome::Failed(Error::TokenExchangeRejected {
                    endpoint,
                    cause,
                    hint: hint.into(),
                }));
            }
            Err(ExchangeFailure::BadAnswer(reason)) => {
                self.finish(Outcome::Failed(Error::TokenExchangeUnusable {
                    endpoint,
                    reason,
                }))
            }
        }
    }

    /// What to check after the token endpoint refused a jwt-bearer grant (SEP-1933 asks
    /// for the error to be surfaced, not worked around).
    pub(super) fn bearer_refusal_hint(&self, cause: &ServerError) -> String {
        let enterprise = matches!(
            self.config.bearer_assertion,
            Some(BearerAssertion::Enterprise(_))
        );
        let issuer = self
            .server
            .as_ref()
            .map(|s| sanitize(&s.issuer))
            .unwrap_or_default();
        match cause.code.as_deref() {
            Some("invalid_grant") if enterprise => format!(
                "; the ID-JAG from the identity provider was not accepted: check that the identity provider issues it for the audience {issuer} and this client, and that the server trusts that identity provider"
            ),
            Some("invalid_grant") => format!(
                "; the assertion was not accepted: check that its audience names the authorization server {issuer}, that it has not expired, and that the server trusts its issuer"
            ),
            Some("invalid_scope") => {
                "; the scope asked for is not allowed with this grant: check the setting `scope`".into()
            }
            Some("unauthorized_client") => {
                "; the client may not use the jwt-bearer grant: check its grant permission at the authorization server".into()
            }
            Some("invalid_client") => {
                "; check the setting `client_id` and how the client authenticates".into()
            }
            _ => String::new(),
        }
    }
}
