//! The token endpoint: client authentication and the three grants (authorization code with
//! PKCE, refresh token with rotation, client credentials).

use http::Method;
use serde_json::{json, Map, Value};
use tenure_core::time::Timestamp;

use super::wire::{self, Credentials, Params, Refusal, Response};
use super::{
    allow, bump, is_cimd, scope_list, secret_expired, AccessToken, Grant, Party, SimulatedProvider,
    CIMD_REFUSED, GRANT_TYPES,
};

impl SimulatedProvider {
    /// `POST {issuer}/token`.
    pub(super) fn token(
        &mut self,
        now: Timestamp,
        request: &http::Request<Vec<u8>>,
    ) -> Result<Response, Refusal> {
        allow(request.method(), &[Method::POST], "POST")?;
        if !wire::has_content_type(request, wire::FORM) {
            return Err(Refusal::invalid_request(
                "the body must be application/x-www-form-urlencoded (OAUTH-6)",
            ));
        }
        let params = Params::from_form(request.body()).map_err(Refusal::invalid_request)?;
        let party = self.authenticate(now, request, &params)?;
        let grant_type = params
            .one("grant_type")
            .map_err(Refusal::invalid_request)?
            .ok_or_else(|| Refusal::invalid_request("grant_type is missing"))?;
        if !GRANT_TYPES.contains(&grant_type) {
            return Err(Refusal::bad(
                "unsupported_grant_type",
                format!("grant_type `{grant_type}` is not supported"),
            ));
        }
        if !party.grant_types.iter().any(|g| g == grant_type) {
            return Err(Refusal::bad(
                "unauthorized_client",
                format!("the client is not registered for the {grant_type} grant (DCR-6)"),
            ));
        }
        match grant_type {
            "authorization_code" => self.exchange_code(now, &party, &params),
            "refresh_token" => self.refresh(now, &party, &params),
            _ => self.client_credentials(now, &party, &params),
        }
    }

    /// Client authentication with the registered method (OAUTH-7): Basic with form-encoded
    /// id and secret (OAUTH-8), both in the body, or `client_id` alone for a public client.
    fn authenticate(
        &self,
        now: Timestamp,
        request: &http::Request<Vec<u8>>,
        params: &Params,
    ) -> Result<Party, Refusal> {
        let body_id = params.one("client_id").map_err(Refusal::invalid_request)?;
        let body_secret = params
            .one("client_secret")
            .map_err(Refusal::invalid_request)?;
        let (client_id, secret, used) = match wire::credentials(request) {
            Credentials::Basic { id, secret } => {
                if body_secret.is_some() {
                    return Err(Refusal::invalid_request(
                        "more than one client authentication method was used",
                    ));
                }
                if body_id.is_some_and(|body| body != id) {
                    return Err(Refusal::invalid_request(
                        "client_id in the body differs from the Basic credentials",
                    ));
                }
                (id, Some(secret), "client_secret_basic")
            }
            Credentials::Absent => match body_id {
                Some(id) => (
                    id.to_owned(),
                    body_secret.map(str::to_owned),
                    if body_secret.is_some() {
                        "client_secret_post"
                    } else {
                        "none"
                    },
                ),
                None => {
                    return Err(Refusal::oauth(
                        401,
                        "invalid_client",
                        "no client authentication was provided",
                    ))
                }
            },
            Credentials::Bearer(_) | Credentials::Malformed => {
                return Err(Refusal::invalid_request(
                    "the Authorization header is not usable client authentication",
                ))
            }
        };
        let unauthorized = |why: &str| {
            let refusal = Refusal::oauth(401, "invalid_client", why);
            if used == "client_secret_basic" {
                // RFC 6749 §5.2: MUST challenge when the client used the header.
                refusal.with_challenge(r#"Basic realm="tenure-sim""#)
            } else {
                refusal
            }
        };

        if is_cimd(&client_id) {
            if !self.config.cimd_accepted {
                return Err(Refusal::bad("invalid_client", CIMD_REFUSED));
            }
            if used != "none" {
                return Err(unauthorized(
                    "a CIMD client authenticates with `none` here (CIMD-6)",
                ));
            }
            return self
                .party(&client_id)
                .ok_or_else(|| unauthorized("unknown client"));
        }
        let client = self
            .clients
            .get(&client_id)
            .ok_or_else(|| unauthorized("unknown client"))?;
        if client.auth_method() != used {
            return Err(unauthorized(&format!(
                "the client is registered for {} (OAUTH-7)",
                client.auth_method()
            )));
        }
        if let Some(presented) = secret {
            match &client.secret {
                Some(current) if current.value == presented => {
                    if secret_expired(current.expires_at, now) {
                        // oidc-provider answers 400 here, not 401 (EDGE-2).
                        return Err(Refusal::bad(
                            "invalid_client",
                            "the client secret has expired",
                        ));
                    }
                }
                _ => return Err(unauthorized("invalid client secret")),
            }
        }
        self.party(&client_id)
            .ok_or_else(|| unauthorized("unknown client"))
    }

    /// The authorization code grant (OAUTH-6, PKCE-5, PKCE-8).
    fn exchange_code(
        &mut self,
        now: Timestamp,
        party: &Party,
        params: &Params,
    ) -> Result<Response, Refusal> {
        let invalid_grant = |why: &str| Refusal::bad("invalid_grant", why);
        let code = params
            .one("code")
            .map_err(Refusal::invalid_request)?
            .ok_or_else(|| Refusal::invalid_request("code is missing"))?;
        let pending = self
            .codes
            .get(code)
            .cloned()
            .ok_or_else(|| invalid_grant("the code is unknown"))?;
        if let Some(grant) = pending.redeemed {
            // OAUTH-5: a second use is refused and revokes what the first one granted.
            self.revoke_grant(grant);
            return Err(invalid_grant("the code was already used"));
        }
        if now >= pending.expires_at {
            return Err(invalid_grant("the code has expired"));
        }
        if pending.client_id != party.client_id {
            return Err(invalid_grant("the code was issued to another client"));
        }
        if params
            .one("redirect_uri")
            .map_err(Refusal::invalid_request)?
            != Some(pending.redirect_uri.as_str())
        {
            return Err(invalid_grant(
                "redirect_uri differs from the authorization request",
            ));
        }
        // A failed check leaves the code usable, as in oidc-provider.
        let verifier = params
            .one("code_verifier")
            .map_err(Refusal::invalid_request)?;
        if !verifier.is_some_and(|v| wire::pkce_syntax_ok(v) && wire::s256(v) == pending.challenge)
        {
            return Err(invalid_grant("PKCE verification failed"));
        }
        let resources = self.narrow_resources(params, &pending.resources)?;

        let refresh_token = self.token_rng.token("rt_");
        let grant_id = self.next_grant;
        self.next_grant += 1;
        self.grants.insert(
            grant_id,
            Grant {
                client_id: party.client_id.clone(),
                scope: pending.scope.clone(),
                resources,
                refresh_token: refresh_token.clone(),
                revoked: false,
            },
        );
        if let Some(code) = self.codes.get_mut(code) {
            code.redeemed = Some(grant_id);
        }
        // A refresh token comes with every code exchange for a client registered for the
        // refresh_token grant (DCR-6). oidc-provider also wants `offline_access` in the
        // scope; this server does not, so a client that registered for refresh always has
        // a refresh token to keep fresh.
        let issue_refresh = party.grant_types.iter().any(|g| g == "refresh_token");
        if issue_refresh {
            self.refresh_tokens.insert(refresh_token.clone(), grant_id);
        }
        bump(&mut self.stats.code_exchanges);
        Ok(self.token_answer(
            now,
            &party.client_id,
            Some(grant_id),
            &pending.scope,
            issue_refresh.then_some(refresh_token.as_str()),
        ))
    }

    /// The refresh token grant with rotation and reuse detection (RT-1, RT-3, RT-6, RT-9).
    fn refresh(
        &mut self,
        now: Timestamp,
        party: &Party,
        params: &Params,
    ) -> Result<Response, Refusal> {
        let invalid_grant = |why: &str| Refusal::bad("invalid_grant", why);
        let token = params
            .one("refresh_token")
            .map_err(Refusal::invalid_request)?
            .ok_or_else(|| Refusal::invalid_request("refresh_token is missing"))?;
        let grant_id = *self
            .refresh_tokens
            .get(token)
            .ok_or_else(|| invalid_grant("the refresh token is unknown"))?;
        let Some(grant) = self.grants.get(&grant_id) else {
            return Err(invalid_grant("the refresh token is unknown"));
        };
        if grant.client_id != party.client_id {
            return Err(invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if grant.revoked {
            return Err(invalid_grant("the grant was revoked"));
        }
        if grant.refresh_token != token {
            // RFC 9700 §4.14.2: a rotated-out token is a sign of theft; the grant dies.
            self.revoke_grant(grant_id);
            return Err(invalid_grant(
                "the refresh token was already used; the grant is revoked",
            ));
        }
        let scope = match params.one("scope").map_err(Refusal::invalid_request)? {
            None => grant.scope.clone(),
            Some(text) => {
                let requested = scope_list(text);
                if let Some(extra) = requested.iter().find(|s| !grant.scope.contains(s)) {
                    return Err(Refusal::bad(
                        "invalid_scope",
                        format!("scope `{extra}` was not granted (RT-1)"),
                    ));
                }
                requested
            }
        };
        let granted_resources = grant.resources.clone();
        self.narrow_resources(params, &granted_resources)?;

        let refresh_token = if self.config.rotate_refresh_tokens {
            let fresh = self.token_rng.token("rt_");
            self.refresh_tokens.insert(fresh.clone(), grant_id);
            if let Some(grant) = self.grants.get_mut(&grant_id) {
                grant.refresh_token = fresh.clone();
            }
            fresh
        } else {
            token.to_owned()
        };
        bump(&mut self.stats.refreshes);
        Ok(self.token_answer(
            now,
            &party.client_id,
            Some(grant_id),
            &scope,
            Some(&refresh_token),
        ))
    }

    /// The client credentials grant: a confidential client gets a token for itself.
    fn client_credentials(
        &mut self,
        now: Timestamp,
        party: &Party,
        params: &Params,
    ) -> Result<Response, Refusal> {
        let scope = scope_list(
            params
                .one("scope")
                .map_err(Refusal::invalid_request)?
                .unwrap_or(""),
        );
        self.check_scope(&scope, party.scope.as_deref())
            .map_err(|why| Refusal::bad("invalid_scope", why))?;
        self.check_resources(&params.all("resource"))
            .map_err(|why| Refusal::bad("invalid_target", why))?;
        bump(&mut self.stats.client_credentials);
        Ok(self.token_answer(now, &party.client_id, None, &scope, None))
    }

    /// The resources a token request may name: a subset of those authorized, or, when none
    /// were, any acceptable to [`Self::check_resources`] (RES-4, RT-10).
    fn narrow_resources(
        &self,
        params: &Params,
        authorized: &[String],
    ) -> Result<Vec<String>, Refusal> {
        let requested = params.all("resource");
        let allowed = if authorized.is_empty() {
            self.check_resources(&requested).is_ok()
        } else {
            requested.iter().all(|r| authorized.iter().any(|a| a == r))
        };
        if !allowed {
            return Err(Refusal::bad(
                "invalid_target",
                "the resource was not part of the authorization",
            ));
        }
        Ok(if requested.is_empty() {
            authorized.to_vec()
        } else {
            requested.into_iter().map(str::to_owned).collect()
        })
    }

    /// The one successful token answer (OAUTH-11), uncacheable.
    fn token_answer(
        &mut self,
        now: Timestamp,
        client_id: &str,
        grant: Option<u64>,
        scope: &[String],
        refresh_token: Option<&str>,
    ) -> Response {
        let access_token = self.token_rng.token("at_");
        let lifetime = self.config.access_token_lifetime;
        self.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                client_id: client_id.to_owned(),
                grant,
                expires_at: now + lifetime,
            },
        );
        let mut body = Map::new();
        body.insert("access_token".into(), json!(access_token));
        body.insert("token_type".into(), json!("Bearer"));
        body.insert("expires_in".into(), json!(lifetime.as_secs()));
        if let Some(token) = refresh_token {
            body.insert("refresh_token".into(), json!(token));
        }
        if !scope.is_empty() {
            body.insert("scope".into(), json!(scope.join(" ")));
        }
        wire::no_store(wire::json(200, &Value::Object(body)))
    }
}
