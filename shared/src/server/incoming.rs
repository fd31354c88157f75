//! Accepted gRPC connections: TCP_NODELAY on each (a reply is not held back by Nagle's
//! algorithm waiting on a delayed ACK), at most `max_connections` open at once, and a
//! handshake deadline that closes a connection whose client has not finished the TLS
//! handshake (when configured, see [`super::tls`]) and sent its first bytes (the HTTP/2
//! preface, or a gRPC-Web request's HTTP/1.1 request line) in time.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::{Stream, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    time::Sleep,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::tls::ServerTls;

/// Bytes a client sends first: the 24-byte HTTP/2 connection preface and the 9-byte
/// header of its SETTINGS frame. Until they have arrived the handshake deadline runs. Any
/// HTTP/1.1 request (gRPC-Web) is longer than this, so the same deadline covers it.
const HANDSHAKE_BYTES: usize = 24 + 9;

/// How accepted connections are guarded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub handshake_timeout: Duration,
    pub max_connections: usize,
}

/// The listener's connections as a stream for `serve_with_incoming`, each through a TLS
/// handshake when `tls` is set. A connection over the limit is accepted and closed at once,
/// so its client can try another replica.
pub fn incoming(
    listener: TcpListener,
    limits: Limits,
    tls: Option<Arc<ServerTls>>,
) -> impl Stream<Item = io::Result<Connection>> + Send {
    let accepted = accept(listener, limits);
    match tls {
        None => futures::future::Either::Left(accepted),
        Some(tls) => futures::future::Either::Right(handshakes(accepted, tls)),
    }
}

/// TLS handshakes of `accepted` connections, each in a task of its own so a slow client
/// holds up no other; a failed handshake closes its connection.
fn handshakes(
    accepted: impl Stream<Item = io::Result<Connection>> + Send + 'static,
    tls: Arc<ServerTls>,
) -> impl Stream<Item = io::Result<Connection>> + Send {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut accepted = std::pin::pin!(accepted);
        loop {
            let next = tokio::select! {
                next = accepted.next() => next,
                () = tx.closed() => break,
            };
            match next {
                None => break,
                Some(Err(error)) => {
                    if tx.send(Err(error)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(connection)) => {
                    let (acceptor, tx) = (tls.acceptor(), tx.clone());
                    tokio::spawn(async move {
                        match connection.into_tls(acceptor).await {
                            Ok(connection) => {
                                let _ = tx.send(Ok(connection)).await;
                            }
                            Err(error) => tracing::debug!(%error, "TLS handshake failed"),
                        }
                    });
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

fn accept(
    listener: TcpListener,
    limits: Limits,
) -> impl Stream<Item = io::Result<Connection>> + Send + 'static {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    futures::stream::unfold((listener, open), move |(listener, open)| async move {
        loop {
            let accepted = listener.accept().await;
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => return Some((Err(error), (listener, open))),
            };
            let Ok(permit) = open.clone().try_acquire_owned() else {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection limit reached; closing a new connection"
                );
                drop(stream);
                continue;
            };
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            let connection = Connection {
                stream: Transport::Tcp(stream),
                handshake: Some(Box::pin(tokio::time::sleep(limits.handshake_timeout))),
                received: 0,
                _permit: permit,
            };
            return Some((Ok(connection), (listener, open)));
        }
    })
}

/// An accepted connection: holds its slot under the limit until dropped, and fails its
/// reads with `TimedOut` when the handshake deadline passes first.
pub struct Connection {
    stream: Transport,
    /// Running until [`HANDSHAKE_BYTES`] have been read; `None` after.
    handshake: Option<Pin<Box<Sleep>>>,
    received: usize,
    _permit: OwnedSemaphorePermit,
}

enum Transport {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection {
    /// The connection after a TLS handshake, which must end before the handshake deadline.
    async fn into_tls(self, acceptor: TlsAcceptor) -> io::Result<Self> {
        let Self {
            stream,
            handshake,
            received,
            _permit,
        } = self;
        let Transport::Tcp(tcp) = stream else {
            return Err(io::Error::other("TLS over TLS"));
        };
        let tls = match &handshake {
            Some(deadline) => tokio::time::timeout_at(deadline.deadline(), acceptor.accept(tcp))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no TLS handshake within the handshake timeout",
                    )
                })??,
            None => acceptor.accept(tcp).await?,
        };
        Ok(Self {
            stream: Transport::Tls(Box::new(tls)),
            handshake,
            received,
            _permit,
        })
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        match &self.stream {
            Transport::Tcp(stream) => stream.connect_info(),
            Transport::Tls(stream) => stream.get_ref().0.connect_info(),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Self::Tls(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(stream) => stream.is_write_vectored(),
            Self::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Some(deadline) = &mut this.handshake {
            match read {
                Poll::Ready(Ok(())) => {
                    this.received += buf.filled().len() - before;
                    if this.received >= HANDSHAKE_BYTES {
                        this.handshake = None;
                    }
                }
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    tracing::debug!("closing a connection that sent no HTTP/2 preface in time");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no HTTP/2 preface within the handshake timeout",
                    )));
                }
                Poll::Pending | Poll::Ready(Err(_)) => {}
            }
        }
        read
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
