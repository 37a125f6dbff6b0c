//! `tenure-reqwest`: a [`reqwest_middleware`] middleware that puts a Tenure access token on
//! every request and answers the resource's refusals, so no caller handles a token or parses
//! `WWW-Authenticate`.
//!
//! ```text
//!   request ──▶ Authorization: Bearer <tenure.token()> ──▶ resource
//!                                                          │ 401, or 403 with a challenge
//!               retry with the verdict's token  ◀── tenure.challenge(sent, headers)
//!               (at most `budget` times, only a body that can be sent again)
//! ```
//!
//! ```no_run
//! # async fn demo(tenure: tenure_tokio::Tenure) -> Result<(), Box<dyn std::error::Error>> {
//! let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(tenure_reqwest::BearerAuth::new(tenure))
//!     .build();
//! let answer = http.get("https://api.example.com/items").send().await?;
//! # let _ = answer; Ok(()) }
//! ```
//!
//! A refused request is sent again only when its body can be replayed
//! ([`reqwest::Request::try_clone`]); a streamed body gets the refusal back, and the next
//! request carries the fresh token.
//!
//! A DPoP-bound token (RFC 9449, when the client's setting `dpop` asked for one and the
//! server issued it) goes as `Authorization: DPoP <token>` with a fresh proof in the `DPoP`
//! header of every request. A resource that wants a nonce in the proof (a 401 with a `DPoP`
//! challenge `error="use_dpop_nonce"` and a `DPoP-Nonce` header, RFC 9449 §9) gets the request
//! once more with a proof that carries it; the latest nonce of each origin is kept for the
//! next requests. Errors of Tenure itself (no token could be had) come back
//! as [`reqwest_middleware::Error::Middleware`] wrapping a [`tenure_tokio::TokenError`], which
//! the caller can downcast to tell a login required from a transient failure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::Extensions;
use reqwest::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Middleware, Next};
use tenure_tokio::core::dpop::{asks_for_nonce, nonce_in, DPOP_HEADER};
use tenure_tokio::{AccessToken, Tenure, TokenError, TokenScheme, Verdict};

/// How often one request is sent back for authorization: MCP's step-up budget (MCP-18).
pub const DEFAULT_BUDGET: u8 = 3;

/// The middleware. Cheap to clone (it holds a [`Tenure`] handle).
#[derive(Clone, Debug)]
pub struct BearerAuth {
    tenure: Tenure,
    budget: u8,
    interactive: bool,
    challenge_first: bool,
    /// The latest `DPoP-Nonce` of each origin (RFC 9449 §9), shared by the clones.
    nonces: Arc<Mutex<HashMap<String, String>>>,
}

impl BearerAuth {
    /// Tokens from `tenure`; a refusal that needs the user is handed back to the caller.
    pub fn new(tenure: Tenure) -> Self {
        BearerAuth {
            tenure,
            budget: DEFAULT_BUDGET,
            interactive: false,
            challenge_first: false,
            nonces: Arc::default(),
        }
    }

    /// While Tenure holds no token at all, sends requests without one and lets the
    /// resource's first challenge start discovery: its `resource_metadata` link and `scope`
    /// then decide where to register and what to ask for (MCP's discovery, PRM-9, MCP-10).
    /// Off by default: a client with a configured server gets its token first.
    pub fn challenge_first(mut self, yes: bool) -> Self {
        self.challenge_first = yes;
        self
    }

    /// The token to send first: `None` only in [`BearerAuth::challenge_first`] mode with
    /// nothing held.
    async fn first_token(&self) -> Result<Option<AccessToken>, TokenError> {
        if self.challenge_first {
            let (_, record) = self.tenure.status().await?;
            if record.and_then(|r| r.tokens).is_none() {
                return Ok(None);
            }
        }
        self.tenure.token().await.map(Some)
    }

    /// Logs in (through the browser) when the resource wants a step-up or a login is
    /// required, then retries: for command-line tools with a user at hand. Off by default,
    /// so a server never waits on a browser.
    pub fn interactive(mut self, yes: bool) -> Self {
        self.interactive = yes;
        self
    }

    /// How often one request may be sent back for authorization (default
    /// [`DEFAULT_BUDGET`]).
    pub fn budget(mut self, times: u8) -> Self {
        self.budget = times;
        self
    }

    /// What to send after `response` refused `sent`; `None` hands the refusal back.
    async fn answer(
        &self,
        sent: Option<&AccessToken>,
        response: &Response,
    ) -> Result<Option<AccessToken>, TokenError> {
        let verdict = self
            .tenure
            .challenge_headers(sent, response.headers())
            .await?;
        match verdict {
            Verdict::Retry(token) => Ok(Some(token)),
            Verdict::StepUp { .. } | Verdict::LoginRequired { .. } if self.interactive => {
                self.tenure.login().await.map(Some)
            }
            _ => Ok(None),
        }
    }
}

/// Whether `response` is a refusal Tenure can act on: any 401 (RFC 6750 §3.1), and a 403
/// that carries a challenge (a bare 403 is the resource's own decision). An answer that still
/// is one after the middleware is a refusal Tenure could not overcome.
pub fn is_refusal(response: &Response) -> bool {
    match response.status() {
        StatusCode::UNAUTHORIZED => true,
        StatusCode::FORBIDDEN => response.headers().contains_key(WWW_AUTHENTICATE),
        _ => false,
    }
}

impl BearerAuth {
    /// Puts `token` on `request`: its `Authorization` header and, for a DPoP token, a fresh
    /// proof for this request with the origin's latest nonce.
    async fn authorize(
        &self,
        request: &mut Request,
        token: &AccessToken,
    ) -> reqwest_middleware::Result<()> {
        let value = sensitive(&token.header_value(), "the access token")?;
        request.headers_mut().insert(AUTHORIZATION, value);
        if token.scheme() == TokenScheme::Dpop {
            let nonce = self.nonce_of(request.url());
            let proof = self
                .tenure
                .dpop_proof(
                    request.method().as_str(),
                    request.url().as_str(),
                    token,
                    nonce.as_deref(),
                )
                .await
                .map_err(reqwest_middleware::Error::middleware)?;
            let value = sensitive(proof.expose(), "the DPoP proof")?;
            request.headers_mut().insert(DPOP_HEADER, value);
        }
        Ok(())
    }

    fn nonce_of(&self, url: &reqwest::Url) -> Option<String> {
        let nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        nonces.get(&url.origin().ascii_serialization()).cloned()
    }

    /// Keeps the `DPoP-Nonce` of an answer from `url`'s origin: any answer may bring a new
    /// one (RFC 9449 §9). Returns whether it brought one.
    fn note_nonce(&self, url: &reqwest::Url, response: &Response) -> bool {
        let Some(nonce) = nonce_in(response.headers()) else {
            return false;
        };
        let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        nonces.insert(url.origin().ascii_serialization(), nonce.to_owned());
        true
    }
}

/// Whether `response` is a resource's request for a DPoP nonce (RFC 9449 §9): the token was
/// not refused, the proof lacked the nonce.
fn wants_nonce(response: &Response) -> bool {
    let values: Vec<&str> = response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    response.status() == StatusCode::UNAUTHORIZED && asks_for_nonce(&values)
}

/// A header value that is never logged; `what` names it when it cannot be one.
fn sensitive(text: &str, what: &str) -> reqwest_middleware::Result<HeaderValue> {
    let mut value = HeaderValue::from_str(text).map_err(|_| {
        reqwest_middleware::Error::middleware(TokenError::from(
            tenure_tokio::core::Error::Protocol(format!(
                "{what} cannot be sent in a header (it has characters a header may not carry)"
            )),
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[async_trait::async_trait]
impl Middleware for BearerAuth {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let mut token = self
            .first_token()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let mut request = request;
        let mut sent_back = 0;
        // One repetition with a resource's nonce per token (RFC 9449 §9).
        let mut nonce_sent_for: Option<AccessToken> = None;
        loop {
            let spare = request.try_clone();
            let url = request.url().clone();
            if let Some(token) = &token {
                self.authorize(&mut request, token).await?;
            }
            let response = next.clone().run(request, extensions).await?;
            let nonce_given = self.note_nonce(&url, &response);
            if let Some(dpop) = token.as_ref().filter(|t| t.scheme() == TokenScheme::Dpop) {
                if wants_nonce(&response) {
                    // The token was not refused: it is not reported to Tenure. A nonce asked
                    // for again right after it was sent is a refusal the caller gets.
                    let first = nonce_sent_for.as_ref() != Some(dpop);
                    match spare {
                        Some(again) if first && nonce_given => {
                            tracing::debug!("sending again with the resource's DPoP nonce");
                            nonce_sent_for = Some(dpop.clone());
                            request = again;
                            continue;
                        }
                        _ => return Ok(response),
                    }
                }
            }
            if !is_refusal(&response) || sent_back >= self.budget {
                return Ok(response);
            }
            let Some(again) = spare else {
                // A streamed body is gone: the caller gets the refusal, and Tenure still
                // hears of it so that the next request carries a fresh token.
                let _ = self.answer(token.as_ref(), &response).await;
                return Ok(response);
            };
            match self.answer(token.as_ref(), &response).await {
                Ok(Some(fresh)) => {
                    tracing::debug!(status = response.status().as_u16(), "sending again");
                    token = Some(fresh);
                    request = again;
                    sent_back += 1;
                }
                Ok(None) => return Ok(response),
                Err(error) => return Err(reqwest_middleware::Error::middleware(error)),
            }
        }
    }
}

/// The README's "Embedding Tenure" snippets, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeSnippets;
