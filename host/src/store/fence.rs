//! [`WriteFence`]: closes one life of an instance to writes. Every write a
//! guest call makes passes the fence of the deployment it runs in; a
//! destroy closes the fence and waits for the writes already past it, so
//! no call still running when its instance is destroyed can write into the
//! deleted scope afterwards.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::error::{Result, StateError};

/// The high bit: closed. The other bits: writes past the fence now.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// A gate that writes pass while it is open; see the module docs.
#[derive(Debug)]
pub struct WriteFence {
    /// What it guards, for the error of a write it refuses.
    instance: String,
    state: AtomicUsize,
    drained: Notify,
}

/// A write past a [`WriteFence`]; the fence counts it until it is dropped.
#[derive(Debug)]
#[must_use = "the write is counted only while its pass is held"]
pub struct FencePass<'a>(&'a WriteFence);

impl Drop for FencePass<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

impl WriteFence {
    /// An open fence for the writes of `instance`.
    pub fn new(instance: impl Into<String>) -> Self {
        WriteFence {
            instance: instance.into(),
            state: AtomicUsize::new(0),
            drained: Notify::new(),
        }
    }

    /// Let one write through, or refuse it (`unavailable`) once closed.
    pub fn enter(&self) -> Result<FencePass<'_>> {
        let before = self.state.fetch_add(1, Ordering::AcqRel);
        if before & CLOSED != 0 {
            self.leave();
            return Err(StateError::Unavailable(format!(
                "instance {:?} is being destroyed: a call still running in it can no longer \
                 write",
                self.instance
            )));
        }
        Ok(FencePass(self))
    }

    fn leave(&self) {
        let before = self.state.fetch_sub(1, Ordering::AcqRel);
        if before == CLOSED | 1 {
            self.drained.notify_waiters();
        }
    }

    /// Whether the fence refuses writes.
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// How many writes are past the fence now.
    pub fn in_flight(&self) -> usize {
        self.state.load(Ordering::Acquire) & !CLOSED
    }

    /// Refuse every new write, then wait up to `wait` for the writes
    /// already past the fence to end. Returns whether they all did.
    pub async fn close(&self, wait: Duration) -> bool {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        let drained = async {
            loop {
                let notified = self.drained.notified();
                tokio::pin!(notified);
                // Registered before the check: a last write ending between
                // the check and the wait still wakes it.
                notified.as_mut().enable();
                if self.in_flight() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(wait, drained).await.is_ok()
    }

    /// Let writes through again (a destroy that failed).
    pub fn reopen(&self) {
        self.state.fetch_and(!CLOSED, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_closed_fence_refuses_and_reopens() {
        let f = WriteFence::new("shop");
        assert!(
            f.close(Duration::from_millis(10)).await,
            "nothing in flight"
        );
        let e = f.enter().unwrap_err();
        assert_eq!(e.code(), "unavailable");
        assert!(e.to_string().contains("\"shop\" is being destroyed"), "{e}");
        assert_eq!(f.in_flight(), 0, "a refused write is not counted");
        f.reopen();
        let pass = f.enter().unwrap();
        assert_eq!(f.in_flight(), 1);
        drop(pass);
        assert_eq!(f.in_flight(), 0);
    }

    #[tokio::test]
    async fn close_waits_for_the_writes_past_the_fence() {
        let f = Arc::new(WriteFence::new("shop"));
        let pass_taken = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let writer = {
            let (f, taken, release) = (f.clone(), pass_taken.clone(), release.clone());
            tokio::spawn(async move {
                let _pass = f.enter().unwrap();
                taken.notify_one();
                release.notified().await;
            })
        };
        pass_taken.notified().await;
        let closing = {
            let f = f.clone();
            tokio::spawn(async move { f.close(Duration::from_secs(30)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !closing.is_finished(),
            "close returned with a write in flight"
        );
        assert!(f.enter().is_err(), "a new write passed a closing fence");
        release.notify_one();
        writer.await.unwrap();
        assert!(closing.await.unwrap(), "close did not see the write end");
    }

    #[tokio::test]
    async fn close_gives_up_after_its_wait() {
        let f = WriteFence::new("shop");
        let _pass = f.enter().unwrap();
        assert!(!f.close(Duration::from_millis(20)).await);
        assert!(f.is_closed());
    }
}
