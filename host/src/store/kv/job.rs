//! Bridges async callers and the backend's writer: a closure over a
//! [`WriteCx`] becomes a [`WriteJob`], and its result comes back through a
//! oneshot channel once the commit holding it is durable.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::backend::{RawWrite, WriteJob};
use super::ops::cx::WriteCx;
use crate::store::clock::Clock;
use crate::store::error::{Result, StateError};
use crate::store::limits::Limits;

type Work<R> = Box<dyn FnOnce(&mut WriteCx) -> Result<R> + Send>;

/// A write request and where its answer goes.
pub struct Job<R> {
    work: Option<Work<R>>,
    result: Option<Result<R>>,
    reply: oneshot::Sender<Result<R>>,
    clock: Arc<dyn Clock>,
    limits: Arc<Limits>,
}

impl<R: Send + 'static> Job<R> {
    /// A job and the receiver of its result.
    pub fn new(
        work: impl FnOnce(&mut WriteCx) -> Result<R> + Send + 'static,
        clock: Arc<dyn Clock>,
        limits: Arc<Limits>,
    ) -> (Box<Self>, oneshot::Receiver<Result<R>>) {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            work: Some(Box::new(work)),
            result: None,
            reply,
            clock,
            limits,
        };
        (Box::new(job), rx)
    }
}

impl<R: Send + 'static> WriteJob for Job<R> {
    fn apply(&mut self, tx: &mut dyn RawWrite) -> Result<()> {
        let Some(work) = self.work.take() else {
            return Err(StateError::Internal("a write request ran twice".into()));
        };
        let mut cx = WriteCx::new(tx, self.clock.now_ms(), &self.limits);
        let outcome = work(&mut cx).and_then(|r| cx.finish().map(|()| r));
        let status = match &outcome {
            Ok(_) => Ok(()),
            Err(e) => Err(e.clone()),
        };
        self.result = Some(outcome);
        status
    }

    fn void(&mut self) {
        self.result = None;
    }

    fn finish(self: Box<Self>, committed: Result<()>) {
        let answer = match (self.result, committed) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(r)), Ok(())) => Ok(r),
            (_, Err(e)) => Err(e),
            (None, Ok(())) => Err(StateError::Internal(
                "the write request failed unexpectedly; nothing was written".into(),
            )),
        };
        let _ = self.reply.send(answer);
    }
}
