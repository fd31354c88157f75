//! A long operation as a server stream: the work runs on a task of its own, so it goes on
//! to its end (commits or rolls back) even if the caller goes away, and sends its events as
//! it goes; the stream yields them, then the work's error if it failed.

use std::future::Future;

use futures::{StreamExt, stream::BoxStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The work's task ended without an outcome (it panicked or was cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operation stopped before it finished")]
pub struct WorkStopped;

/// Spawns `work` with a sender of `buffer` events; the stream of what it sends, ended by
/// its error, if any.
pub fn spawned<E, Err, Fut>(
    buffer: usize,
    work: impl FnOnce(mpsc::Sender<E>) -> Fut,
) -> BoxStream<'static, Result<E, Err>>
where
    E: Send + 'static,
    Err: From<WorkStopped> + Send + 'static,
    Fut: Future<Output = Result<(), Err>> + Send + 'static,
{
    let (events, received) = mpsc::channel(buffer);
    let task = tokio::spawn(work(events));
    let end = futures::stream::once(async move {
        match task.await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(Err(error)),
            Err(_) => Some(Err(Err::from(WorkStopped))),
        }
    })
    .filter_map(|end| async move { end });
    ReceiverStream::new(received).map(Ok).chain(end).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Failure {
        Stopped,
        Said(&'static str),
    }

    impl From<WorkStopped> for Failure {
        fn from(_: WorkStopped) -> Self {
            Failure::Stopped
        }
    }

    #[tokio::test]
    async fn events_then_the_works_error() {
        let stream = spawned(4, |events| async move {
            for n in 0..3 {
                let _ = events.send(n).await;
            }
            Err(Failure::Said("no"))
        });
        let seen: Vec<_> = stream.collect().await;
        assert_eq!(seen, [Ok(0), Ok(1), Ok(2), Err(Failure::Said("no"))]);
    }

    #[tokio::test]
    async fn a_work_that_panics_ends_the_stream_with_an_error() {
        let stream = spawned::<u8, Failure, _>(1, |_| async move { panic!("bug") });
        let seen: Vec<_> = stream.collect().await;
        assert_eq!(seen, [Err(Failure::Stopped)]);
    }
}
