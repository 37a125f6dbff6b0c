//! RFC 7591 dynamic client registration and RFC 7592 registration management, with
//! oidc-provider's rules: defaults filled in, full-replacement updates, the four
//! server-managed members refused, and rotation of the secret and the registration access
//! token on update.

use http::Method;
use serde_json::{json, Map, Value};
use tenure_core::time::Timestamp;

use super::wire::{self, Credentials, Refusal, Response};
use super::{
    allow, auth_method_of, bump, scope_list, string_list, Client, SimulatedProvider, AUTH_METHODS,
    EXTENSION_MEMBER, GRANT_TYPES, SERVER_MANAGED,
};

impl SimulatedProvider {
    /// `POST {issuer}/register`.
    pub(super) fn register(
        &mut self,
        now: Timestamp,
        request: &http::Request<Vec<u8>>,
    ) -> Result<Response, Refusal> {
        allow(request.method(), &[Method::POST], "POST")?;
        if let Some(expected) = &self.config.initial_access_token {
            // DCR-11, DCR-20: the RFC 6750 error of the token type, not a 7591 error.
            match wire::credentials(request) {
                Credentials::Bearer(token) if token == *expected => {}
                _ => return Err(Refusal::invalid_token()),
            }
        }
        let body = wire::json_object_body(request)?;
        let client_id = self.create_client(now, body)?;
        bump(&mut self.stats.registrations);
        Ok(wire::no_store(wire::json(
            201,
            &self.client_information(&client_id),
        )))
    }

    /// Validates registration metadata and creates the client; shared by registration and
    /// [`SimulatedProvider::preregister`].
    pub(super) fn create_client(
        &mut self,
        now: Timestamp,
        mut body: Map<String, Value>,
    ) -> Result<String, Refusal> {
        // The client never picks its own id or secret (DCR-21, MGMT-10); server-managed
        // members in a request are ignored.
        for name in SERVER_MANAGED.iter().chain(&["client_id", "client_secret"]) {
            body.remove(*name);
        }
        let mut metadata = self.validate_metadata(body)?;
        metadata.insert(EXTENSION_MEMBER.0.into(), json!(EXTENSION_MEMBER.1));
        let client_id = self.token_rng.token("c_");
        let secret = (auth_method_of(&metadata) != "none").then(|| self.issue_secret(now));
        let registration_access_token = self
            .config
            .management_enabled
            .then(|| self.issue_registration_access_token(&client_id));
        self.clients.insert(
            client_id.clone(),
            Client {
                metadata,
                issued_at: now.unix_seconds(),
                secret,
                registration_access_token,
            },
        );
        Ok(client_id)
    }

    /// Checks client metadata as oidc-provider does and fills in its defaults, so the answer
    /// holds everything that was registered (DCR-16). Used for registration and for update.
    fn validate_metadata(
        &self,
        mut metadata: Map<String, Value>,
    ) -> Result<Map<String, Value>, Refusal> {
        let invalid = |why: String| Refusal::bad("invalid_client_metadata", why);

        let method = match metadata.get("token_endpoint_auth_method") {
            None => "client_secret_basic".to_owned(), // DCR-5
            Some(Value::String(m)) if AUTH_METHODS.contains(&m.as_str()) => m.clone(),
            Some(other) => {
                return Err(invalid(format!(
                    "token_endpoint_auth_method {other} is not supported"
                )))
            }
        };
        metadata.insert("token_endpoint_auth_method".into(), json!(method));

        let grant_types = string_list(&metadata, "grant_types")
            .map_err(|()| invalid("grant_types must be an array of strings".into()))?
            .unwrap_or_else(|| vec!["authorization_code".into()]); // DCR-6
        if let Some(unknown) = grant_types
            .iter()
            .find(|g| !GRANT_TYPES.contains(&g.as_str()))
        {
            return Err(invalid(format!("grant type `{unknown}` is not supported")));
        }
        let code_flow = grant_types.iter().any(|g| g == "authorization_code");
        metadata.insert("grant_types".into(), json!(grant_types));

        let response_types = string_list(&metadata, "response_types")
            .map_err(|()| invalid("response_types must be an array of strings".into()))?
            .unwrap_or_else(|| {
                if code_flow {
                    vec!["code".into()]
                } else {
                    Vec::new()
                }
            });
        if response_types.iter().any(|r| r != "code") {
            return Err(invalid("only the response type `code` is supported".into()));
        }
        metadata.insert("response_types".into(), json!(response_types));

        // DCR-3, DCR-4; on update a missing list is a deletion (MGMT-7), refused the same way.
        let invalid_redirect = |why: &str| Refusal::bad("invalid_redirect_uri", why);
        match string_list(&metadata, "redirect_uris") {
            Err(()) => {
                return Err(invalid_redirect(
                    "redirect_uris must be an array of strings",
                ))
            }
            Ok(None) if code_flow => {
                return Err(invalid_redirect(
                    "redirect_uris is required for the authorization_code grant",
                ))
            }
            Ok(Some(uris)) if code_flow && uris.is_empty() => {
                return Err(invalid_redirect("redirect_uris must not be empty"))
            }
            Ok(Some(uris)) if !uris.iter().all(|uri| wire::redirect_uri_allowed(uri)) => {
                return Err(invalid_redirect(
                    "redirect URIs must be https, or http on a loopback host, without fragment",
                ))
            }
            Ok(_) => {}
        }

        if metadata.contains_key("jwks") && metadata.contains_key("jwks_uri") {
            return Err(invalid(
                "jwks and jwks_uri are mutually exclusive (DCR-7)".into(),
            ));
        }
        match metadata.get("scope") {
            None => {}
            Some(Value::String(scope)) => self
                .check_scope(&scope_list(scope), None)
                .map_err(invalid)?,
            Some(_) => return Err(invalid("scope must be a string".into())),
        }
        Ok(metadata)
    }

    /// `GET`, `PUT` or `DELETE` on `{issuer}/register/{client_id}` with the registration
    /// access token (MGMT-2). A wrong or old token and an unknown client get the same 401,
    /// as RFC 7592 prescribes (MGMT-15, MGMT-16).
    pub(super) fn manage(
        &mut self,
        now: Timestamp,
        client_id: &str,
        request: &http::Request<Vec<u8>>,
    ) -> Result<Response, Refusal> {
        let method = request.method();
        allow(
            method,
            &[Method::GET, Method::PUT, Method::DELETE],
            "GET, PUT, DELETE",
        )?;
        let current = self
            .clients
            .get(client_id)
            .and_then(|client| client.registration_access_token.as_deref());
        match wire::credentials(request) {
            Credentials::Bearer(token) if current == Some(token.as_str()) => {}
            _ => return Err(Refusal::invalid_token()),
        }
        if *method == Method::PUT {
            self.update(now, client_id, request)
        } else if *method == Method::DELETE {
            // MGMT-13: the client, its secret, its token and everything it was granted go.
            self.delete_client(client_id);
            bump(&mut self.stats.deletes);
            Ok(wire::empty(204))
        } else {
            // MGMT-4: the same body as the registration answer; nothing rotates on a read.
            bump(&mut self.stats.reads);
            Ok(wire::no_store(wire::json(
                200,
                &self.client_information(client_id),
            )))
        }
    }

    /// RFC 7592 update: a full replacement of the metadata (MGMT-7), which also renews the
    /// secret when secrets expire and rotates the registration access token.
    fn update(
        &mut self,
        now: Timestamp,
        client_id: &str,
        request: &http::Request<Vec<u8>>,
    ) -> Result<Response, Refusal> {
        let mut body = wire::json_object_body(request)?;
        if let Some(name) = SERVER_MANAGED.iter().find(|name| body.contains_key(**name)) {
            return Err(Refusal::invalid_request(format!(
                "`{name}` must not be sent in an update (MGMT-8)"
            )));
        }
        match body.remove("client_id") {
            Some(Value::String(id)) if id == client_id => {}
            _ => {
                return Err(Refusal::invalid_request(
                    "the body must carry the current client_id (MGMT-9)",
                ))
            }
        }
        let current_secret = self
            .clients
            .get(client_id)
            .and_then(|client| client.secret.clone());
        if let Some(sent) = body.remove("client_secret") {
            if current_secret.as_ref().map(|s| json!(s.value)) != Some(sent) {
                return Err(Refusal::invalid_request(
                    "client_secret does not match the current secret (MGMT-10)",
                ));
            }
        }
        let metadata = self.validate_metadata(body)?;
        let secret = if auth_method_of(&metadata) == "none" {
            None
        } else {
            match current_secret {
                // oidc-provider keeps a secret that never expires across updates.
                Some(secret) if self.config.secret_lifetime.is_none() => Some(secret),
                _ => Some(self.issue_secret(now)),
            }
        };
        let rotated = self
            .config
            .rotate_registration_access_token
            .then(|| self.issue_registration_access_token(client_id));
        let Some(client) = self.clients.get_mut(client_id) else {
            return Err(Refusal::invalid_token());
        };
        client.metadata = metadata;
        client.secret = secret;
        if let Some(token) = rotated {
            client.registration_access_token = Some(token);
        }
        bump(&mut self.stats.renewals);
        Ok(wire::no_store(wire::json(
            200,
            &self.client_information(client_id),
        )))
    }
}
