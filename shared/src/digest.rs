//! SHA-256 of a stream. Small objects are hashed inline; once an object passes
//! [`INLINE_LIMIT`], hashing moves to a thread of the blocking pool (reused, not spawned
//! per object), so for large objects it overlaps with encryption instead of adding to it.
//! A hashing thread that stops is an error of its own, never an empty digest.

use aws_lc_rs::digest::{Context, SHA256};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// Bytes hashed inline before hashing moves to its own thread.
pub const INLINE_LIMIT: usize = 1 << 20;
/// Chunks queued for the hashing thread; bounds the memory it can hold.
const QUEUE: usize = 8;

/// The hashing thread stopped before it gave its digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the hashing thread stopped before it finished")]
pub struct HashingStopped;

/// A running SHA-256 over chunks handed to it in order.
#[derive(Debug)]
pub struct Sha256Pipe {
    state: State,
}

enum State {
    Inline {
        context: Context,
        hashed: usize,
    },
    Threaded {
        chunks: mpsc::Sender<Bytes>,
        digest: oneshot::Receiver<[u8; 32]>,
    },
    Stopped,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Inline { .. } => "Inline",
            State::Threaded { .. } => "Threaded",
            State::Stopped => "Stopped",
        })
    }
}

impl Default for Sha256Pipe {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256Pipe {
    pub fn new() -> Self {
        Self {
            state: State::Inline {
                context: Context::new(&SHA256),
                hashed: 0,
            },
        }
    }

    /// Hashes a chunk, waiting while the hashing thread is behind.
    pub async fn update(&mut self, chunk: Bytes) {
        if let Some(chunks) = self.queue(&chunk)
            && chunks.send(chunk).await.is_err()
        {
            self.state = State::Stopped;
        }
    }

    /// Hashes a chunk from blocking code.
    pub fn blocking_update(&mut self, chunk: Bytes) {
        if let Some(chunks) = self.queue(&chunk)
            && chunks.blocking_send(chunk).is_err()
        {
            self.state = State::Stopped;
        }
    }

    /// Hashes `chunk` inline if the object is still small; else the channel to send it on.
    fn queue(&mut self, chunk: &Bytes) -> Option<mpsc::Sender<Bytes>> {
        if chunk.is_empty() {
            return None;
        }
        match &mut self.state {
            State::Inline { context, hashed } if *hashed + chunk.len() <= INLINE_LIMIT => {
                context.update(chunk);
                *hashed += chunk.len();
                None
            }
            State::Inline { .. } => {
                let State::Inline { context, .. } =
                    std::mem::replace(&mut self.state, State::Stopped)
                else {
                    return None;
                };
                self.state = threaded(context);
                self.queue(chunk)
            }
            State::Threaded { chunks, .. } => Some(chunks.clone()),
            State::Stopped => None,
        }
    }

    /// The digest of everything hashed.
    pub async fn finish(self) -> Result<[u8; 32], HashingStopped> {
        match self.state {
            State::Inline { context, .. } => Ok(digest_of(context)),
            State::Threaded { chunks, digest } => {
                drop(chunks);
                digest.await.map_err(|_| HashingStopped)
            }
            State::Stopped => Err(HashingStopped),
        }
    }

    pub fn blocking_finish(self) -> Result<[u8; 32], HashingStopped> {
        match self.state {
            State::Inline { context, .. } => Ok(digest_of(context)),
            State::Threaded { chunks, digest } => {
                drop(chunks);
                digest.blocking_recv().map_err(|_| HashingStopped)
            }
            State::Stopped => Err(HashingStopped),
        }
    }
}

/// Moves hashing to a thread of the runtime's blocking pool (a plain thread outside a
/// runtime), carrying on from `context`.
fn threaded(mut context: Context) -> State {
    let (chunks, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    let (done, digest) = oneshot::channel();
    let work = move || {
        while let Some(chunk) = rx.blocking_recv() {
            context.update(&chunk);
        }
        let _ = done.send(digest_of(context));
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(work)),
        Err(_) => {
            if let Err(error) = std::thread::Builder::new()
                .name("sha256".into())
                .spawn(work)
            {
                tracing::error!(%error, "cannot start the hashing thread");
                return State::Stopped;
            }
        }
    }
    State::Threaded { chunks, digest }
}

fn digest_of(context: Context) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// SHA-256 of small records given one at a time (a plan's rows), hashed where they are
/// given; object bytes go through [`Sha256Pipe`].
pub struct RecordDigest(Context);

impl Default for RecordDigest {
    fn default() -> Self {
        Self(Context::new(&SHA256))
    }
}

impl RecordDigest {
    pub fn add(&mut self, record: &[u8]) {
        self.0.update(record);
    }

    /// The digest, in lowercase hex.
    pub fn finish_hex(self) -> String {
        hex::encode(digest_of(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn matches_a_one_shot_digest_inline_and_threaded() {
        for len in [
            0,
            100_000,
            INLINE_LIMIT,
            INLINE_LIMIT + 1,
            3 * INLINE_LIMIT + 17,
        ] {
            let data: Vec<u8> = (0..len as u32).map(|i| (i % 251) as u8).collect();
            let mut pipe = Sha256Pipe::new();
            for chunk in data.chunks(77_777) {
                pipe.update(Bytes::copy_from_slice(chunk)).await;
            }
            assert_eq!(
                pipe.finish().await.unwrap(),
                crate::api::sha256(&data),
                "{len}"
            );
        }
    }

    #[test]
    fn works_from_blocking_code_outside_a_runtime() {
        let data = vec![7u8; 2 * INLINE_LIMIT + 5];
        let mut pipe = Sha256Pipe::new();
        for chunk in data.chunks(65_536) {
            pipe.blocking_update(Bytes::copy_from_slice(chunk));
        }
        assert_eq!(pipe.blocking_finish().unwrap(), crate::api::sha256(&data));
    }

    #[tokio::test]
    async fn a_stopped_hashing_thread_is_an_error_not_an_empty_digest() {
        let mut pipe = Sha256Pipe::new();
        pipe.update(Bytes::from(vec![1u8; INLINE_LIMIT + 1])).await;
        // The thread ends as if it had died: its channel closes with no digest sent.
        if let State::Threaded { digest, .. } = &mut pipe.state {
            digest.close();
        }
        pipe.state = match std::mem::replace(&mut pipe.state, State::Stopped) {
            State::Threaded { digest, .. } => {
                let (chunks, _) = mpsc::channel(1);
                State::Threaded { chunks, digest }
            }
            other => other,
        };
        assert_eq!(pipe.finish().await, Err(HashingStopped));
    }
}
