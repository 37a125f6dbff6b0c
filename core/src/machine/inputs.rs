//! Handling inputs: folding answers, store results, callbacks and ticks into the state.
//! Handlers decide nothing about what comes next; they end by letting
//! [`Client::next_step`] choose.

use super::*;

impl Client {
    pub(super) fn handle_start(&mut self, stored: Option<Record>) {
        if self.started {
            self.warn("ignored a second start: build a new client for a new process".into());
            return;
        }
        self.started = true;
        if let Some(record) = stored {
            if self.record_fits(&record) {
                self.server = Some(record.server.clone());
                self.loaded = Some(record.key.clone());
                self.record = Some(record);
            } else {
                self.warn(format!(
                    "the stored record for {} belongs to another configuration (issuer, resource, redirect URI or scopes changed); it is left alone and the client starts afresh",
                    sanitize(&record.key.issuer)
                ));
            }
        }
    }

    pub(super) fn record_fits(&self, record: &Record) -> bool {
        let key = &record.key;
        let issuer_ok = self.config.issuer.as_ref().is_none_or(|i| *i == key.issuer);
        issuer_ok && record.server.issuer == key.issuer && self.is_key_for(key, &key.issuer)
    }

    pub(super) fn handle_operation(&mut self, id: OpId, op: Operation) {
        // Single flight: a caller asking for what is already being done joins it.
        if let Some(job) = self.jobs.iter_mut().find(|job| job.op == op) {
            job.waiters.push(id);
            return;
        }
        self.jobs.push_back(Job {
            op,
            waiters: vec![id],
            cimd_fallback_used: false,
            renewal_failure: None,
            renewed: false,
            reregistered: false,
            failure: None,
            obtained_tokens: false,
            refresh_failed: false,
            deleted_remote: false,
            lease_waits: 0,
            login: None,
            device: None,
            assertion: None,
            id_jag: None,
        });
    }

    /// A resource refused a request with these `WWW-Authenticate` values.
    ///
    /// - `resource_metadata` makes discovery run again (PRM-9);
    /// - `scope` is what the refused request needs, so the next authorization asks for it
    ///   (MCP-10, MCP-11);
    /// - `error="insufficient_scope"` (a 403) weighs a step-up: the next login asks for the
    ///   union of the earlier and the challenged scopes, or reports why it will not
    ///   (MCP-18, MCP26-8); the token stays in use for requests it suffices for;
    /// - any other challenge (a 401) means the token sent was not accepted: it is never
    ///   handed out again, so the next token request refreshes or asks for a login;
    /// - except a DPoP nonce challenge (`use_dpop_nonce`), which refuses only the proof.
    pub(super) fn handle_challenge(&mut self, headers: &[String], sent: Option<&Secret>) {
        let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        if crate::dpop::asks_for_nonce(&refs) {
            // RFC 9449 §9: the resource wants its nonce in the proof. The token was not
            // refused and the resource has not moved: the caller sends the request again
            // with the same token and a proof that carries the nonce.
            self.out.push_back(Command::Emit(Event::Challenged(
                ChallengeVerdict::TokenAgain,
            )));
            return;
        }
        let challenge = resource_challenge(&refs);
        if challenge.resource_metadata.is_some() && self.resource.is_some() {
            // PRM-9: fetch the metadata again; the AS may have changed.
            self.challenge_prm = challenge.resource_metadata;
        }
        if let Some(scopes) = challenge.scopes.as_ref().filter(|s| !s.is_empty()) {
            self.scopes.challenged = Some(scopes.clone());
        }
        let tokens = self.record.as_ref().and_then(|r| r.tokens.as_ref());
        let verdict = if challenge.error.as_deref() == Some("insufficient_scope") {
            let granted_text = tokens.and_then(|t| t.scope.as_deref()).map(split);
            let requested = self
                .scopes
                .requested
                .clone()
                .or_else(|| granted_text.clone())
                .unwrap_or_default();
            // RFC 6749 §5.1: an answer without `scope` granted what was asked for.
            let granted = match tokens {
                Some(_) => granted_text.unwrap_or_else(|| requested.clone()),
                None => Vec::new(),
            };
            let challenged = challenge.scopes.unwrap_or_default();
            let last = self
                .scopes
                .step_up
                .as_ref()
                .map(|(scopes, attempts)| (scopes.as_slice(), *attempts));
            match step_up(&requested, &granted, &challenged, last) {
                StepUp::Ask { scopes, attempt } => {
                    self.scopes.step_up = Some((scopes.clone(), attempt));
                    self.scopes.gave_up = None;
                    ChallengeVerdict::StepUp { scopes }
                }
                StepUp::GiveUp(reason) => {
                    self.scopes.gave_up = Some(reason.clone());
                    ChallengeVerdict::GiveUp(reason)
                }
            }
        } else {
            // A caller that names the token it sent is told to ask again when a newer one
            // is already held; only the token the resource actually saw is marked.
            if let Some(tokens) = tokens.filter(|t| sent.is_none_or(|s| *s == t.access_token)) {
                self.scopes.refused_token = Some(tokens.access_token.clone());
            }
            ChallengeVerdict::TokenAgain
        };
        self.out
            .push_back(Command::Emit(Event::Challenged(verdict)));
    }

    pub(super) fn handle_tick(&mut self, now: Timestamp) {
        match self.wait {
            Wait::Until(at) if now >= at => {
                self.wait = Wait::Nothing;
                // Someone else may have finished meanwhile: read again.
                self.loaded = None;
            }
            Wait::DevicePoll(at) if now >= at => {
                self.wait = Wait::Nothing;
                let step = self.poll_device(now);
                self.apply(step);
            }
            Wait::Callback => {
                let expired = self
                    .jobs
                    .front()
                    .and_then(|job| job.login.as_ref())
                    .is_some_and(|login| now >= login.deadline);
                if expired {
                    self.wait = Wait::Nothing;
                    self.finish(Outcome::Failed(Error::CallbackTimeout(
                        self.config.callback_timeout,
                    )));
                }
            }
            _ => {}
        }
    }

    pub(super) fn handle_callback(&mut self, now: Timestamp, query: &str) {
        if !matches!(self.wait, Wait::Callback) {
            self.warn("ignored a callback: no login is waiting for one".into());
            return;
        }
        let Some(login) = self.jobs.front().and_then(|job| job.login.as_ref()) else {
            return;
        };
        let expectation = CallbackExpectation {
            state: &login.state,
            issuer: &login.issuer,
            iss_required: login.iss_required,
        };
        match check_callback(query, &expectation) {
            // INV-11: a callback that fails the checks is ignored, and its error not shown.
            Err(reason) => self.warn(format!("ignored a callback: {reason}")),
            Ok(CallbackResult::Code(code)) => {
                self.wait = Wait::Nothing;
                let login = self.jobs.front_mut().and_then(|job| job.login.take());
                if let Some(login) = login {
                    self.send_code_exchange(now, &login, &code);
                }
            }
            Ok(CallbackResult::Error(error)) => {
                self.wait = Wait::Nothing;
                if let Some(job) = self.jobs.front_mut() {
                    job.login = None;
                }
                if !self.try_cimd_fallback(&error) {
                    self.finish(Outcome::Failed(Error::AuthorizationDenied(error)));
                }
            }
        }
    }

    pub(super) fn handle_http(
        &mut self,
        now: Timestamp,
        purpose: HttpPurpose,
        answer: Result<(u16, Vec<u8>), String>,
    ) {
        match purpose {
            HttpPurpose::ResourceMetadata {
                candidates,
                current,
                mut failures,
                mut found_document,
            } => {
                let found = answer.and_then(|(status, body)| {
                    if status != 200 {
                        return Err(format!("HTTP {status}"));
                    }
                    let document = json_object(&body)?;
                    found_document = true;
                    parse_protected_resource(&document, &current)
                });
                match found {
                    Ok(prm) => {
                        let chosen = match &self.config.issuer {
                            Some(issuer) if prm.authorization_servers.contains(issuer) => {
                                Some(issuer.clone())
                            }
                            Some(_) => None,
                            None => prm.authorization_servers.first().cloned(),
                        };
                        let servers = prm.authorization_servers.clone();
                        let step = match chosen {
                            Some(issuer) => self.begin_server_metadata(issuer, Some(prm)),
                            None => Step::Finish(Outcome::Failed(Error::Discovery(format!(
                                "the resource lists authorization servers {servers:?}, not the configured setting `issuer`"
                            )))),
                        };
                        self.apply(step);
                    }
                    Err(reason) => {
                        failures.push(format!("{}: {reason}", sanitize(&current.url)));
                        let step =
                            self.next_resource_candidate(candidates, failures, found_document);
                        self.apply(step);
                    }
                }
            }
            HttpPurpose::ServerMetadata {
                issuer,
                candidates,
                current,
                mut failures,
                prm,
                legacy,
            } => {
                let document = answer.and_then(|(status, body)| {
                    if status != 200 {
                        return Err(format!("HTTP {status}"));
                    }
                    json_object(&body)
                });
                let parsed = document.map(|document| {
                    let server = if legacy {
                        parse_legacy_server_metadata(&document, &issuer)
                    } else {
                        parse_server_metadata(&document, &issuer)
                    };
                    server.map(|server| (server, server_scopes(&document)))
                });
                match parsed {
                    Ok(Ok((server, supported))) => self.adopt_server(server, prm, supported),
                    Err(reason) if legacy => {
                        // EDGE-27: no metadata at the origin either; 2025-03-26 said to
                        // assume the default endpoints there.
                        self.warn(format!(
                            "no authorization server metadata at {} ({reason}); using /authorize, /token and /register there",
                            sanitize(&current)
                        ));
                        self.adopt_server(legacy_default_server(&issuer), None, None);
                    }
                    Ok(Err(reason)) if legacy => {
                        self.finish(Outcome::Failed(Error::Discovery(format!(
                            "{}: {reason}",
                            sanitize(&current)
                        ))));
                    }
                    Ok(Err(reason)) | Err(reason) => {
                        failures.push(format!("{}: {reason}", sanitize(&current)));
                        let step = self.next_server_candidate(issuer, candidates, failures, prm);
                        self.apply(step);
                    }
                }
            }
            HttpPurpose::Register {
                endpoint,
                replacing,
                digest,
            } => self.handle_registration_answer(now, &endpoint, replacing, digest, answer),
            HttpPurpose::Renew => self.handle_renewal_answer(now, answer),
            HttpPurpose::Delete => {
                let outcome = match answer {
                    Ok((status, body)) => parse_deletion(status, &body),
                    Err(detail) => Err(ManagementFailure::BadAnswer(detail)),
                };
                let client_id = self.client_id().unwrap_or_default().to_owned();
                match outcome {
                    Ok(deletion) => {
                        match deletion {
                            Deletion::Deleted => {}
                            Deletion::Unsupported => self.warn(format!(
                                "the server does not support deleting registrations; client {client_id} still exists there"
                            )),
                            // MGMT-16: a dead token and a deleted client look the same; either
                            // way nothing more can be done from here.
                            Deletion::AlreadyGone => self.warn(format!(
                                "the server no longer knows client {client_id} or no longer accepts its registration access token; if it still exists there, it stays registered"
                            )),
                        }
                        if let Some(job) = self.jobs.front_mut() {
                            job.deleted_remote = true;
                        }
                    }
                    Err(failure) => self.finish(Outcome::Failed(Error::Management(format!(
                        "deleting client {client_id} at the server failed: {failure}; the local record was kept, so try again later, or forget it locally only"
                    )))),
                }
            }
            HttpPurpose::Token {
                grant,
                refresh_token,
                dpop,
            } => self.handle_token_answer(now, grant, refresh_token, dpop.is_some(), answer),
            HttpPurpose::DeviceAuthorization { client_id } => {
                self.handle_device_authorization(now, client_id, answer)
            }
            HttpPurpose::DevicePoll { dpop } => {
                self.handle_device_poll(now, dpop.is_some(), answer)
            }
            HttpPurpose::TokenExchange => self.handle_exchange_answer(answer),
            HttpPurpose::IdpMetadata {
                issuer,
                candidates,
                current,
                failures,
            } => self.handle_idp_metadata(issuer, candidates, current, failures, answer),
        }
    }

    /// Keeps the token endpoint's latest `DPoP-Nonce` (RFC 9449 §8.2: any answer may bring
    /// a new one) for the next proof to that server. Returns whether the answer had one.
    pub(super) fn note_dpop_nonce(&mut self, headers: &http::HeaderMap) -> bool {
        match (crate::dpop::nonce_in(headers), &self.server) {
            (Some(nonce), Some(server)) => {
                self.dpop_nonce = Some((server.issuer.clone(), nonce.to_owned()));
                true
            }
            _ => false,
        }
    }

    /// A token request that carried a DPoP proof and was answered `use_dpop_nonce` (RFC 9449
    /// §8) is sent once more, with the nonce the answer brought (`nonce_given`); the answer
    /// is consumed.
    /// A second such answer ends the operation with an error that says so: the refresh token
    /// sent stays stored (INV-10), as for any refusal other than `invalid_grant`. Returns the
    /// purpose for every other answer.
    pub(super) fn retry_with_dpop_nonce(
        &mut self,
        now: Timestamp,
        purpose: HttpPurpose,
        status: u16,
        body: &[u8],
        nonce_given: bool,
    ) -> Option<HttpPurpose> {
        let Some(sent) = purpose.dpop() else {
            return Some(purpose);
        };
        let cause = crate::wire::server_error(status, body);
        if !(400..500).contains(&status) || !cause.is(crate::dpop::USE_DPOP_NONCE) {
            return Some(purpose);
        }
        let grant = match &purpose {
            HttpPurpose::Token { grant, .. } => *grant,
            _ => DEVICE_CODE_GRANT,
        };
        let hint = match (&sent.retry, nonce_given) {
            (Some(retry), true) => {
                let step = self.send_token_request_with(now, retry.request(), true);
                self.apply(step);
                return None;
            }
            (Some(_), false) => "; the server asked for a DPoP nonce (use_dpop_nonce) but sent none in a DPoP-Nonce header, so the request cannot be repeated with one",
            (None, _) => "; the server asked for a DPoP nonce (use_dpop_nonce) again after the request was repeated with the nonce it gave; its nonces may expire too fast, so try again",
        };
        self.finish(Outcome::Failed(Error::TokenRejected {
            grant: grant.into(),
            cause,
            hint: hint.into(),
        }));
        None
    }

    /// The device authorization answer (RFC 8628 §3.2): the user is told where to go and
    /// what to enter (§3.3), and the first poll waits one interval.
    fn handle_device_authorization(
        &mut self,
        now: Timestamp,
        client_id: String,
        answer: Result<(u16, Vec<u8>), String>,
    ) {
        let endpoint = self
            .server
            .as_ref()
            .and_then(|s| s.device_authorization_endpoint.clone())
            .unwrap_or_default();
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(detail) => {
                self.finish(Outcome::Failed(Error::Transport {
                    url: sanitize(&endpoint),
                    detail,
                }));
                return;
            }
        };
        match parse_device_authorization(status, &body, now) {
            Ok(authorization) => {
                let Some(job) = self.jobs.front_mut() else {
                    return;
                };
                job.device = Some(PendingDevice {
                    device_code: authorization.device_code,
                    client_id,
                    interval: authorization.interval,
                    expires_at: authorization.expires_at,
                });
                if let Some(&op) = job.waiters.first() {
                    self.out
                        .push_back(Command::Emit(Event::DeviceAuthorization {
                            op,
                            verification_uri: authorization.verification_uri,
                            user_code: authorization.user_code,
                            verification_uri_complete: authorization.verification_uri_complete,
                            expires_at: authorization.expires_at,
                        }));
                }
                let step = self.wait_for_device(now);
                self.apply(step);
            }
            Err(TokenFailure::BadAnswer(reason)) => {
                self.finish(Outcome::Failed(Error::Protocol(reason)))
            }
            Err(TokenFailure::Refused(cause)) if cause.is("unauthorized_client") => {
                if !self.try_cimd_fallback(&cause) {
                    self.finish(Outcome::Failed(Error::TokenRejected {
                        grant: "device authorization".into(),
                        cause,
                        hint: "; the server does not let this client use the device grant: log in through a browser instead".into(),
                    }));
                }
            }
            // The endpoint authenticates the client like the token endpoint, and its errors
            // mean the same (RFC 8628 §3.2): an unknown client registers again (DCR-24).
            Err(TokenFailure::Refused(cause)) => {
                self.handle_token_refusal(now, DEVICE_CODE_GRANT, None, cause)
            }
        }
    }

    /// One poll's answer (RFC 8628 §3.5): tokens end the login like a code exchange;
    /// `authorization_pending` waits another interval, `slow_down` five seconds more from now
    /// on; `access_denied` and `expired_token` end the login; anything else is a token
    /// endpoint refusal like any other.
    fn handle_device_poll(
        &mut self,
        now: Timestamp,
        dpop_sent: bool,
        answer: Result<(u16, Vec<u8>), String>,
    ) {
        let Some(device) = self.jobs.front_mut().and_then(|job| job.device.as_mut()) else {
            return;
        };
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(_) => {
                // RFC 8628 §3.5: a poll that got no answer is tried again, waiting twice as
                // long; the login still ends when the codes expire.
                device.interval = backed_off(device.interval);
                let step = self.wait_for_device(now);
                self.apply(step);
                return;
            }
        };
        match parse_token_answer(status, &body, now, None, dpop_sent) {
            Ok(tokens) => {
                if let Some(job) = self.jobs.front_mut() {
                    job.device = None;
                    job.obtained_tokens = true;
                }
                // INV-4: stored before they are handed out, as after a code exchange.
                let step = self.write(Patch::SetTokens(tokens));
                self.apply(step);
            }
            Err(TokenFailure::Refused(cause)) if cause.is("authorization_pending") => {
                let step = self.wait_for_device(now);
                self.apply(step);
            }
            Err(TokenFailure::Refused(cause)) if cause.is("slow_down") => {
                device.interval = slowed_down(device.interval);
                let step = self.wait_for_device(now);
                self.apply(step);
            }
            Err(TokenFailure::Refused(cause)) if cause.is("access_denied") => {
                self.finish(Outcome::Failed(Error::AuthorizationDenied(cause)));
            }
            Err(TokenFailure::Refused(cause)) if cause.is("expired_token") => {
                let at = device.expires_at.min(now);
                self.finish(Outcome::Failed(Error::DeviceCodeExpired(at)));
            }
            Err(TokenFailure::Refused(cause)) => {
                if let Some(job) = self.jobs.front_mut() {
                    job.device = None;
                }
                self.handle_token_refusal(now, DEVICE_CODE_GRANT, None, cause);
            }
            Err(TokenFailure::BadAnswer(reason)) => self.finish(Outcome::Failed(Error::Protocol(
                format!("token endpoint: {reason}"),
            ))),
        }
    }

    pub(super) fn handle_renewal_answer(
        &mut self,
        now: Timestamp,
        answer: Result<(u16, Vec<u8>), String>,
    ) {
        let Some(current) = self.registration().cloned() else {
            self.release_lease();
            return;
        };
        let outcome = match answer {
            Ok((status, body)) => parse_management_answer(&self.config, &current, status, &body),
            Err(detail) => Err(ManagementFailure::BadAnswer(format!("no answer: {detail}"))),
        };
        match outcome {
            Ok((mut renewed, warnings)) => {
                renewed.obtained_at = Some(now);
                warnings.into_iter().for_each(|w| self.warn(w));
                if let Some(job) = self.jobs.front_mut() {
                    job.renewed = true;
                }
                // INV-4: stored before anything else; the lease is released once it is.
                let step = self.write(Patch::Renewed(Box::new(renewed)));
                self.apply(step);
            }
            Err(failure) => {
                self.release_lease();
                let reason = failure.to_string();
                if let Some(job) = self.jobs.front_mut() {
                    job.renewal_failure = Some(reason.clone());
                }
                if !current.secret_expired(now) && self.current_op() != Some(Operation::Renew) {
                    // INV-6: before expiry a failed renewal is a warning; the old secret goes on.
                    self.warn(format!(
                        "renewing the client secret failed ({reason}); the current secret stays in use until {}",
                        current.secret_expires.at().map(|t| t.to_rfc3339()).unwrap_or_default()
                    ));
                }
                if matches!(failure, ManagementFailure::Gone(_)) {
                    // MGMT-16: management is over for this registration. What becomes of an
                    // expired secret is decided from the record like any other: a new
                    // registration where that needs no user, a login where it does.
                    let step = self.write(Patch::DropManagement);
                    self.apply(step);
                }
            }
        }
    }

    pub(super) fn handle_token_answer(
        &mut self,
        now: Timestamp,
        grant: &'static str,
        sent_refresh_token: Option<Secret>,
        dpop_sent: bool,
        answer: Result<(u16, Vec<u8>), String>,
    ) {
        let token_endpoint = self
            .server
            .as_ref()
            .map(|s| s.token_endpoint.clone())
            .unwrap_or_default();
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(detail) => {
                self.finish(Outcome::Failed(Error::Transport {
                    url: sanitize(&token_endpoint),
                    detail,
                }));
                return;
            }
        };
        match parse_token_answer(status, &body, now, sent_refresh_token.as_ref(), dpop_sent) {
            Ok(tokens) => {
                if let Some(job) = self.jobs.front_mut() {
                    job.obtained_tokens = true;
                }
                // INV-4, INV-10: the (possibly rotated) tokens are stored before anything else.
                let step = self.write(Patch::SetTokens(tokens));
                self.apply(step);
            }
            Err(TokenFailure::BadAnswer(reason)) => self.finish(Outcome::Failed(Error::Protocol(
                format!("token endpoint: {reason}"),
            ))),
            Err(TokenFailure::Refused(cause)) => {
                self.handle_token_refusal(now, grant, sent_refresh_token, cause)
            }
        }
    }

    pub(super) fn handle_token_refusal(
        &mut self,
        now: Timestamp,
        grant: &'static str,
        sent_refresh_token: Option<Secret>,
        cause: ServerError,
    ) {
        if self.try_cimd_fallback(&cause) {
            return;
        }
        let identity = self.identity();
        if let (Some(sent), true) = (sent_refresh_token, cause.is("invalid_grant")) {
            // RT-7: the refresh token is dead; drop it and never retry it, unless another
            // process stored a newer one meanwhile (INV-10).
            if let Some(job) = self.jobs.front_mut() {
                job.refresh_failed = true;
            }
            let step = self.write(Patch::DropRefreshToken(sent));
            self.apply(step);
            return;
        }
        let reregistered = self.jobs.front().is_none_or(|job| job.reregistered);
        if cause.is("invalid_client") && identity == IdentityKind::Dcr && !reregistered {
            if let Some(backoff) = self.registration_paused(None, now) {
                // INV-14: registering again already failed to help within this backoff.
                let error = Error::RegistrationPaused {
                    until: backoff.until,
                    reason: backoff.reason.clone(),
                };
                self.finish(Outcome::Failed(error));
                return;
            }
            let previous = self
                .record
                .as_ref()
                .and_then(|r| r.registration_backoff.clone());
            let reason =
                format!("the token endpoint stopped accepting the registered client: {cause}");
            let jitter = self.jitter();
            let backoff = Backoff::after(previous.as_ref(), now, reason, jitter);
            let unproven = self.registration().is_some_and(|r| r.unproven);
            if unproven {
                // A client registered moments ago and never accepted: registering yet again
                // now (and sending the user through the browser once more) would likely meet
                // the same fate. It is dropped, and the next registration waits for the
                // backoff, so the next call after it starts afresh (INV-13, INV-14).
                if let Some(job) = self.jobs.front_mut() {
                    job.failure = Some(Error::TokenRejected {
                        grant: grant.into(),
                        cause,
                        hint: format!(
                            "; the client was registered moments ago and never accepted, so Tenure does not register again before {}: check the token endpoint auth method (the setting `auth_method`)",
                            backoff.until
                        ),
                    });
                }
                let step = self.write(Patch::DropRegistration(Some(backoff)));
                self.apply(step);
                return;
            }
            // DCR-24, MGMT-16, EDGE-13: the server no longer knows this client (deleted,
            // expired, or a renewal answer was lost). Register again, once, and pause later
            // attempts in case the new client fares no better (INV-14).
            self.warn(format!(
                "the token endpoint no longer accepts the registered client ({cause}); registering again"
            ));
            if let Some(job) = self.jobs.front_mut() {
                job.reregistered = true;
            }
            let step = self.write(Patch::DropRegistration(Some(backoff)));
            self.apply(step);
            return;
        }
        let hint = match (cause.code.as_deref(), identity) {
            // SEP-1933: no retry and no other grant; the error says what to check.
            _ if self.config.grant == Grant::JwtBearer => self.bearer_refusal_hint(&cause),
            (Some("invalid_client"), IdentityKind::PreRegistered) => {
                "; check the setting `client_id` and the secret".to_string()
            }
            (Some("invalid_grant"), _) => "; log in again".into(),
            _ => String::new(),
        };
        self.finish(Outcome::Failed(Error::TokenRejected {
            grant: grant.into(),
            cause,
            hint,
        }));
    }

    /// A registration answer: stored before use (INV-4). A refusal pauses registration for
    /// this client key (INV-14) so that callers do not flood the server; a failed
    /// replacement leaves the current, still valid, secret in use.
    fn handle_registration_answer(
        &mut self,
        now: Timestamp,
        endpoint: &str,
        replacing: Option<String>,
        digest: String,
        answer: Result<(u16, Vec<u8>), String>,
    ) {
        let parsed = answer
            .map_err(|detail| Error::Transport {
                url: sanitize(endpoint),
                detail,
            })
            .and_then(|(status, body)| parse_registration(&self.config, endpoint, status, &body));
        match parsed {
            Ok((mut registration, warnings)) => {
                registration.obtained_at = Some(now);
                registration.unproven = true;
                warnings.into_iter().for_each(|w| self.warn(w));
                let patch = match replacing {
                    Some(old) => {
                        self.warn(format!(
                            "registered client {} to replace {old}, whose secret the server cannot renew; {old} stays registered at the server, which offers no way to delete it",
                            registration.client_id
                        ));
                        Patch::ReplaceRegistration(Box::new(registration))
                    }
                    None => Patch::SetRegistration(Box::new(registration)),
                };
                let step = self.write(patch);
                self.apply(step);
            }
            Err(error) => {
                self.release_lease();
                let refused = match &error {
                    Error::RegistrationRejected { cause, .. } => (400..500).contains(&cause.status),
                    _ => false,
                };
                if replacing.is_some() {
                    self.warn(format!(
                        "registering a client to replace the current one failed ({error}); the current secret stays in use until it expires"
                    ));
                    if let Some(job) = self.jobs.front_mut() {
                        job.renewed = true;
                    }
                } else if let Some(job) = self.jobs.front_mut() {
                    job.failure = Some(error.clone());
                }
                if refused {
                    let previous = self
                        .record
                        .as_ref()
                        .and_then(|r| r.registration_backoff.clone());
                    let reason = match &error {
                        Error::RegistrationRejected { cause, .. } => {
                            format!("the server refused the last registration: {cause}")
                        }
                        other => other.to_string(),
                    };
                    let jitter = self.jitter();
                    let mut backoff = Backoff::after(previous.as_ref(), now, reason, jitter);
                    backoff.request = Some(digest);
                    let step = self.write(Patch::PauseRegistration(backoff));
                    self.apply(step);
                } else if replacing.is_none() {
                    self.finish(Outcome::Failed(error));
                }
            }
        }
    }

    /// INV-3: a CIMD client id refused with `invalid_client` or `unauthorized_client` falls
    /// back to DCR once per login. Decided on the error code, never on its text.
    pub(super) fn try_cimd_fallback(&mut self, error: &ServerError) -> bool {
        let rejected = error.is("invalid_client") || error.is("unauthorized_client");
        let can = self.identity() == IdentityKind::Cimd
            && self.jobs.front().is_some_and(|job| !job.cimd_fallback_used);
        if !(rejected && can) {
            return false;
        }
        if let Some(job) = self.jobs.front_mut() {
            job.cimd_fallback_used = true;
        }
        self.warn(format!(
            "the authorization server rejected the CIMD client id ({error}); falling back to dynamic registration"
        ));
        let step = self.write(Patch::RejectCimd);
        self.apply(step);
        true
    }

    pub(super) fn handle_store(
        &mut self,
        now: Timestamp,
        purpose: StorePurpose,
        result: StoreResult,
    ) {
        match (purpose, result) {
            (_, StoreResult::Failed(reason)) => {
                self.release_lease();
                self.finish(Outcome::Failed(Error::Store(reason)));
            }
            (StorePurpose::Load, StoreResult::Loaded(found)) => {
                let key = self.current_key();
                match found {
                    Some(record) if Some(&record.key) == key.as_ref() => self.record = Some(record),
                    Some(_) => {
                        self.finish(Outcome::Failed(Error::Store(
                            "the store answered with a record of another key".into(),
                        )));
                        return;
                    }
                    None => self.record = None,
                }
                self.loaded = key;
            }
            (StorePurpose::Write { patch, .. }, StoreResult::Written) => {
                if let Some(record) = self.pending_write.take() {
                    self.record = Some(record);
                }
                if matches!(patch, Patch::Renewed(_)) {
                    // Reported as `Renewed` until the job ends.
                    self.just_renewed = true;
                }
                if let (Some(job), Patch::ReplaceRegistration(_)) = (self.jobs.front_mut(), &patch)
                {
                    // A replacement is the renewal of this job.
                    job.renewed = true;
                }
                if matches!(
                    patch,
                    Patch::SetRegistration(_)
                        | Patch::Renewed(_)
                        | Patch::ReplaceRegistration(_)
                        | Patch::SetTokens(_)
                        | Patch::DropRefreshToken(_)
                ) {
                    self.release_lease();
                }
            }
            (StorePurpose::Write { patch, retries }, StoreResult::Conflict(current)) => {
                // INV-9: someone wrote first. Adopt what they wrote, then apply the change to
                // it only if it still makes sense there; otherwise decide again from it.
                self.record = current;
                self.pending_write = None;
                let base = self.write_base.take();
                if !patch.still_applies(self.record.as_ref(), base.as_ref()) {
                    if matches!(
                        patch,
                        Patch::SetRegistration(_)
                            | Patch::Renewed(_)
                            | Patch::ReplaceRegistration(_)
                    ) {
                        self.release_lease();
                    }
                    return;
                }
                if retries >= MAX_WRITE_RETRIES {
                    self.finish(Outcome::Failed(Error::Store(
                        "the record kept changing under concurrent writers; try again".into(),
                    )));
                } else {
                    let step = self.write_with(patch, retries + 1);
                    self.apply(step);
                }
            }
            (StorePurpose::Delete, StoreResult::Deleted) => {
                self.record = None;
                self.finish(Outcome::Done);
            }
            (StorePurpose::Delete, StoreResult::Conflict(current)) => {
                self.record = current;
            }
            (StorePurpose::Lease, StoreResult::LeaseTaken) => {
                self.lease_held = true;
                // Read again under the lease: another replica may have just finished.
                self.loaded = None;
            }
            (StorePurpose::Lease, StoreResult::LeaseHeld) => {
                let Some(job) = self.jobs.front_mut() else {
                    return;
                };
                job.lease_waits += 1;
                if job.lease_waits > MAX_LEASE_WAITS {
                    self.finish(Outcome::Failed(Error::Store(
                        "another process has held the registration lease for too long; try again later".into(),
                    )));
                    return;
                }
                let exponent = job.lease_waits.min(5) - 1;
                let backoff = Duration::from_millis(LEASE_BACKOFF.as_millis() << exponent)
                    .min(LEASE_BACKOFF_CAP);
                self.wait = Wait::Until(now + backoff);
            }
            (_, other) => {
                self.finish(Outcome::Failed(Error::Store(format!(
                    "unexpected store answer {other:?}"
                ))));
            }
        }
    }
}
