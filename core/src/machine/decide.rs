//! Deciding: the one place where the lifecycle chooses its next step.

use super::*;

impl Client {
    /// Carries out a step decided outside [`Client::next_step`].
    pub(super) fn apply(&mut self, step: Step) {
        match step {
            Step::Wait(wait) => self.wait = wait,
            Step::Finish(outcome) => self.finish(outcome),
        }
    }

    pub(super) fn advance(&mut self, now: Timestamp) {
        // A job whose failure waited for a write ends now.
        while matches!(self.wait, Wait::Nothing) {
            let Some(error) = self.jobs.front_mut().and_then(|job| job.failure.take()) else {
                break;
            };
            self.finish(Outcome::Failed(error));
        }
        // Bounded: every iteration either issues a command and returns, or finishes a job.
        while matches!(self.wait, Wait::Nothing) && self.started && !self.jobs.is_empty() {
            let step = self.next_step(now);
            self.apply(step);
        }
    }

    /// The one place where the lifecycle decides what happens next.
    pub(super) fn next_step(&mut self, now: Timestamp) -> Step {
        let Some(op) = self.current_op() else {
            return Step::Finish(Outcome::Done);
        };
        if let Some(error) = &self.config_error {
            return Step::Finish(Outcome::Failed(error.clone().into()));
        }
        if self.challenge_prm.is_some() {
            // PRM-9: a challenge named metadata; discover again, the AS may have moved.
            self.server = None;
        }
        let Some(server) = self.server.clone() else {
            if matches!(
                op,
                Operation::Forget | Operation::Logout | Operation::ForgetLocal
            ) && self.record.is_none()
            {
                // Nothing is held, so there is nothing to discover for.
                return Step::Finish(Outcome::Done);
            }
            return self.begin_discovery();
        };
        if !self
            .loaded
            .as_ref()
            .is_some_and(|k| self.is_key_for(k, &server.issuer))
        {
            let key = self.key_for(&server.issuer);
            return self.store(StoreOp::Load { key }, StorePurpose::Load);
        }
        match op {
            Operation::Logout => match self.record.as_ref().and_then(|r| r.tokens.as_ref()) {
                Some(_) => self.write(Patch::ClearTokens),
                None => Step::Finish(Outcome::Done),
            },
            Operation::Forget => self.step_forget(),
            Operation::ForgetLocal => self.step_delete_record(),
            Operation::Token | Operation::Login | Operation::Renew => {
                self.step_credentials(now, op, &server)
            }
        }
    }

    pub(super) fn step_forget(&mut self) -> Step {
        let deleted_remote = self.jobs.front().is_some_and(|job| job.deleted_remote);
        if !deleted_remote {
            if let Some(registration) = self.registration().filter(|r| r.manageable()) {
                let request = management_request(registration, http::Method::DELETE);
                return match request {
                    Ok(request) => self.http(
                        RequestKind::RegistrationDelete,
                        request,
                        HttpPurpose::Delete,
                    ),
                    Err(failure) => {
                        Step::Finish(Outcome::Failed(Error::Management(failure.to_string())))
                    }
                };
            }
            if self.identity() == IdentityKind::Dcr {
                let client_id = self.client_id().unwrap_or_default().to_owned();
                self.warn(format!("the server offers no registration management, so client {client_id} cannot be deleted there; it is only forgotten locally"));
            }
        }
        self.step_delete_record()
    }

    /// Removes the local record (compare-and-swap on its generation, INV-9).
    pub(super) fn step_delete_record(&mut self) -> Step {
        match &self.record {
            Some(record) => {
                let op = StoreOp::Delete {
                    key: record.key.clone(),
                    expected: record.generation,
                };
                self.store(op, StorePurpose::Delete)
            }
            None => Step::Finish(Outcome::Done),
        }
    }

    pub(super) fn step_credentials(
        &mut self,
        now: Timestamp,
        op: Operation,
        server: &AuthServer,
    ) -> Step {
        // 1. An identity.
        let identity = self.identity();
        if identity == IdentityKind::None || self.pre_registration_stale() {
            return self.step_register(now, server);
        }

        // 2. A secret that will keep working.
        match self.registration().cloned() {
            Some(registration) => match self.step_secret(now, op, &registration, server) {
                SecretState::Go(step) => return step,
                SecretState::Usable => {}
                SecretState::Unusable(error) => {
                    return self.step_without_secret(now, op, &registration, error)
                }
            },
            None if op == Operation::Renew => {
                return Step::Finish(Outcome::Failed(Error::RenewalFailed(format!(
                    "the client is {}; only a dynamically registered client has a secret to renew",
                    identity.as_str()
                ))))
            }
            None => {}
        }
        if op == Operation::Renew {
            return Step::Finish(Outcome::Done);
        }

        // 3. Tokens.
        let Some(job) = self.jobs.front() else {
            return Step::Finish(Outcome::Done);
        };
        let logged_in = job.obtained_tokens;
        let refresh_failed = job.refresh_failed;
        let tokens = self.record.as_ref().and_then(|r| r.tokens.clone());
        if let Some(tokens) = &tokens {
            // A token obtained during this job is handed out even when its lifetime is
            // shorter than the safety margin; asking again would only loop.
            if logged_in {
                return Step::Finish(Outcome::Token(tokens.clone()));
            }
        }
        if op == Operation::Token {
            if let Some(usable) = self.usable_tokens(now) {
                return Step::Finish(Outcome::Token(usable));
            }
        }
        if let Some(refused) = tokens.as_ref().filter(|t| {
            self.scopes.refused_token.as_ref() == Some(&t.access_token)
                && t.expires_at != Some(Timestamp::EPOCH)
        }) {
            // RFC 6750 §3.1: the resource refused this token. The refusal is stored, so no
            // later process hands it out again either, whatever happens next.
            return self.write(Patch::ExpireAccessToken(refused.access_token.clone()));
        }
        if op == Operation::Login {
            if let Some(reason) = self.scopes.gave_up.take() {
                // MCP-18: the step-up that would follow the resource's 403 cannot help.
                return Step::Finish(Outcome::Failed(Error::StepUpRefused(reason)));
            }
        }
        // Every path below that sends a token request (or starts the login that leads to
        // one) needs the DPoP key stored first; a token call that can only end in "login
        // required" writes nothing.
        let refreshable = tokens.as_ref().is_some_and(|t| t.refresh_token.is_some());
        let requests = op == Operation::Login
            || !self.config.grant.needs_user()
            || (refreshable && !refresh_failed);
        if requests {
            if let Some(step) = self.step_dpop_key(server) {
                return step;
            }
        }
        if op == Operation::Token && !refresh_failed {
            if let Some(refresh_token) = tokens.as_ref().and_then(|t| t.refresh_token.clone()) {
                // INV-10: one refresh in flight per grant, in this process because jobs run
                // one at a time, and among processes sharing the store because it runs under
                // the lease, after reading the record again: a process that waited for the
                // lease finds the winner's token and sends nothing.
                if !self.lease_held {
                    return self.take_lease();
                }
                return self.send_token_request(
                    now,
                    GrantRequest::Refresh {
                        refresh_token: &refresh_token,
                    },
                );
            }
        }
        match self.config.grant {
            Grant::ClientCredentials | Grant::JwtBearer => {
                // One token request among the processes sharing the store, as for a refresh;
                // a jwt-bearer assertion is read only under the lease, after the record.
                if !self.lease_held {
                    return self.take_lease();
                }
                if self.config.grant == Grant::JwtBearer {
                    return self.step_jwt_bearer(now, server);
                }
                let scopes = self.scopes_to_request(server);
                self.scopes.requested = Some(scopes.clone());
                self.send_token_request(now, GrantRequest::ClientCredentials { scopes: &scopes })
            }
            Grant::AuthorizationCode if op == Operation::Login => match self.device_login(server) {
                Ok(true) => self.begin_device_authorization(now, server),
                Ok(false) => self.begin_authorization(now, server),
                Err(error) => Step::Finish(Outcome::Failed(error)),
            },
            Grant::AuthorizationCode => Step::Finish(Outcome::LoginRequired(if refresh_failed {
                "the refresh token is no longer accepted".into()
            } else {
                "no valid tokens are held".into()
            })),
        }
    }

    /// Whether the stored pre-registered client id differs from the configured one (added,
    /// changed or removed since the record was written).
    pub(super) fn pre_registration_stale(&self) -> bool {
        let stored = self
            .record
            .as_ref()
            .and_then(|r| r.pre_registered_client_id.as_ref());
        stored != self.config.client_id.as_ref()
    }

    pub(super) fn step_register(&mut self, now: Timestamp, server: &AuthServer) -> Step {
        let cimd_rejected = self
            .record
            .as_ref()
            .and_then(|r| r.cimd.as_ref())
            .is_some_and(|c| c.rejected);
        match choose_method(&self.config, server, cimd_rejected) {
            _ if self.pre_registration_stale() => {
                self.write(Patch::SetPreRegistered(self.config.client_id.clone()))
            }
            Some(Method::PreRegistered) => Step::Finish(Outcome::Failed(Error::Protocol(
                "the pre-registered client id is already recorded".into(),
            ))),
            // No request: the URL is the client id (INV-2 keeps it apart from DCR).
            Some(Method::Cimd) => {
                let url = self.config.cimd_url.clone().unwrap_or_default();
                self.write(Patch::SetCimd(url))
            }
            Some(Method::Dcr) => self.send_registration(now, server, None),
            None => Step::Finish(Outcome::Failed(Error::NoRegistrationMethod {
                issuer: server.issuer.clone(),
            })),
        }
    }

    /// An RFC 7591 registration request, under the lease (INV-8), unless registration is
    /// paused (INV-14). `replacing` names the client a new registration would replace.
    pub(super) fn send_registration(
        &mut self,
        now: Timestamp,
        server: &AuthServer,
        replacing: Option<String>,
    ) -> Step {
        let Some(endpoint) = server.registration_endpoint.clone() else {
            return Step::Finish(Outcome::Failed(Error::NoRegistrationMethod {
                issuer: server.issuer.clone(),
            }));
        };
        // Decided before anything is sent, so no browser step follows a registration the
        // token endpoint would refuse.
        let method = match negotiate_auth_method(&self.config, server) {
            Ok((method, warning)) => {
                if let Some(warning) = warning {
                    self.warn(warning);
                }
                method
            }
            Err(error) => return Step::Finish(Outcome::Failed(error)),
        };
        // The device grant is asked for whenever the server offers it, whatever this login
        // uses: the same stored client may log in later from a machine without a browser.
        let device_grant = self.config.grant == Grant::AuthorizationCode
            && server.device_authorization_endpoint.is_some();
        let request = match registration_request(&self.config, method, &endpoint, device_grant) {
            Ok(request) => request,
            Err(error) => return Step::Finish(Outcome::Failed(error)),
        };
        let digest = request_digest(&request);
        let exempt = self.jobs.front().is_some_and(|job| job.reregistered);
        if let Some(backoff) = self.registration_paused(Some(&digest), now) {
            if !exempt {
                return Step::Finish(Outcome::Failed(Error::RegistrationPaused {
                    until: backoff.until,
                    reason: backoff.reason.clone(),
                }));
            }
        }
        if !self.lease_held {
            return self.take_lease();
        }
        self.http(
            RequestKind::Registration,
            request,
            HttpPurpose::Register {
                endpoint,
                replacing,
                digest,
            },
        )
    }

    /// Keeps the client secret usable (INV-1, INV-5, INV-6, INV-8): RFC 7592 renewal where
    /// the server offers it, else a replacement registration for a machine client whose
    /// secret is about to expire; a warning where neither is possible yet.
    fn step_secret(
        &mut self,
        now: Timestamp,
        op: Operation,
        registration: &Registration,
        server: &AuthServer,
    ) -> SecretState {
        let Some(job) = self.jobs.front() else {
            return SecretState::Usable;
        };
        if job.renewed {
            return SecretState::Usable;
        }
        let renewal_failure = job.renewal_failure.clone();
        // The operator replaced the private key: the registered one must follow before the
        // next assertion, which the server would check against the old key.
        let key_stale = registered_key_current(&self.config, registration) == Some(false);
        let due = op == Operation::Renew
            || key_stale
            || registration.secret_expiring(now, self.config.renew_within);
        if !due {
            // A lease taken to renew is kept if another replica renewed meanwhile: the token
            // step may want it next, and the job's end releases it.
            return SecretState::Usable;
        }
        let expired_at = registration
            .secret_expires
            .at()
            .filter(|_| registration.secret_expired(now));
        if registration.manageable() {
            if renewal_failure.is_none() && !self.renewal_attempted {
                if !self.lease_held {
                    // Under the lease the record is read again first: another replica may
                    // have renewed while this one waited (INV-8).
                    return SecretState::Go(self.take_lease());
                }
                self.renewal_attempted = true;
                let update = with_configured_key(&self.config, registration);
                return SecretState::Go(match management_request(&update, http::Method::PUT) {
                    Ok(request) => {
                        self.http(RequestKind::RegistrationUpdate, request, HttpPurpose::Renew)
                    }
                    Err(failure) => {
                        Step::Finish(Outcome::Failed(Error::RenewalFailed(failure.to_string())))
                    }
                });
            }
            let reason = renewal_failure.unwrap_or_else(|| {
                "renewal was already attempted since this process started".into()
            });
            return match expired_at {
                // INV-5, INV-6: an expired secret is never sent.
                Some(at) => SecretState::Unusable(Error::SecretExpired { at, reason }),
                None if op == Operation::Renew => {
                    SecretState::Unusable(Error::RenewalFailed(reason))
                }
                None => SecretState::Usable,
            };
        }

        // No registration management: the secret is replaced by registering anew.
        if op == Operation::Renew {
            let reason =
                renewal_failure.unwrap_or_else(|| ManagementFailure::Unavailable.to_string());
            return SecretState::Unusable(Error::RenewalFailed(reason));
        }
        if let Some(at) = expired_at {
            return SecretState::Unusable(Error::SecretExpired {
                at,
                reason: "the server offers no registration management to renew it".into(),
            });
        }
        if key_stale && !self.rotation_attempted && self.registration_paused(None, now).is_none() {
            // Without RFC 7592 the new key can only be registered with a new client.
            if !self.lease_held {
                return SecretState::Go(self.take_lease());
            }
            self.rotation_attempted = true;
            return SecretState::Go(self.send_registration(
                now,
                server,
                Some(registration.client_id.clone()),
            ));
        }
        let Some(at) = registration.secret_expires.at() else {
            return SecretState::Usable;
        };
        let early = self.config.grant == Grant::ClientCredentials
            && registration.outlives_window(self.config.renew_within)
            && !self.rotation_attempted
            && self.registration_paused(None, now).is_none();
        if !early {
            self.warn(match self.config.grant {
                Grant::ClientCredentials => format!(
                    "the client secret expires at {at} and the server cannot renew it; a new client will be registered then"
                ),
                Grant::AuthorizationCode => format!(
                    "the client secret expires at {at} and the server cannot renew it; after that, logging in again registers a new client"
                ),
                Grant::JwtBearer => format!(
                    "the client secret expires at {at} and the server cannot renew it"
                ),
            });
            return SecretState::Usable;
        }
        // A machine client replaces its client before the secret dies, so no caller ever
        // waits for a registration. Under the lease the record is read again first: another
        // replica may have replaced it already, and then it is no longer due.
        if !self.lease_held {
            return SecretState::Go(self.take_lease());
        }
        self.rotation_attempted = true;
        SecretState::Go(self.send_registration(now, server, Some(registration.client_id.clone())))
    }

    /// The stored secret cannot be used (`error` says why). A valid access token needs no
    /// secret and is still handed out; otherwise a client whose server cannot renew the
    /// secret gets a new registration where no user is needed or the user is logging in
    /// anyway, and a login is asked for where one is needed (INV-13: no dead end).
    fn step_without_secret(
        &mut self,
        now: Timestamp,
        op: Operation,
        registration: &Registration,
        error: Error,
    ) -> Step {
        let recoverable = op != Operation::Renew
            && !registration.manageable()
            && registration.secret_expired(now);
        let expired_at = registration.secret_expires.at().filter(|_| recoverable);
        if op == Operation::Token {
            if let Some(tokens) = self.usable_tokens(now) {
                self.warn(match (expired_at, self.config.grant) {
                    (Some(at), Grant::AuthorizationCode) => format!(
                        "the client secret expired at {at} and the server cannot renew it; the stored access token stays in use until it expires, then logging in registers a new client"
                    ),
                    (Some(at), _) => format!(
                        "the client secret expired at {at} and the server cannot renew it; a new client is registered once the stored access token expires"
                    ),
                    (None, _) => format!("{error}; the stored access token is still valid"),
                });
                return Step::Finish(Outcome::Token(tokens));
            }
        }
        let Some(at) = expired_at else {
            return Step::Finish(Outcome::Failed(error));
        };
        match (self.config.grant, op) {
            (Grant::AuthorizationCode, Operation::Token) => Step::Finish(Outcome::LoginRequired(
                format!(
                    "the client secret expired at {at} and the server cannot renew it; logging in registers a new client"
                ),
            )),
            _ => {
                // Once per job: a server that keeps issuing secrets that are already expired
                // must not be asked again and again (INV-14).
                if self.jobs.front().is_none_or(|job| job.reregistered) {
                    return Step::Finish(Outcome::Failed(error));
                }
                if let Some(job) = self.jobs.front_mut() {
                    job.reregistered = true;
                }
                let backoff = if registration.unproven {
                    let previous = self.record.as_ref().and_then(|r| r.registration_backoff.clone());
                    let reason = format!(
                        "the server issued a client secret that expired at {at}, before it could be used"
                    );
                    let jitter = self.jitter();
                    Some(Backoff::after(previous.as_ref(), now, reason, jitter))
                } else {
                    None
                };
                self.warn(format!(
                    "the client secret of {} expired at {at} and the server cannot renew it; registering a new client (the old one stays registered at the server, which offers no way to delete it)",
                    registration.client_id
                ));
                self.write(Patch::DropRegistration(backoff))
            }
        }
    }

    pub(super) fn begin_authorization(&mut self, now: Timestamp, server: &AuthServer) -> Step {
        let Some(endpoint) = server.authorization_endpoint.clone() else {
            return Step::Finish(Outcome::Failed(Error::Discovery(
                "the authorization server has no authorization_endpoint; set the setting `grant` to client_credentials".into(),
            )));
        };
        let Some(client_id) = self.client_id().map(str::to_owned) else {
            return Step::Finish(Outcome::Failed(Error::Protocol("no client id".into())));
        };
        // PKCE-1, PKCE-7: a fresh verifier and state for every authorization request.
        let verifier = Secret::new(self.entropy.token());
        let state = self.entropy.token();
        let redirect_uri = self
            .registration()
            .and_then(|r| r.redirect_uri.clone())
            .unwrap_or_else(|| self.config.redirect_uri.clone());
        let challenge = pkce_challenge(verifier.expose());
        let scopes = self.scopes_to_request(server);
        let url = authorization_url(&AuthorizationParams {
            endpoint: &endpoint,
            client_id: &client_id,
            redirect_uri: &redirect_uri,
            scopes: &scopes,
            state: &state,
            code_challenge: &challenge,
            resource: self.resource_indicator(),
        });
        let url = match url {
            Ok(url) => url,
            Err(reason) => return Step::Finish(Outcome::Failed(Error::Discovery(reason))),
        };
        let login = PendingLogin {
            state,
            verifier,
            issuer: server.issuer.clone(),
            redirect_uri,
            client_id,
            iss_required: server.iss_parameter_supported,
            deadline: now + self.config.callback_timeout,
        };
        if let Some(job) = self.jobs.front_mut() {
            job.login = Some(login);
        }
        self.scopes.requested = Some(scopes);
        self.out.push_back(Command::OpenBrowser { url });
        Step::Wait(Wait::Callback)
    }

    /// Whether this login uses the device authorization grant (RFC 8628) rather than the
    /// browser: the one rule, from the configured [`LoginFlow`] and what the server offers.
    pub(super) fn device_login(&self, server: &AuthServer) -> Result<bool, Error> {
        let offered = server.device_authorization_endpoint.is_some();
        match self.config.login_flow {
            LoginFlow::Browser => Ok(false),
            LoginFlow::DeviceIfOffered => Ok(offered),
            LoginFlow::Device if offered => Ok(true),
            LoginFlow::Device => Err(Error::Discovery(format!(
                "the authorization server {} offers no device login (its metadata has no device_authorization_endpoint); log in through a browser instead",
                sanitize(&server.issuer)
            ))),
        }
    }

    /// A device authorization request (RFC 8628 §3.1): the client authenticates as at the
    /// token endpoint and asks for the same scopes and resource a browser login would.
    pub(super) fn begin_device_authorization(
        &mut self,
        now: Timestamp,
        server: &AuthServer,
    ) -> Step {
        let Some(endpoint) = server.device_authorization_endpoint.clone() else {
            return Step::Finish(Outcome::Failed(Error::Protocol(
                "no device authorization endpoint".into(),
            )));
        };
        // The secret is checked as for a token request (INV-5); the machine is past the
        // renewal step, so an expired one is an error here.
        let (client_id, secret, method) = match self.client_auth(now) {
            Ok(auth) => auth,
            Err(error) => return Step::Finish(Outcome::Failed(error)),
        };
        let assertion = match self.client_assertion(now, server, &client_id, method) {
            Ok(assertion) => assertion,
            Err(error) => return Step::Finish(Outcome::Failed(error)),
        };
        let scopes = self.scopes_to_request(server);
        let request = device_authorization_request(
            &endpoint,
            token_endpoint_auth(&client_id, secret.as_ref(), assertion.as_ref(), method),
            &scopes,
            self.resource_indicator(),
        );
        self.scopes.requested = Some(scopes);
        match request {
            Ok(request) => self.http(
                RequestKind::DeviceAuthorization,
                request,
                HttpPurpose::DeviceAuthorization { client_id },
            ),
            Err(reason) => Step::Finish(Outcome::Failed(Error::Protocol(reason))),
        }
    }

    /// The next poll of the device login, or its end when the codes expired (RFC 8628
    /// §3.2: the client gives up at `expires_in`).
    pub(super) fn poll_device(&mut self, now: Timestamp) -> Step {
        let Some(device) = self.jobs.front().and_then(|job| job.device.clone()) else {
            return Step::Finish(Outcome::Failed(Error::Protocol(
                "no device login is pending".into(),
            )));
        };
        if now >= device.expires_at {
            return Step::Finish(Outcome::Failed(Error::DeviceCodeExpired(device.expires_at)));
        }
        if self.client_id() != Some(device.client_id.as_str()) {
            return Step::Finish(Outcome::Failed(Error::Protocol(
                "the client identity changed during the login; log in again".into(),
            )));
        }
        self.send_token_request(
            now,
            GrantRequest::DeviceCode {
                device_code: &device.device_code,
            },
        )
    }

    /// Waits for the next poll of the device login: one interval from `now`, or until the
    /// codes expire if that comes first.
    pub(super) fn wait_for_device(&mut self, now: Timestamp) -> Step {
        match self.jobs.front().and_then(|job| job.device.as_ref()) {
            Some(device) => Step::Wait(Wait::DevicePoll(
                (now + device.interval).min(device.expires_at),
            )),
            None => Step::Finish(Outcome::Failed(Error::Protocol(
                "no device login is pending".into(),
            ))),
        }
    }

    /// The scopes for the next authorization or client-credentials request (MCP-10,
    /// MCP-11, MCP26-7, MCP26-8): see [`crate::scope::requested_scopes`]. A pending step-up
    /// contributes its scope set; otherwise what was asked for before in this process, or
    /// the scope the stored token was granted.
    pub(super) fn scopes_to_request(&self, server: &AuthServer) -> Vec<String> {
        let granted = self
            .record
            .as_ref()
            .and_then(|r| r.tokens.as_ref())
            .and_then(|t| t.scope.as_deref())
            .map(split);
        let previous = self
            .scopes
            .step_up
            .as_ref()
            .map(|(scopes, _)| scopes.clone())
            .or_else(|| self.scopes.requested.clone())
            .or(granted);
        requested_scopes(&ScopeSources {
            configured: &self.config.scopes,
            previous: previous.as_deref(),
            challenged: self.scopes.challenged.as_deref(),
            resource_supported: server.resource_scopes.as_deref(),
            server_supported: self.scopes.server_supported.as_deref(),
            wants_refresh: self.config.grant == Grant::AuthorizationCode,
        })
    }

    pub(super) fn send_code_exchange(
        &mut self,
        now: Timestamp,
        login: &PendingLogin,
        code: &Secret,
    ) {
        let step = if self.client_id() != Some(login.client_id.as_str()) {
            Step::Finish(Outcome::Failed(Error::Protocol(
                "the client identity changed during the login; log in again".into(),
            )))
        } else {
            self.send_token_request(
                now,
                GrantRequest::Code {
                    code,
                    verifier: &login.verifier,
                    redirect_uri: &login.redirect_uri,
                },
            )
        };
        self.apply(step);
    }

    pub(super) fn send_token_request(&mut self, now: Timestamp, grant: GrantRequest<'_>) -> Step {
        self.send_token_request_with(now, grant, false)
    }

    /// A token request; `nonce_retry` when it is the one repetition of a request the server
    /// answered `use_dpop_nonce` (RFC 9449 §8), which is not repeated again.
    pub(super) fn send_token_request_with(
        &mut self,
        now: Timestamp,
        grant: GrantRequest<'_>,
        nonce_retry: bool,
    ) -> Step {
        let Some(server) = self.server.clone() else {
            return Step::Finish(Outcome::Failed(Error::Protocol(
                "no server metadata".into(),
            )));
        };
        let auth = match self.client_auth(now) {
            Ok(auth) => auth,
            Err(error) => return Step::Finish(Outcome::Failed(error)),
        };
        let (client_id, secret, method) = auth;
        let assertion = match self.client_assertion(now, &server, &client_id, method) {
            Ok(assertion) => assertion,
            Err(error) => return Step::Finish(Outcome::Failed(error)),
        };
        let auth = token_endpoint_auth(&client_id, secret.as_ref(), assertion.as_ref(), method);
        let grant_type = grant.grant_type();
        let proof = match self.token_proof(now, &server, &grant) {
            Ok(proof) => proof,
            Err(error) => return Step::Finish(Outcome::Failed(error)),
        };
        let dpop = proof.as_ref().map(|_| DpopSent {
            retry: (!nonce_retry).then(|| Box::new(OwnedGrant::of(grant))),
        });
        let (kind, purpose) = match grant {
            GrantRequest::Code { .. } => (
                RequestKind::CodeExchange,
                HttpPurpose::Token {
                    grant: grant_type,
                    refresh_token: None,
                    dpop,
                },
            ),
            GrantRequest::Refresh { refresh_token } => (
                RequestKind::Refresh,
                HttpPurpose::Token {
                    grant: grant_type,
                    refresh_token: Some(refresh_token.clone()),
                    dpop,
                },
            ),
            GrantRequest::DeviceCode { .. } => {
                (RequestKind::DeviceToken, HttpPurpose::DevicePoll { dpop })
            }
            GrantRequest::JwtBearer { .. } => (
                RequestKind::JwtBearer,
                HttpPurpose::Token {
                    grant: grant_type,
                    refresh_token: None,
                    dpop,
                },
            ),
            _ => (
                RequestKind::ClientCredentials,
                HttpPurpose::Token {
                    grant: grant_type,
                    refresh_token: None,
                    dpop,
                },
            ),
        };
        match token_request(
            &server.token_endpoint,
            auth,
            grant,
            self.resource_indicator(),
        ) {
            Ok(mut request) => {
                if let Some(proof) = proof {
                    match http::HeaderValue::from_str(proof.expose()) {
                        Ok(mut value) => {
                            value.set_sensitive(true);
                            request
                                .headers_mut()
                                .insert(crate::dpop::DPOP_HEADER, value);
                        }
                        Err(_) => {
                            return Step::Finish(Outcome::Failed(Error::Protocol(
                                "the DPoP proof cannot be sent in a header".into(),
                            )))
                        }
                    }
                }
                self.http(kind, request, purpose)
            }
            Err(reason) => Step::Finish(Outcome::Failed(Error::Protocol(reason))),
        }
    }

    /// Whether token requests to `server` carry a DPoP proof, as the setting `dpop` says
    /// from its metadata. A refresh of a token bound to the stored key carries one whatever
    /// the setting: its refresh token may be bound to the key too (RFC 9449 §5).
    pub(super) fn dpop_for(&self, server: &AuthServer, grant: &GrantRequest<'_>) -> bool {
        let bound_refresh = matches!(grant, GrantRequest::Refresh { .. })
            && self
                .record
                .as_ref()
                .and_then(|r| r.tokens.as_ref())
                .is_some_and(|t| t.scheme() == TokenScheme::Dpop);
        self.config.dpop.applies(server.dpop_es256) || bound_refresh
    }

    /// The DPoP proof for a token request to `server` (RFC 9449 §4.2, §5): `POST` to the
    /// token endpoint, signed with the stored key, with the server's latest nonce; `None`
    /// when the request carries none.
    fn token_proof(
        &mut self,
        now: Timestamp,
        server: &AuthServer,
        grant: &GrantRequest<'_>,
    ) -> Result<Option<Secret>, Error> {
        if !self.dpop_for(server, grant) {
            return Ok(None);
        }
        let nonce = self
            .dpop_nonce
            .as_ref()
            .filter(|(issuer, _)| *issuer == server.issuer)
            .map(|(_, nonce)| nonce.clone());
        self.sign_proof("POST", &server.token_endpoint, now, nonce.as_deref(), None)
            .map(Some)
    }

    /// Stores a DPoP key before the first token request that would carry a proof made with
    /// it (INV-4): `None` when no proof is due or the key is stored already.
    pub(super) fn step_dpop_key(&mut self, server: &AuthServer) -> Option<Step> {
        let stored = self.record.as_ref().is_some_and(|r| r.dpop_key.is_some());
        if stored || !self.config.dpop.applies(server.dpop_es256) {
            return None;
        }
        let key = DpopKey::generate(&mut self.entropy);
        Some(self.write(Patch::SetDpopKey(key)))
    }

    /// A fresh client assertion for `private_key_jwt` (RFC 7523 §2.2), or `None` for the
    /// other methods. Made for each request, with a `jti` from the client's entropy, so no
    /// two requests share one (RFC 7523 §3 item 7).
    pub(super) fn client_assertion(
        &mut self,
        now: Timestamp,
        server: &AuthServer,
        client_id: &str,
        method: crate::config::AuthMethod,
    ) -> Result<Option<Secret>, Error> {
        use crate::assertion::{AssertionAudience, AssertionClaims, AssertionKey};
        if method != crate::config::AuthMethod::PrivateKeyJwt {
            return Ok(None);
        }
        let pem = self
            .config
            .private_key
            .as_ref()
            .ok_or(Error::Config(crate::ConfigError::PrivateKeyMissing))?;
        let key = AssertionKey::from_pkcs8_pem(pem, self.config.private_key_id.as_deref())
            .map_err(|e| Error::Config(crate::ConfigError::PrivateKey(e)))?;
        let audience = match self.config.assertion_audience {
            AssertionAudience::Issuer => server.issuer.as_str(),
            _ => server.token_endpoint.as_str(),
        };
        let jti = self.entropy.token();
        Ok(Some(key.sign(&AssertionClaims {
            client_id,
            audience,
            jti: &jti,
            now,
        })))
    }

    /// The client id, secret and method for the token endpoint. A secret is only handed out
    /// while it has not expired (INV-5), and only ever to the token endpoint (MGMT-22).
    pub(super) fn client_auth(
        &self,
        now: Timestamp,
    ) -> Result<(String, Option<Secret>, crate::config::AuthMethod), Error> {
        use crate::config::AuthMethod;
        match self.identity() {
            IdentityKind::PreRegistered => Ok((
                self.config.client_id.clone().unwrap_or_default(),
                self.config.client_secret.clone(),
                self.config
                    .auth_method
                    .unwrap_or(if self.config.client_secret.is_some() {
                        AuthMethod::ClientSecretBasic
                    } else {
                        AuthMethod::None
                    }),
            )),
            IdentityKind::Cimd => Ok((
                self.client_id().unwrap_or_default().to_owned(),
                None,
                AuthMethod::None,
            )),
            IdentityKind::Dcr => {
                let registration = self
                    .registration()
                    .ok_or_else(|| Error::Protocol("no registration".into()))?;
                if let Some(at) = registration
                    .secret_expires
                    .at()
                    .filter(|_| registration.secret_expired(now))
                {
                    return Err(Error::SecretExpired {
                        at,
                        reason: "it was not renewed".into(),
                    });
                }
                Ok((
                    registration.client_id.clone(),
                    registration.client_secret.clone(),
                    registration.token_endpoint_auth_method,
                ))
            }
            IdentityKind::None => Err(Error::Protocol("no client identity".into())),
        }
    }
}

/// How the client authenticates at the token endpoint, from its id, secret or assertion, and
/// method.
fn token_endpoint_auth<'a>(
    client_id: &'a str,
    secret: Option<&'a Secret>,
    assertion: Option<&'a Secret>,
    method: crate::config::AuthMethod,
) -> ClientAuth<'a> {
    if let (crate::config::AuthMethod::PrivateKeyJwt, Some(assertion)) = (method, assertion) {
        return ClientAuth::Assertion {
            client_id,
            assertion,
        };
    }
    match (method, secret) {
        (crate::config::AuthMethod::ClientSecretBasic, Some(secret)) => {
            ClientAuth::Basic { client_id, secret }
        }
        (crate::config::AuthMethod::ClientSecretPost, Some(secret)) => {
            ClientAuth::Post { client_id, secret }
        }
        _ => ClientAuth::None { client_id },
    }
}

/// A digest of a registration request: its body (the metadata) and its `Authorization`
/// header (the initial access token), SHA-256 in lowercase hex. Kept with a refusal so that a
/// changed request is not held back by the refusal of another (INV-14).
fn request_digest(request: &http::Request<Vec<u8>>) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(request.body());
    if let Some(authorization) = request.headers().get(http::header::AUTHORIZATION) {
        hasher.update(b"\n");
        hasher.update(authorization.as_bytes());
    }
    crate::key::lower_hex(&hasher.finalize())
}
