//! The authorization endpoint: the browser step of the code flow with PKCE. There is no login
//! page; the simulated user always consents, so the only outcomes are a code or an error.

use http::Method;
use tenure_core::time::Timestamp;
use url::Url;

use super::wire::{self, Params, Refusal, Response};
use super::{
    allow, bump, is_cimd, scope_list, Party, PendingCode, SimulatedProvider, CIMD_REFUSED,
    CODE_LIFETIME,
};

impl SimulatedProvider {
    /// `GET {issuer}/authorize`: no login page, the user always consents. Errors found before
    /// the redirect URI is trusted are shown as a page and never redirected (OAUTH-2); the
    /// others go back to the client with `state` and `iss` (RFC 6749 §4.1.2.1, RFC 9207).
    pub(super) fn authorize(
        &mut self,
        now: Timestamp,
        method: &Method,
        params: &Params,
    ) -> Result<Response, Refusal> {
        allow(method, &[Method::GET], "GET")?;
        let page = |why: String| Refusal::page(400, why);
        let client_id = params
            .one("client_id")
            .map_err(page)?
            .ok_or_else(|| page("client_id is missing".into()))?;
        let redirect_uri = params.one("redirect_uri").map_err(page)?;
        let state = params.one("state").map_err(page)?;

        if is_cimd(client_id) && !self.config.cimd_accepted {
            // The refusal the client falls back to DCR on (design §1, CIMD-13).
            return Err(match (redirect_uri, state) {
                (Some(uri), Some(_)) if wire::redirect_uri_allowed(uri) => {
                    Refusal::Redirect(self.callback(
                        uri,
                        &[
                            ("error", "invalid_client"),
                            ("error_description", CIMD_REFUSED),
                        ],
                        state,
                    )?)
                }
                _ => page(CIMD_REFUSED.into()),
            });
        }
        let party = self
            .party(client_id)
            .ok_or_else(|| page("the client_id is unknown (invalid_client)".into()))?;
        let redirect_uri = redirect_uri.ok_or_else(|| page("redirect_uri is missing".into()))?;
        if !self.redirect_uri_accepted(client_id, redirect_uri) {
            return Err(page(
                "the redirect_uri is not registered for this client (NAT-9)".into(),
            ));
        }

        match self.authorization_request(now, &party, redirect_uri, params) {
            Ok(pending) => {
                let code = self.token_rng.token("code_");
                let location = self.callback(redirect_uri, &[("code", &code)], state)?;
                self.codes.insert(code, pending);
                bump(&mut self.stats.authorizations);
                Ok(wire::redirect(&location))
            }
            Err((error, description)) => Err(Refusal::Redirect(self.callback(
                redirect_uri,
                &[("error", error), ("error_description", &description)],
                state,
            )?)),
        }
    }

    /// The checks made once the redirect URI is trusted; errors are `(error, description)`
    /// for the redirect.
    fn authorization_request(
        &self,
        now: Timestamp,
        party: &Party,
        redirect_uri: &str,
        params: &Params,
    ) -> Result<PendingCode, (&'static str, String)> {
        let invalid_request = |why: String| ("invalid_request", why);
        match params.one("response_type").map_err(invalid_request)? {
            Some("code") => {}
            Some(other) => {
                return Err((
                    "unsupported_response_type",
                    format!("response_type `{other}` is not supported"),
                ))
            }
            None => return Err(invalid_request("response_type is missing".into())),
        }
        if !party.grant_types.iter().any(|g| g == "authorization_code") {
            return Err((
                "unauthorized_client",
                "the client is not registered for the authorization_code grant".into(),
            ));
        }
        // PKCE-8: the challenge is required and S256 is the only method (PKCE-4, MCP-12).
        let challenge = params
            .one("code_challenge")
            .map_err(invalid_request)?
            .filter(|c| wire::pkce_syntax_ok(c))
            .ok_or_else(|| invalid_request("a valid code_challenge is required".into()))?;
        if params
            .one("code_challenge_method")
            .map_err(invalid_request)?
            != Some("S256")
        {
            return Err(invalid_request("code_challenge_method must be S256".into()));
        }
        let scope = scope_list(params.one("scope").map_err(invalid_request)?.unwrap_or(""));
        self.check_scope(&scope, party.scope.as_deref())
            .map_err(|why| ("invalid_scope", why))?;
        let resources = params.all("resource");
        self.check_resources(&resources)
            .map_err(|why| ("invalid_target", why))?;
        Ok(PendingCode {
            client_id: party.client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            challenge: challenge.to_owned(),
            scope,
            resources: resources.into_iter().map(str::to_owned).collect(),
            expires_at: now + CODE_LIFETIME,
            redeemed: None,
        })
    }

    /// Whether `redirect_uri` is one the client registered: exactly, or for a native client
    /// any port on a loopback IP (NAT-2, EDGE-33). An accepted CIMD client may use any https
    /// or loopback URI, since its document is not fetched.
    fn redirect_uri_accepted(&self, client_id: &str, redirect_uri: &str) -> bool {
        if is_cimd(client_id) {
            return wire::redirect_uri_allowed(redirect_uri);
        }
        let Some(client) = self.clients.get(client_id) else {
            return false;
        };
        client
            .strings("redirect_uris")
            .unwrap_or_default()
            .iter()
            .any(|registered| {
                registered == redirect_uri
                    || (client.is_native()
                        && wire::same_loopback_ignoring_port(registered, redirect_uri))
            })
    }

    /// The location of a redirect to the client: `redirect_uri` with `pairs`, `state` and
    /// `iss` (RFC 9207) added to its query.
    fn callback(
        &self,
        redirect_uri: &str,
        pairs: &[(&str, &str)],
        state: Option<&str>,
    ) -> Result<String, Refusal> {
        let mut url = Url::parse(redirect_uri)
            .map_err(|_| Refusal::page(400, "the redirect_uri is not a URL"))?;
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in pairs {
                query.append_pair(name, value);
            }
            if let Some(state) = state {
                query.append_pair("state", state);
            }
            if self.config.iss_parameter {
                query.append_pair("iss", &self.config.issuer);
            }
        }
        Ok(url.into())
    }
}
