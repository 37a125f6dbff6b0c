//! Which scopes to ask for: the first authorization, and step-up after a resource says the
//! token's scope is insufficient.
//!
//! MCP prescribes the order (MCP-10): the `scope` of the resource's `WWW-Authenticate`
//! challenge, else every scope the protected resource metadata lists in `scopes_supported`,
//! else no `scope` parameter at all. Challenged scopes are authoritative for the request that
//! was refused (MCP-11), and a step-up asks for the union of what was asked before and what
//! the challenge names (MCP26-8), so scopes only grow within one grant. `offline_access` is
//! added when the authorization server lists it and a refresh token is wanted (MCP26-7).
//!
//! A step-up is refused when it cannot help or has been tried too often (MCP-18): asking the
//! same authorization server again for scopes the refused token already holds would loop.

/// The scope that asks for a refresh token at servers that tie them to it (OIDC, MCP26-7).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// How many step-ups toward one and the same scope set are tried before giving up (MCP-18).
/// With the first authorization that makes at most three authorization requests for one
/// refused operation.
pub const MAX_STEP_UPS: u32 = 2;

/// What the scope choice of one authorization request is made from.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScopeSources<'a> {
    /// Scopes the embedder configured; always asked for.
    pub configured: &'a [String],
    /// Scopes asked for (or granted) earlier for this grant; kept so scopes only grow
    /// (MCP26-8).
    pub previous: Option<&'a [String]>,
    /// The `scope` of the resource's latest challenge (MCP-10, MCP-11).
    pub challenged: Option<&'a [String]>,
    /// The protected resource metadata's `scopes_supported` (MCP-10).
    pub resource_supported: Option<&'a [String]>,
    /// The authorization server metadata's `scopes_supported` (MCP26-7).
    pub server_supported: Option<&'a [String]>,
    /// Whether the grant wants a refresh token (a user login does; client credentials do
    /// not).
    pub wants_refresh: bool,
}

/// The scopes for an authorization or token request, in a stable order without duplicates.
/// Empty means: send no `scope` parameter (MCP-10).
///
/// - configured, earlier and challenged scopes are all asked for (MCP-11, MCP26-8);
/// - when none of those exist, every scope of the resource's `scopes_supported` (MCP-10);
/// - `offline_access` is added when Tenure chose the scopes itself (none are configured:
///   an embedder's own list is registered with the server and sent as it is), scopes are
///   asked for at all, a refresh token is wanted and the authorization server lists it;
///   never otherwise (MCP26-7). A request that would carry no scope stays without one:
///   `scope=offline_access` alone would replace the server's default scope.
pub fn requested_scopes(sources: &ScopeSources<'_>) -> Vec<String> {
    let mut scopes = Vec::new();
    let explicit = [
        Some(sources.configured),
        sources.previous,
        sources.challenged,
    ];
    for list in explicit.into_iter().flatten() {
        add_all(&mut scopes, list);
    }
    if scopes.is_empty() {
        if let Some(supported) = sources.resource_supported {
            add_all(&mut scopes, supported);
        }
    }
    let server_offers_offline = sources
        .server_supported
        .is_some_and(|list| list.iter().any(|s| s == OFFLINE_ACCESS));
    let chosen_here = sources.configured.is_empty();
    if sources.wants_refresh && server_offers_offline && chosen_here && !scopes.is_empty() {
        add_all(&mut scopes, &[OFFLINE_ACCESS.to_string()]);
    }
    scopes
}

fn add_all(into: &mut Vec<String>, scopes: &[String]) {
    for scope in scopes {
        if !scope.is_empty() && !into.contains(scope) {
            into.push(scope.clone());
        }
    }
}

/// Splits a space-separated `scope` value (RFC 6749 §3.3).
pub fn split(scope: &str) -> Vec<String> {
    scope.split_whitespace().map(str::to_owned).collect()
}

/// The outcome of weighing a step-up after a 403 `insufficient_scope` (MCP-18).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepUp {
    /// Authorize again for these scopes; this is attempt `attempt` toward them.
    Ask {
        /// The union of the earlier and the challenged scopes (MCP26-8).
        scopes: Vec<String>,
        /// 1 for the first step-up toward this scope set.
        attempt: u32,
    },
    /// Do not authorize again; the text says why, in words for the user.
    GiveUp(String),
}

/// Decides a step-up after the resource refused a token for insufficient scope.
///
/// `requested` is what the refused token's authorization asked for, `granted` what the
/// token answer said it holds (the requested scopes when the answer did not say, RFC 6749
/// §5.1), `challenged` the scopes the resource now names, and `last` the scope set and
/// attempt count of the previous step-up, if any.
///
/// The request asks for `requested ∪ challenged` (MCP26-8). It gives up when the refused
/// token already holds every one of those scopes (asking again would yield the same token,
/// EDGE-39), and after [`MAX_STEP_UPS`] step-ups toward the same set (MCP-18).
pub fn step_up(
    requested: &[String],
    granted: &[String],
    challenged: &[String],
    last: Option<(&[String], u32)>,
) -> StepUp {
    let mut scopes = Vec::new();
    add_all(&mut scopes, requested);
    add_all(&mut scopes, challenged);
    let shown = if challenged.is_empty() {
        "(none named)".to_string()
    } else {
        challenged.join(" ")
    };
    if scopes.iter().all(|s| granted.contains(s)) {
        return StepUp::GiveUp(format!(
            "the resource refused a token for insufficient scope although the token holds every scope it names ({shown}); authorizing again would not change that, so Tenure stops here: check which scopes the resource requires"
        ));
    }
    let attempt = match last {
        Some((previous, count)) if same_set(previous, &scopes) => count + 1,
        _ => 1,
    };
    if attempt > MAX_STEP_UPS {
        return StepUp::GiveUp(format!(
            "the resource still refuses the token for insufficient scope ({shown}) after {MAX_STEP_UPS} step-up authorizations for `{}`; Tenure stops here: the authorization server does not grant these scopes to this client",
            scopes.join(" ")
        ));
    }
    StepUp::Ask { scopes, attempt }
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|s| b.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Vec<String> {
        split(text)
    }

    #[test]
    fn challenge_scope_comes_first_mcp_10_mcp_11() {
        let challenged = list("mcp:basic");
        let supported = list("mcp:basic mcp:read mcp:write");
        let scopes = requested_scopes(&ScopeSources {
            challenged: Some(&challenged),
            resource_supported: Some(&supported),
            ..ScopeSources::default()
        });
        assert_eq!(scopes, list("mcp:basic"));
    }

    #[test]
    fn all_of_scopes_supported_without_a_challenge_scope_mcp_10() {
        let supported = list("mcp:basic mcp:read mcp:write");
        let scopes = requested_scopes(&ScopeSources {
            resource_supported: Some(&supported),
            ..ScopeSources::default()
        });
        assert_eq!(scopes, supported);
    }

    #[test]
    fn no_scope_at_all_when_nothing_names_one_mcp_10() {
        let server = list("openid offline_access");
        let scopes = requested_scopes(&ScopeSources {
            server_supported: Some(&server),
            wants_refresh: true,
            ..ScopeSources::default()
        });
        assert!(scopes.is_empty(), "{scopes:?}");
    }

    #[test]
    fn configured_scopes_are_kept_and_joined_by_the_challenge() {
        let configured = list("read");
        let challenged = list("write read");
        let supported = list("admin");
        let scopes = requested_scopes(&ScopeSources {
            configured: &configured,
            challenged: Some(&challenged),
            resource_supported: Some(&supported),
            ..ScopeSources::default()
        });
        assert_eq!(scopes, list("read write"));
    }

    #[test]
    fn earlier_scopes_are_never_dropped_mcp26_8() {
        let previous = list("mcp:basic");
        let challenged = list("mcp:write");
        let scopes = requested_scopes(&ScopeSources {
            previous: Some(&previous),
            challenged: Some(&challenged),
            ..ScopeSources::default()
        });
        assert_eq!(scopes, list("mcp:basic mcp:write"));
    }

    #[test]
    fn offline_access_only_when_listed_and_wanted_mcp26_7() {
        let supported = list("mcp:basic");
        let with = list("mcp:basic offline_access");
        let without = list("mcp:basic mcp:read");
        let ask = |server: &[String], wants_refresh| {
            requested_scopes(&ScopeSources {
                resource_supported: Some(&supported),
                server_supported: Some(server),
                wants_refresh,
                ..ScopeSources::default()
            })
        };
        assert_eq!(ask(&with, true), list("mcp:basic offline_access"));
        assert_eq!(ask(&with, false), list("mcp:basic"));
        assert_eq!(ask(&without, true), list("mcp:basic"));
        // An embedder's own scope list is sent as configured (and as registered).
        let configured = list("read");
        let pinned = requested_scopes(&ScopeSources {
            configured: &configured,
            server_supported: Some(&with),
            wants_refresh: true,
            ..ScopeSources::default()
        });
        assert_eq!(pinned, list("read"));
    }

    #[test]
    fn step_up_asks_for_the_union_mcp26_8_mcp_18() {
        let decision = step_up(
            &list("mcp:basic"),
            &list("mcp:basic"),
            &list("mcp:basic mcp:write"),
            None,
        );
        assert_eq!(
            decision,
            StepUp::Ask {
                scopes: list("mcp:basic mcp:write"),
                attempt: 1
            }
        );
    }

    #[test]
    fn step_up_gives_up_when_the_token_already_holds_everything_mcp_18() {
        let decision = step_up(
            &list("mcp:admin"),
            &list("mcp:admin"),
            &list("mcp:admin"),
            None,
        );
        assert!(matches!(decision, StepUp::GiveUp(ref why) if why.contains("Tenure stops here")));
    }

    #[test]
    fn step_up_retries_a_downscoped_grant_a_limited_number_of_times_mcp_18() {
        // The server keeps granting less than asked: try again, but not forever.
        let requested = list("a b");
        let granted = list("a");
        let challenged = list("b");
        let first = step_up(&requested, &granted, &challenged, None);
        assert_eq!(
            first,
            StepUp::Ask {
                scopes: list("a b"),
                attempt: 1
            }
        );
        let target = list("b a");
        let second = step_up(&requested, &granted, &challenged, Some((&target, 1)));
        assert!(matches!(second, StepUp::Ask { attempt: 2, .. }));
        let third = step_up(
            &requested,
            &granted,
            &challenged,
            Some((&target, MAX_STEP_UPS)),
        );
        assert!(matches!(third, StepUp::GiveUp(_)));
        // A new scope set starts counting again.
        let other = list("a c");
        let fresh = step_up(&requested, &granted, &other, Some((&target, MAX_STEP_UPS)));
        assert!(matches!(fresh, StepUp::Ask { attempt: 1, .. }));
    }
}
