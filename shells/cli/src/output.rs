//! How `tenure token` prints a token, for the programs that read it: a shell variable, an
//! HTTP header, JSON, the header map of tools that ask a helper for headers, a Kubernetes
//! `ExecCredential`, or the git credential helper protocol.

use serde_json::json;
use tenure_core::Timestamp;

/// `tenure token --format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TokenFormat {
    /// The token alone (`TOKEN=$(tenure token NAME)`).
    #[default]
    Bearer,
    /// `Authorization: Bearer TOKEN`, one header line (`curl -H @-`).
    Header,
    /// `{"access_token", "token_type", "expires_at"}`.
    Json,
    /// `{"Authorization": "Bearer TOKEN"}`: a map of headers, for tools whose header helper
    /// prints one.
    HeadersJson,
    /// A Kubernetes `client.authentication.k8s.io/v1` `ExecCredential`.
    ExecCredential,
}

/// The printed form of `token` (which expires at `expires_at`, when known) for `name`.
/// `legacy_json` is the global `--json` without `--format`: the shape `tenure` printed
/// before formats existed, kept for the scripts that read it.
pub fn render(
    format: TokenFormat,
    legacy_json: bool,
    name: &str,
    token: &str,
    expires_at: Option<Timestamp>,
) -> String {
    let expiry = expires_at.map(|t| t.to_rfc3339());
    match format {
        TokenFormat::Bearer if legacy_json => {
            json!({"name": name, "access_token": token, "expires_at": expiry}).to_string()
        }
        TokenFormat::Bearer => token.to_string(),
        TokenFormat::Header => format!("Authorization: Bearer {token}"),
        TokenFormat::Json => {
            json!({"access_token": token, "token_type": "Bearer", "expires_at": expiry}).to_string()
        }
        TokenFormat::HeadersJson => json!({"Authorization": format!("Bearer {token}")}).to_string(),
        TokenFormat::ExecCredential => json!({
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "status": {"token": token, "expirationTimestamp": expiry},
        })
        .to_string(),
    }
}

/// What `tenure git-credential NAME get` prints: the token as the password, and its expiry
/// (git 2.40 and later drop a password past `password_expiry_utc`).
pub fn git_credential(username: &str, token: &str, expires_at: Option<Timestamp>) -> String {
    let mut out = format!("username={username}\npassword={token}\n");
    if let Some(at) = expires_at {
        out.push_str(&format!(
            "password_expiry_utc={}\n",
            at.unix_millis().div_euclid(1000)
        ));
    }
    out
}

/// The `key=value` lines git sends a credential helper, up to the first empty line; lines
/// without `=` are skipped, as git itself does.
pub fn git_request(input: &str) -> Vec<(String, String)> {
    input
        .lines()
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "planted-format-token";

    fn at() -> Option<Timestamp> {
        Timestamp::parse_rfc3339("2026-12-01T10:00:00Z")
    }

    #[test]
    fn every_format_carries_the_token_in_its_own_shape() {
        assert_eq!(render(TokenFormat::Bearer, false, "n", TOKEN, at()), TOKEN);
        assert_eq!(
            render(TokenFormat::Header, false, "n", TOKEN, at()),
            format!("Authorization: Bearer {TOKEN}")
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(TokenFormat::Json, false, "n", TOKEN, at())).unwrap();
        assert_eq!(json["access_token"], TOKEN);
        assert_eq!(json["token_type"], "Bearer");
        assert_eq!(json["expires_at"], "2026-12-01T10:00:00Z");
        let headers: serde_json::Value =
            serde_json::from_str(&render(TokenFormat::HeadersJson, false, "n", TOKEN, None))
                .unwrap();
        assert_eq!(headers, json!({"Authorization": format!("Bearer {TOKEN}")}));
        let exec: serde_json::Value = serde_json::from_str(&render(
            TokenFormat::ExecCredential,
            false,
            "n",
            TOKEN,
            at(),
        ))
        .unwrap();
        assert_eq!(exec["kind"], "ExecCredential");
        assert_eq!(exec["status"]["token"], TOKEN);
        assert_eq!(
            exec["status"]["expirationTimestamp"],
            "2026-12-01T10:00:00Z"
        );
        let legacy: serde_json::Value =
            serde_json::from_str(&render(TokenFormat::Bearer, true, "n", TOKEN, at())).unwrap();
        assert_eq!(legacy["name"], "n");
    }

    #[test]
    fn git_gets_the_token_as_password_with_its_expiry() {
        let out = git_credential("oauth2", TOKEN, at());
        assert_eq!(
            out,
            format!("username=oauth2\npassword={TOKEN}\npassword_expiry_utc=1796119200\n")
        );
        let asked = git_request("protocol=https\nhost=example.com\nnot a pair\n\nignored=1\n");
        assert_eq!(
            asked,
            vec![
                ("protocol".to_string(), "https".to_string()),
                ("host".to_string(), "example.com".to_string())
            ]
        );
    }
}
