//! Discovery steps: walking the candidate metadata URLs in the prescribed order.

use super::*;

impl Client {
    pub(super) fn begin_discovery(&mut self) -> Step {
        match (self.resource.clone(), self.config.issuer.clone()) {
            (Some(resource), _) => {
                let link = self.challenge_prm.take();
                match prm_candidates(&resource, link.as_deref()) {
                    Ok(candidates) => {
                        self.next_resource_candidate(candidates.into(), Vec::new(), false)
                    }
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
        found_document: bool,
    ) -> Step {
        let Some(current) = candidates.pop_front() else {
            // EDGE-27: only a resource that publishes no metadata at all is taken for a
            // 2025-03-26 server; a document that failed validation is never bypassed.
            if self.config.legacy_discovery && !found_document && self.config.issuer.is_none() {
                return self.begin_legacy_discovery(failures);
            }
            return Step::Finish(Outcome::Failed(Error::Discovery(format!(
                "no usable protected resource metadata ({}); check the setting `resource`, or give the setting `issuer`",
                failures.join("; ")
            ))));
        };
        match crate::wire::get_json(&current.url) {
            Ok(request) => {
                let purpose = HttpPurpose::ResourceMetadata {
                    candidates,
                    current,
                    failures,
                    found_document,
                };
                self.http(RequestKind::ResourceMetadata, request, purpose)
            }
            Err(reason) => {
                failures.push(reason);
                self.next_resource_candidate(candidates, failures, found_document)
            }
        }
    }

    /// MCP revision 2025-03-26: the resource's origin is the authorization server; its RFC
    /// 8414 metadata is read at the origin's root (EDGE-27).
    fn begin_legacy_discovery(&mut self, failures: Vec<String>) -> Step {
        let resource = self.resource.clone().unwrap_or_default();
        let (origin, url) = match legacy_metadata_url(&resource) {
            Ok(found) => found,
            Err(reason) => return Step::Finish(Outcome::Failed(Error::Discovery(reason))),
        };
        self.warn(format!(
            "the resource publishes no protected resource metadata ({}); treating {} as its authorization server, as MCP revision 2025-03-26 did",
            failures.join("; "),
            sanitize(&origin)
        ));
        match crate::wire::get_json(&url) {
            Ok(request) => {
                let purpose = HttpPurpose::ServerMetadata {
                    issuer: origin,
                    candidates: VecDeque::new(),
                    current: url,
                    failures: Vec::new(),
                    prm: None,
                    legacy: true,
                };
                self.http(RequestKind::ServerMetadata, request, purpose)
            }
            Err(reason) => Step::Finish(Outcome::Failed(Error::Discovery(reason))),
        }
    }

    pub(super) fn begin_server_metadata(
        &mut self,
        issuer: String,
        prm: Option<ProtectedResource>,
    ) -> Step {
        match metadata_candidates(&issuer) {
            Ok(candidates) => {
                self.next_server_candidate(issuer, candidates.into(), Vec::new(), prm)
            }
            Err(reason) => Step::Finish(Outcome::Failed(Error::Discovery(reason))),
        }
    }

    pub(super) fn next_server_candidate(
        &mut self,
        issuer: String,
        mut candidates: VecDeque<String>,
        mut failures: Vec<String>,
        prm: Option<ProtectedResource>,
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
                    prm,
                    legacy: false,
                };
                self.http(RequestKind::ServerMetadata, request, purpose)
            }
            Err(reason) => {
                failures.push(reason);
                self.next_server_candidate(issuer, candidates, failures, prm)
            }
        }
    }

    /// Adopts validated metadata, after confirming PKCE support (MCP-13). The resource's
    /// own metadata, when discovery went through it, contributes its scopes (MCP-10) and the
    /// `resource` value to send, exactly as published (MCP-14).
    pub(super) fn adopt_server(
        &mut self,
        mut server: AuthServer,
        prm: Option<ProtectedResource>,
        server_supported: Option<Vec<String>>,
    ) {
        if self.config.grant == Grant::AuthorizationCode && !server.pkce_s256 {
            // MCP-13: PKCE support is confirmed before anything else happens.
            self.finish(Outcome::Failed(Error::PkceUnsupported {
                issuer: server.issuer,
            }));
            return;
        }
        if let Some(prm) = prm {
            server.resource_scopes = prm.scopes_supported;
            server.resource = Some(prm.resource);
        }
        self.scopes.server_supported = server_supported;
        self.server = Some(server);
    }
}
