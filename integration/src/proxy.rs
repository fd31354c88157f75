//! A loopback TCP proxy in front of a store (Azurite): it counts the bytes each way, so a
//! test can prove a store was not contacted at all, and it can be killed, so a test can
//! take a store away mid-run. Connections after the kill are refused.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::Result;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

#[derive(Debug)]
pub struct TcpProxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    to_upstream: Arc<AtomicU64>,
    from_upstream: Arc<AtomicU64>,
    kill: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await
    }

    /// Listens again on the same address after [`TcpProxy::kill`]: the store is back.
    pub async fn revive(&mut self) -> Result<()> {
        self.kill();
        *self = Self::start_on(self.addr, self.upstream).await?;
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
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(error) => return Err(error.into()),
            }
        };
        let addr = listener.local_addr()?;
        let to_upstream = Arc::new(AtomicU64::new(0));
        let from_upstream = Arc::new(AtomicU64::new(0));
        let (kill, killed) = watch::channel(false);
        let (up, down) = (to_upstream.clone(), from_upstream.clone());
        let task = tokio::spawn(async move {
            loop {
                let mut stop = killed.clone();
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stop.wait_for(|k| *k) => return,
                };
                let Ok((client, _)) = accepted else { continue };
                let (up, down, killed) = (up.clone(), down.clone(), killed.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let mut stop = killed.clone();
                    tokio::select! {
                        () = pump(&mut client_read, &mut server_write, &up) => {}
                        () = pump(&mut server_read, &mut client_write, &down) => {}
                        _ = stop.wait_for(|k| *k) => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            upstream,
            to_upstream,
            from_upstream,
            kill,
            task,
        })
    }

    /// Bytes sent to the store and received from it so far.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.to_upstream.load(Ordering::SeqCst),
            self.from_upstream.load(Ordering::SeqCst),
        )
    }

    /// Drops every connection and stops listening: the store is gone.
    pub fn kill(&self) {
        self.kill.send_replace(true);
        self.task.abort();
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn pump(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    counter: &AtomicU64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                counter.fetch_add(n as u64, Ordering::SeqCst);
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
