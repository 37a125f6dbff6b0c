//! Discovery steps: walking the candidate metadata URLs in the prescribed order.

use super::*;

impl Client {
    pub(super) fn begin_discovery(&mut self) -> Step {
        match (self.resource.clone(), self.config.issuer.clone()) {
            (Some(resource), _) => {
                let link = self.challenge_prm.take();
                match prm_candidates(&resource, link.as_deref()) {
                    Ok(candidates) => self.next_resource_candidate(candidates.into(), Vec::new()),
                    Err(reason) => Step::Finish(Outcome::Failed(Error::Discovery(reason))),
                }
            }
            (None, Some(issuer)) => self.begin_server_metadata(issuer, None),
            (None, None) => Step::Finish(Outcome::Failed(ConfigError::NoServer.into())),
        }
    }

    pub(super) fn next_resource_candidate(
        &mut self,
        mut candidates: VecDeque<PrmCandidate>,
        mut failures: Vec<String>,
    ) -> Step {
        let Some(current) = candidates.pop_front() else {
            return Step::Finish(Outcome::Failed(Error::Discovery(format!(
                "no usable protected resource metadata ({}); check --resource, or give --issuer",
                failures.join("; ")
            ))));
        };
        match crate::wire::get_json(&current.url) {
            Ok(request) => {
                let purpose = HttpPurpose::ResourceMetadata {
                    candidates,
                    current,
                    failures,
                };
                self.http(RequestKind::ResourceMetadata, request, purpose)
            }
            Err(reason) => {
                failures.push(reason);
                self.next_resource_candidate(candidates, failures)
            }
        }
    }

    pub(super) fn begin_server_metadata(
        &mut self,
        issuer: String,
        resource_scopes: Option<Vec<String>>,
    ) -> Step {
        match metadata_candidates(&issuer) {
            Ok(candidates) => {
                self.next_server_candidate(issuer, candidates.into(), Vec::new(), resource_scopes)
            }
            Err(reason) => Step::Finish(Outcome::Failed(Error::Discovery(reason))),
        }
    }

    pub(super) fn next_server_candidate(
        &mut self,
        issuer: String,
        mut candidates: VecDeque<String>,
        mut failures: Vec<String>,
        resource_scopes: Option<Vec<String>>,
    ) -> Step {
        let Some(current) = candidates.pop_front() else {
            return Step::Finish(Outcome::Failed(Error::Discovery(format!(
                "no usable metadata for issuer {issuer} ({}); check the issuer URL",
                failures.join("; ")
            ))));
        };
        match crate::wire::get_json(&current) {
            Ok(request) => {
                let purpose = HttpPurpose::ServerMetadata {
                    issuer,
                    candidates,
                    current,
                    failures,
                    resource_scopes,
                };
                self.http(RequestKind::ServerMetadata, request, purpose)
            }
            Err(reason) => {
                failures.push(reason);
                self.next_server_candidate(issuer, candidates, failures, resource_scopes)
            }
        }
    }
}
