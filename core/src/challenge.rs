//! `WWW-Authenticate` challenges from a protected resource (RFC 9110 §11.6.1, RFC 6750 §3,
//! RFC 9728 §5.1).
//!
//! A resource that answers 401 or 403 names its metadata (`resource_metadata`), the scope it
//! wants and the error. The parser takes several challenges in one header, any scheme
//! (`Bearer`, `DPoP`, …), case-insensitive names, quoted strings with escapes, and token68
//! values (EDGE-41). It never fails: what it cannot read it skips.

/// Header values longer than this are cut before parsing (EDGE-30).
pub const HEADER_LIMIT: usize = 8 * 1024;

/// One challenge: a scheme and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme as sent (`Bearer`, `DPoP`).
    pub scheme: String,
    /// A token68 value, when the challenge carries one instead of parameters.
    pub token68: Option<String>,
    /// Parameters with lowercase names, in order; a repeated name keeps its first value.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// A parameter by (lowercase) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the client takes from a resource's challenges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceChallenge {
    /// The protected resource metadata URL (PRM-1), from any scheme.
    pub resource_metadata: Option<String>,
    /// The scopes the resource asks for (MCP-10, MCP-11).
    pub scopes: Option<Vec<String>>,
    /// The RFC 6750 error (`invalid_token`, `insufficient_scope`).
    pub error: Option<String>,
}

/// Reads the parts of the challenges that matter to the client; values from a `Bearer`
/// challenge win over those of other schemes.
pub fn resource_challenge(headers: &[&str]) -> ResourceChallenge {
    let mut challenges: Vec<Challenge> = headers.iter().flat_map(|h| parse(h)).collect();
    challenges.sort_by_key(|c| !c.scheme.eq_ignore_ascii_case("bearer"));
    let first = |name: &str| {
        challenges
            .iter()
            .find_map(|c| c.param(name))
            .map(str::to_owned)
    };
    ResourceChallenge {
        resource_metadata: first("resource_metadata"),
        scopes: first("scope").map(|s| s.split_whitespace().map(str::to_owned).collect()),
        error: first("error"),
    }
}

/// Parses one header value into its challenges.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut end = header.len().min(HEADER_LIMIT);
    while !header.is_char_boundary(end) {
        end -= 1;
    }
    let mut cursor = Cursor {
        text: &header.as_bytes()[..end],
        at: 0,
    };
    let mut challenges: Vec<Challenge> = Vec::new();
    loop {
        cursor.skip(|b| b == b',' || is_space(b));
        if cursor.done() {
            break;
        }
        let word = cursor.take(is_tchar);
        if word.is_empty() {
            cursor.at += 1; // an unexpected byte: skip it
            continue;
        }
        cursor.skip(is_space);
        match challenges.last_mut() {
            Some(current) if cursor.peek() == Some(b'=') => {
                cursor.at += 1;
                cursor.skip(is_space);
                let value = if cursor.peek() == Some(b'"') {
                    cursor.quoted()
                } else {
                    cursor.take(is_tchar)
                };
                let name = word.to_ascii_lowercase();
                if current.param(&name).is_none() {
                    current.params.push((name, value));
                }
            }
            _ => {
                let token68 = cursor.token68();
                challenges.push(Challenge {
                    scheme: word,
                    token68,
                    params: Vec::new(),
                });
            }
        }
    }
    challenges
}

struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.at >= self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip(&mut self, what: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&what) {
            self.at += 1;
        }
    }

    fn take(&mut self, what: impl Fn(u8) -> bool) -> String {
        let start = self.at;
        self.skip(what);
        String::from_utf8_lossy(&self.text[start..self.at]).into_owned()
    }

    /// A quoted string with backslash escapes; an unterminated one runs to the end.
    fn quoted(&mut self) -> String {
        self.at += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(next) = self.peek() {
                        out.push(next);
                        self.at += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A token68 after a scheme, if what follows is one and not the first parameter.
    fn token68(&mut self) -> Option<String> {
        let start = self.at;
        self.skip(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
        self.skip(|b| b == b'=');
        let value = &self.text[start..self.at];
        let mut after = self.at;
        while self.text.get(after).copied().is_some_and(is_space) {
            after += 1;
        }
        let ends = after >= self.text.len() || self.text[after] == b',';
        if !value.is_empty() && ends {
            Some(String::from_utf8_lossy(value).into_owned())
        } else {
            self.at = start;
            None
        }
    }
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_resource_metadata_and_scope_prm_1() {
        let header = r#"Bearer error="insufficient_scope", scope="read write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource""#;
        let found = resource_challenge(&[header]);
        assert_eq!(
            found.resource_metadata.as_deref(),
            Some("https://mcp.example.com/.well-known/oauth-protected-resource")
        );
        assert_eq!(found.scopes, Some(vec!["read".into(), "write".into()]));
        assert_eq!(found.error.as_deref(), Some("insufficient_scope"));
    }

    #[test]
    fn several_challenges_and_schemes_edge_41() {
        let parsed = parse(
            r#"Basic realm="a, b", DPoP algs="ES256", resource_metadata="https://r/x", Bearer"#,
        );
        let schemes: Vec<_> = parsed.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, vec!["Basic", "DPoP", "Bearer"]);
        assert_eq!(parsed[0].param("realm"), Some("a, b"));
        assert_eq!(parsed[1].param("resource_metadata"), Some("https://r/x"));
        let found = resource_challenge(&[r#"DPoP resource_metadata="https://r/x""#]);
        assert_eq!(found.resource_metadata.as_deref(), Some("https://r/x"));
    }

    #[test]
    fn case_escapes_token68_and_duplicates_edge_41() {
        let parsed = parse(r#"bearer REALM="say \"hi\"", Error=invalid_token, error=other"#);
        assert_eq!(parsed[0].param("realm"), Some(r#"say "hi""#));
        assert_eq!(parsed[0].param("error"), Some("invalid_token"));
        let basic = parse("Basic dXNlcjpwdw==, Bearer realm=x");
        assert_eq!(basic[0].token68.as_deref(), Some("dXNlcjpwdw=="));
        assert_eq!(basic[1].param("realm"), Some("x"));
    }

    #[test]
    fn bearer_wins_over_other_schemes() {
        let found = resource_challenge(&[r#"DPoP scope="a""#, r#"Bearer scope="b""#]);
        assert_eq!(found.scopes, Some(vec!["b".into()]));
    }

    #[test]
    fn garbage_never_panics() {
        for header in [
            "",
            "=",
            "\"",
            "Bearer =",
            "Bearer a=\"unterminated",
            ",,,",
            "é=ü, ß",
            "Bearer realm=\"\\",
        ] {
            let _ = parse(header);
        }
        let long = "Bearer ".to_string() + &"a=b, ".repeat(5000);
        assert!(parse(&long)[0].params.len() < 2000);
    }
}
