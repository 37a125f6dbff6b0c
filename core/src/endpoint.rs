//! Rules every URL the client talks to must follow (design §4).

use url::{Host, Url};

/// Whether a URL's host is a loopback host: `localhost`, 127.0.0.0/8 or `[::1]`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses an authorization-server endpoint and checks that it is `https`, or `http` on a
/// loopback host (MCP-19, DCR-2, MGMT-3). The error says what was wrong.
pub fn secure_endpoint(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`{}` is not a URL ({e})", sanitize(text)))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        _ => {
            return Err(format!(
                "`{}` is not https; only loopback hosts may use plain http",
                sanitize(text)
            ))
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{}` carries userinfo", sanitize(text)));
    }
    Ok(url)
}

/// A URL fit for logs and error messages: no userinfo, query or fragment (design §4).
/// Text that does not parse is cut at the first `?` or `#`.
pub fn sanitize(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => {
            let cut = text.find(['?', '#']).unwrap_or(text.len());
            let head = &text[..cut];
            match head.find('@') {
                Some(at) if head.contains("://") => {
                    let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
                    if at > scheme_end {
                        format!("{}{}", &head[..scheme_end], &head[at + 1..])
                    } else {
                        head.to_string()
                    }
                }
                _ => head.to_string(),
            }
        }
    }
}

/// Whether two URLs share scheme, host and port.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// Checks a registration client URI (design §4, EDGE-15, MGMT-1): absolute, https or
/// loopback, a path other than `/`, on the registration endpoint's origin. The URI is used
/// exactly as given afterwards; this only decides whether the registration access token may
/// be sent there.
pub fn check_registration_client_uri(uri: &str, registration_endpoint: &str) -> Result<(), String> {
    let url = secure_endpoint(uri)?;
    if url.path().is_empty() || url.path() == "/" {
        return Err(format!(
            "registration client URI `{}` has no path",
            sanitize(uri)
        ));
    }
    let endpoint = Url::parse(registration_endpoint)
        .map_err(|e| format!("registration endpoint is not a URL ({e})"))?;
    if !same_origin(&url, &endpoint) {
        return Err(format!(
            "registration client URI `{}` is not on the origin of the registration endpoint `{}`",
            sanitize(uri),
            sanitize(registration_endpoint)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_or_loopback_only() {
        assert!(secure_endpoint("https://as.example.com/token").is_ok());
        assert!(secure_endpoint("http://127.0.0.1:8080/token").is_ok());
        assert!(secure_endpoint("http://127.8.9.1/token").is_ok());
        assert!(secure_endpoint("http://localhost/token").is_ok());
        assert!(secure_endpoint("http://[::1]:9/token").is_ok());
        assert!(secure_endpoint("http://as.example.com/token").is_err());
        assert!(secure_endpoint("http://127.0.0.1.evil.com/token").is_err());
        assert!(secure_endpoint("ftp://as.example.com/").is_err());
        assert!(secure_endpoint("https://user:pw@as.example.com/").is_err());
        assert!(secure_endpoint("not a url").is_err());
    }

    #[test]
    fn sanitize_drops_userinfo_query_fragment() {
        assert_eq!(
            sanitize("https://u:p@as.example.com/a?code=xyz#frag"),
            "https://as.example.com/a"
        );
        assert_eq!(sanitize("weird://u:p@x y?secret"), "weird://x y");
        assert_eq!(sanitize("plain?token=1"), "plain");
    }

    #[test]
    fn registration_client_uri_rules_edge_15() {
        let reg = "https://as.example.com/reg";
        assert!(check_registration_client_uri("https://as.example.com/reg/abc", reg).is_ok());
        assert!(
            check_registration_client_uri("https://as.example.com/reg?client_id=abc", reg).is_ok()
        );
        assert!(check_registration_client_uri("https://as.example.com/", reg).is_err());
        assert!(check_registration_client_uri("https://other.example.com/reg/abc", reg).is_err());
        assert!(check_registration_client_uri("http://as.example.com/reg/abc", reg).is_err());
        assert!(check_registration_client_uri("https://as.example.com:8443/reg/a", reg).is_err());
    }
}
