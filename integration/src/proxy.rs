//! A loopback fault relay in front of a store or PostgreSQL. It forwards TCP both ways,
//! half-closes included, and counts the bytes each way, so a test can prove a store was
//! not contacted at all. On request it takes the connection away in the ways networks
//! and servers do: it cuts every open connection (FIN) or resets it (RST), stalls them
//! (bytes held, connections open), slows them (latency each way, bandwidth), or dies
//! (refusing connections until revived) — at once, or armed to fire once a given number
//! of bytes has passed, so a fault lands mid-upload, mid-download or mid-COPY.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Result;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{mpsc, watch},
    task::JoinHandle,
    time::Instant,
};

/// Which way bytes travel through the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the client (the service) to the upstream (the store, PostgreSQL).
    ToUpstream,
    /// From the upstream back to the client.
    FromUpstream,
}

/// What happens to the connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every open connection is closed (FIN both ways); new ones are accepted.
    Cut,
    /// Every open connection is reset (RST both ways); new ones are accepted.
    Reset,
    /// Bytes stop moving; connections stay open until [`TcpProxy::resume`].
    Stall,
    /// The upstream is gone: connections dropped, new ones refused until revived.
    Kill,
}

/// How bytes move while no fault holds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Forward,
    Stall,
    Slow {
        /// Added to every chunk, each way.
        latency: Duration,
        /// At most this many bytes a second each way, per connection (`None`: unlimited).
        bytes_per_second: Option<u64>,
    },
}

/// How open connections end when a cut or reset fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Close,
    Reset,
}

/// A fault armed to fire once `at` bytes have passed in `direction` (total count).
#[derive(Clone, Copy, Debug)]
struct Trigger {
    direction: Direction,
    at: u64,
    fault: Fault,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    to_upstream: AtomicU64,
    from_upstream: AtomicU64,
    flow: watch::Sender<Flow>,
    /// Bumped (with how) to end every connection open at that moment.
    endings: watch::Sender<(u64, Ending)>,
    killed: watch::Sender<bool>,
    armed: Mutex<Option<Trigger>>,
    /// Connections opened and fully closed, for tests that count them.
    opened: AtomicU64,
    closed: AtomicU64,
    /// The start of each chunk sent to the upstream (request lines and headers), for
    /// tests that check what a client asked for.
    heard: Mutex<Vec<u8>>,
}

impl Shared {
    fn counter(&self, direction: Direction) -> &AtomicU64 {
        match direction {
            Direction::ToUpstream => &self.to_upstream,
            Direction::FromUpstream => &self.from_upstream,
        }
    }

    fn fire(&self, fault: Fault) {
        match fault {
            Fault::Cut => self.end_connections(Ending::Close),
            Fault::Reset => self.end_connections(Ending::Reset),
            Fault::Stall => {
                self.flow.send_replace(Flow::Stall);
            }
            Fault::Kill => {
                self.killed.send_replace(true);
                self.end_connections(Ending::Close);
            }
        }
    }

    fn end_connections(&self, how: Ending) {
        self.endings.send_modify(|(generation, ending)| {
            *generation += 1;
            *ending = how;
        });
    }

    /// Keeps the start of a chunk on its way to the upstream (within a bound).
    fn hear(&self, direction: Direction, chunk: &[u8]) {
        const START: usize = 4096;
        const MOST: usize = 4 << 20;
        if direction == Direction::ToUpstream
            && let Ok(mut heard) = self.heard.lock()
            && heard.len() < MOST
        {
            heard.extend_from_slice(&chunk[..chunk.len().min(START)]);
        }
    }

    /// Counts `n` bytes passing in `direction` and fires an armed fault whose moment came.
    fn passed(&self, direction: Direction, n: usize) -> Option<Fault> {
        let total = self
            .counter(direction)
            .fetch_add(n as u64, Ordering::SeqCst)
            + n as u64;
        let due = {
            let mut armed = self.armed.lock().expect("trigger lock");
            match *armed {
                Some(trigger) if trigger.direction == direction && total >= trigger.at => {
                    armed.take()
                }
                _ => None,
            }
        };
        if let Some(trigger) = due {
            tracing::info!(?trigger, "fault relay: armed fault fires");
            self.fire(trigger.fault);
        }
        due.map(|trigger| trigger.fault)
    }
}

#[derive(Debug)]
pub struct TcpProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await
    }

    /// Listens again on the same address after [`TcpProxy::kill`]: the upstream is back,
    /// with its byte counts and flow starting afresh.
    pub async fn revive(&mut self) -> Result<()> {
        self.kill();
        *self = Self::start_on(self.addr, self.shared.upstream).await?;
        Ok(())
    }

    async fn start_on(listen: SocketAddr, upstream: SocketAddr) -> Result<Self> {
        // The killed listener closes as its task winds down: give it a moment.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(listen).await {
                Ok(listener) => break listener,
                Err(_) if tries < 40 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => return Err(error.into()),
            }
        };
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            to_upstream: AtomicU64::new(0),
            from_upstream: AtomicU64::new(0),
            flow: watch::channel(Flow::Forward).0,
            endings: watch::channel((0, Ending::Close)).0,
            killed: watch::channel(false).0,
            armed: Mutex::new(None),
            opened: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            heard: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept(listener, shared.clone()));
        Ok(Self { addr, shared, task })
    }

    /// Bytes sent to the upstream and received from it so far.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.shared.to_upstream.load(Ordering::SeqCst),
            self.shared.from_upstream.load(Ordering::SeqCst),
        )
    }

    /// The starts of what clients sent the upstream so far (request lines and headers
    /// among them), lowercased.
    pub fn heard(&self) -> String {
        let heard = self
            .shared
            .heard
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default();
        String::from_utf8_lossy(&heard).to_lowercase()
    }

    /// Connections accepted so far, and those of them fully closed.
    pub fn connections(&self) -> (u64, u64) {
        (
            self.shared.opened.load(Ordering::SeqCst),
            self.shared.closed.load(Ordering::SeqCst),
        )
    }

    /// Drops every connection and stops listening: the upstream is gone.
    pub fn kill(&self) {
        self.shared.fire(Fault::Kill);
        self.task.abort();
    }

    /// Closes every open connection (new ones are accepted): a dropped network path.
    pub fn cut(&self) {
        self.shared.fire(Fault::Cut);
    }

    /// Resets every open connection (new ones are accepted): a crashed peer's RST.
    pub fn reset(&self) {
        self.shared.fire(Fault::Reset);
    }

    /// Holds every byte, both ways, until [`TcpProxy::resume`]; connections stay open.
    pub fn stall(&self) {
        self.shared.fire(Fault::Stall);
    }

    /// Adds `latency` to every chunk each way and limits each connection to
    /// `bytes_per_second` each way (`None`: no limit).
    pub fn slow(&self, latency: Duration, bytes_per_second: Option<u64>) {
        self.shared.flow.send_replace(Flow::Slow {
            latency,
            bytes_per_second,
        });
    }

    /// Bytes move freely again (after a stall or a slowdown).
    pub fn resume(&self) {
        self.shared.flow.send_replace(Flow::Forward);
    }

    /// Arms `fault` to fire once `bytes` more have passed in `direction`; the chunk that
    /// crosses the mark is not forwarded. One armed fault at a time; this replaces it.
    pub fn fault_after(&self, direction: Direction, bytes: u64, fault: Fault) {
        let at = self.shared.counter(direction).load(Ordering::SeqCst) + bytes.max(1);
        *self.shared.armed.lock().expect("trigger lock") = Some(Trigger {
            direction,
            at,
            fault,
        });
    }

    /// Whether an armed fault has fired (or none was armed).
    pub fn fired(&self) -> bool {
        self.shared.armed.lock().expect("trigger lock").is_none()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut killed = shared.killed.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = killed.wait_for(|k| *k) => return,
        };
        let Ok((client, _)) = accepted else { continue };
        shared.opened.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        tokio::spawn(async move {
            relay(client, &shared).await;
            shared.closed.fetch_add(1, Ordering::SeqCst);
        });
    }
}

/// Forwards one connection until both sides have closed, or a cut, reset or kill ends it.
async fn relay(client: TcpStream, shared: &Shared) {
    let mut endings = shared.endings.subscribe();
    endings.borrow_and_update();
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let ending = tokio::select! {
        () = async {
            tokio::join!(
                pump(&mut client_read, &mut server_write, Direction::ToUpstream, shared),
                pump(&mut server_read, &mut client_write, Direction::FromUpstream, shared),
            );
        } => None,
        _ = endings.changed() => Some(endings.borrow().1),
    };
    if ending == Some(Ending::Reset) {
        let _ = client_write.as_ref().set_zero_linger();
        let _ = server_write.as_ref().set_zero_linger();
    }
}

/// One direction: a reader stamps each chunk as it arrives, a writer delivers it once
/// the flow allows (latency after arrival, bandwidth, never while stalled), so latency is
/// added once per burst rather than once per chunk. An end of stream is passed on as a
/// half-close.
async fn pump(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    direction: Direction,
    shared: &Shared,
) {
    let (chunks, mut arrived) = mpsc::channel::<(Instant, Vec<u8>)>(16);
    let read = async move {
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    shared.hear(direction, &buf[..n]);
                    let fired = shared.passed(direction, n);
                    if fired.is_some_and(|fault| fault != Fault::Stall) {
                        // The connection is going: neither this chunk nor any after it
                        // is forwarded (what arrives is cut short, never left with a gap).
                        return;
                    }
                    buf.truncate(n);
                    if chunks.send((Instant::now(), buf)).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let write = async {
        let mut flow = shared.flow.subscribe();
        while let Some((at, chunk)) = arrived.recv().await {
            let current = match flow.wait_for(|f| *f != Flow::Stall).await {
                Ok(current) => *current,
                Err(_) => return,
            };
            if let Flow::Slow {
                latency,
                bytes_per_second,
            } = current
            {
                tokio::time::sleep_until(at + latency).await;
                if let Some(rate) = bytes_per_second.filter(|r| *r > 0) {
                    let micros = chunk.len() as u64 * 1_000_000 / rate;
                    tokio::time::sleep(Duration::from_micros(micros)).await;
                }
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}
