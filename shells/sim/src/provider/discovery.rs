//! Discovery documents: RFC 8414 / OpenID Connect metadata and RFC 9728 protected resource
//! metadata.

use http::Method;
use serde_json::{json, Map, Value};

use super::wire::{self, Refusal, Response};
use super::{allow, bump, SimulatedProvider, AUTH_METHODS, GRANT_TYPES};

impl SimulatedProvider {
    /// RFC 8414 / OpenID discovery metadata (DISC-3, DISC-4: `issuer` is the configured string
    /// exactly; DISC-13: empty arrays are left out).
    pub(super) fn metadata(&mut self, method: &Method) -> Result<Response, Refusal> {
        allow(method, &[Method::GET], "GET")?;
        let base = self.issuer_base();
        let mut doc = Map::new();
        doc.insert("issuer".into(), json!(self.config.issuer));
        doc.insert(
            "authorization_endpoint".into(),
            json!(format!("{base}/authorize")),
        );
        doc.insert("token_endpoint".into(), json!(format!("{base}/token")));
        if self.config.registration_enabled {
            doc.insert(
                "registration_endpoint".into(),
                json!(format!("{base}/register")),
            );
        }
        doc.insert("response_types_supported".into(), json!(["code"]));
        doc.insert("grant_types_supported".into(), json!(GRANT_TYPES));
        doc.insert("code_challenge_methods_supported".into(), json!(["S256"]));
        doc.insert(
            "token_endpoint_auth_methods_supported".into(),
            json!(AUTH_METHODS),
        );
        if !self.config.scopes_supported.is_empty() {
            doc.insert(
                "scopes_supported".into(),
                json!(self.config.scopes_supported),
            );
        }
        if self.config.cimd_supported {
            doc.insert("client_id_metadata_document_supported".into(), json!(true));
        }
        if self.config.iss_parameter {
            doc.insert(
                "authorization_response_iss_parameter_supported".into(),
                json!(true),
            );
        }
        bump(&mut self.stats.metadata_fetches);
        Ok(wire::json(200, &Value::Object(doc)))
    }

    /// RFC 9728 protected resource metadata naming this issuer (PRM-4, PRM-8, MCP-5). The
    /// same document is served at the path and root well-known URLs.
    pub(super) fn protected_resource(&mut self, method: &Method) -> Result<Response, Refusal> {
        allow(method, &[Method::GET], "GET")?;
        let mut doc = Map::new();
        doc.insert("resource".into(), json!(self.config.resource));
        doc.insert("authorization_servers".into(), json!([self.config.issuer]));
        if let Some(scopes) = self
            .config
            .resource_scopes
            .as_ref()
            .filter(|s| !s.is_empty())
        {
            doc.insert("scopes_supported".into(), json!(scopes));
        }
        doc.insert("bearer_methods_supported".into(), json!(["header"]));
        bump(&mut self.stats.prm_fetches);
        Ok(wire::json(200, &Value::Object(doc)))
    }
}
