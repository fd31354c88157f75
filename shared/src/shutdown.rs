//! Shutdown: the process signals that start it, and the [`Drain`] that long-lived streams
//! watch so they end cleanly (with `UNAVAILABLE`, telling clients to reconnect elsewhere)
//! instead of holding the server open until the drain timeout.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use futures::Stream;
use tokio::sync::watch;
use tonic::Status;

/// Resolves when the process receives SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}

/// Starts a drain; dropping it starts the drain too.
#[derive(Debug)]
pub struct DrainTrigger(watch::Sender<bool>);

impl DrainTrigger {
    pub fn start(&self) {
        self.0.send_replace(true);
    }
}

/// A cheap, cloneable view of "the server is draining".
#[derive(Clone, Debug)]
pub struct Drain(watch::Receiver<bool>);

/// A trigger and the drain it controls.
pub fn channel() -> (DrainTrigger, Drain) {
    let (tx, rx) = watch::channel(false);
    (DrainTrigger(tx), Drain(rx))
}

impl Drain {
    /// A drain that never starts, for code run outside a server.
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        Drain(rx)
    }

    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once draining has started (or the trigger is gone).
    pub async fn draining(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|draining| *draining).await;
    }

    /// Passes `stream` through until draining starts, then ends it with `UNAVAILABLE`.
    /// Items already ready are delivered before the end.
    pub fn cut<S, T>(self, stream: S) -> impl Stream<Item = Result<T, Status>> + Send + 'static
    where
        S: Stream<Item = Result<T, Status>> + Send + 'static,
        T: Send + 'static,
    {
        Cut {
            stream: Box::pin(stream),
            draining: Some(Box::pin(async move { self.draining().await })),
        }
    }
}

/// [`Drain::cut`]'s stream: one drain future for the whole stream, polled only when the
/// stream has nothing ready (a watch stream passes millions of items through it).
struct Cut<S> {
    stream: Pin<Box<S>>,
    /// `None` once the stream has ended, either way.
    draining: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<S, T> Stream for Cut<S>
where
    S: Stream<Item = Result<T, Status>>,
{
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(draining) = this.draining.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = this.stream.as_mut().poll_next(cx) {
            if item.is_none() {
                this.draining = None;
            }
            return Poll::Ready(item);
        }
        if draining.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.draining = None;
        Poll::Ready(Some(Err(Status::unavailable(
            "server is shutting down; reconnect to continue",
        ))))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::{StreamExt, stream};

    use super::*;

    #[tokio::test]
    async fn cut_ends_an_endless_stream_with_unavailable() {
        let (trigger, drain) = channel();
        let endless = stream::iter([Ok::<_, Status>(1)]).chain(stream::pending());
        let mut cut = Box::pin(drain.cut(endless));
        assert_eq!(cut.next().await.unwrap().unwrap(), 1);
        trigger.start();
        let end = tokio::time::timeout(Duration::from_secs(1), cut.next())
            .await
            .unwrap();
        assert_eq!(end.unwrap().unwrap_err().code(), tonic::Code::Unavailable);
        assert!(cut.next().await.is_none());
    }
}
