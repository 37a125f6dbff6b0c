//! Effects: turning decisions into commands, and finishing operations.

use super::*;

impl Client {
    pub(super) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(super) fn http(
        &mut self,
        kind: RequestKind,
        request: http::Request<Vec<u8>>,
        purpose: HttpPurpose,
    ) -> Step {
        let id = RequestId(self.next_id());
        self.out.push_back(Command::Http { id, kind, request });
        Step::Wait(Wait::Http(id, purpose))
    }

    pub(super) fn store(&mut self, op: StoreOp, purpose: StorePurpose) -> Step {
        let id = StoreOpId(self.next_id());
        self.out.push_back(Command::Store { id, op });
        Step::Wait(Wait::Store(id, purpose))
    }

    pub(super) fn take_lease(&mut self) -> Step {
        if self.release_pending.is_some() {
            return Step::Wait(Wait::Release);
        }
        let Some(key) = self.current_key() else {
            return Step::Finish(Outcome::Failed(Error::Protocol(
                "no key for the lease".into(),
            )));
        };
        let op = StoreOp::TakeLease {
            key,
            holder: self.holder.clone(),
            ttl: self.config.lease_ttl,
        };
        self.store(op, StorePurpose::Lease)
    }

    /// Releases the lease without waiting for the answer (an unreleased lease only expires);
    /// the lease is not taken again until the answer is in ([`Wait::Release`]).
    pub(super) fn release_lease(&mut self) {
        if !std::mem::take(&mut self.lease_held) {
            return;
        }
        if let Some(key) = self.current_key() {
            let id = StoreOpId(self.next_id());
            let op = StoreOp::ReleaseLease {
                key,
                holder: self.holder.clone(),
            };
            self.release_pending = Some(id);
            self.out.push_back(Command::Store { id, op });
        }
    }

    /// Writes a change with compare-and-swap on the generation last read (INV-4, INV-9).
    pub(super) fn write(&mut self, patch: Patch) -> Step {
        self.write_with(patch, 0)
    }

    pub(super) fn write_with(&mut self, patch: Patch, retries: u32) -> Step {
        let (Some(server), Some(key)) = (self.server.clone(), self.current_key()) else {
            return Step::Finish(Outcome::Failed(Error::Protocol(
                "no authorization server to write a record for".into(),
            )));
        };
        let base = self.record.clone();
        self.write_base = base.as_ref().and_then(|r| r.dcr.clone());
        let expected = base.as_ref().map(|r| r.generation);
        let mut next = base.unwrap_or_else(|| Record::new(key.clone(), server.clone()));
        next.server = server;
        patch.apply(&mut next);
        next.generation = expected.unwrap_or(0) + 1;
        self.pending_write = Some(next.clone());
        let op = StoreOp::CompareAndSwap {
            key,
            expected,
            record: Box::new(next),
        };
        self.store(op, StorePurpose::Write { patch, retries })
    }

    /// Emits a warning, once per process: a long-running embedder calling `token()` per
    /// request hears about an expiring secret once, not per call.
    pub(super) fn warn(&mut self, message: String) {
        if self.warned.insert(message.clone()) {
            self.out.push_back(Command::Emit(Event::Warning(message)));
        }
    }

    pub(super) fn finish(&mut self, outcome: Outcome) {
        self.release_lease();
        self.just_renewed = false;
        self.wait = Wait::Nothing;
        let Some(job) = self.jobs.pop_front() else {
            return;
        };
        for op in job.waiters {
            let event = match &outcome {
                Outcome::Token(tokens) => Event::TokenReady {
                    op,
                    access_token: tokens.access_token.clone(),
                    expires_at: tokens.expires_at,
                    scheme: tokens.scheme(),
                },
                Outcome::Done => Event::Done { op },
                Outcome::LoginRequired(reason) => Event::LoginRequired {
                    op,
                    reason: reason.clone(),
                },
                Outcome::Failed(error) => Event::Failed {
                    op,
                    error: error.clone(),
                },
            };
            self.out.push_back(Command::Emit(event));
        }
    }

    pub(super) fn report_lifecycle(&mut self, now: Timestamp, at: usize) {
        if matches!(self.wait, Wait::Store(_, StorePurpose::Load)) {
            // A read says nothing about the lifecycle; report once its result is known.
            return;
        }
        let state = self.lifecycle(now);
        if self.reported != Some(state) {
            self.reported = Some(state);
            let at = at.min(self.out.len());
            self.out
                .insert(at, Command::Emit(Event::StateChanged(state)));
        }
    }
}
