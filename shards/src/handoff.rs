//! Moving an accepted TCP connection to the shard that owns its work.
//!
//! SO_REUSEPORT decides which shard accepts a connection; sometimes another shard owns what
//! it is for (a room's signalling socket belongs to `shard_of(room)`). The accepting shard
//! reads enough to decide, then sends a [`HandedConn`] over the bus. A glommio `TcpStream`
//! is tied to its executor's reactor and has no `IntoRawFd`, so the socket travels as a
//! duplicated, owned file descriptor and is wrapped again on the target shard.

use std::{
    io,
    net::SocketAddr,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd},
};

use glommio::net::TcpStream;

/// A connection in transit between shards. `Send`, so it can ride the bus.
#[derive(Debug)]
pub struct HandedConn<S: Send> {
    /// The socket, owned: dropping the `HandedConn` closes it.
    pub fd: OwnedFd,
    /// Bytes the sending shard already read from the socket; the target must treat them as
    /// the start of the stream.
    pub prefix: Vec<u8>,
    /// The client's address.
    pub peer: SocketAddr,
    /// Protocol state that goes with the bytes (e.g. a `rustls::ServerConnection`).
    pub state: S,
}

impl<S: Send> HandedConn<S> {
    /// Detaches `stream` from this shard and packages it with what was read so far.
    pub fn new(stream: TcpStream, prefix: Vec<u8>, state: S) -> io::Result<Self> {
        let peer = stream.peer_addr().map_err(io::Error::from)?;
        Ok(HandedConn {
            fd: detach(stream)?,
            prefix,
            peer,
            state,
        })
    }
}

/// Takes the socket out of a glommio stream: duplicates the fd (close-on-exec), then drops
/// the stream, which closes only the original descriptor. The connection stays open through
/// the duplicate.
///
/// Dropping the stream also cancels any readiness poll glommio had queued on this shard's
/// ring for the old descriptor; a cancellation already in flight completes harmlessly.
/// Bytes buffered inside a `TcpStream<Preallocated>` would be lost, which is why this takes
/// the unbuffered stream only.
pub fn detach(stream: TcpStream) -> io::Result<OwnedFd> {
    let duplicate = {
        // SAFETY: `stream` owns this descriptor and stays alive (it is only dropped below,
        // after this block), so the descriptor is open for the whole life of `borrowed`.
        let borrowed = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
        borrowed.try_clone_to_owned()?
    };
    drop(stream);
    Ok(duplicate)
}

/// Wraps a handed-over socket in a glommio stream on the current shard. Must be called on a
/// glommio executor (the stream registers with that executor's reactor).
pub fn attach(fd: OwnedFd) -> TcpStream {
    // SAFETY: `into_raw_fd` gives up ownership of an open descriptor, so nothing else will
    // close it; `TcpStream::from_raw_fd` takes that ownership over and closes it on drop.
    // glommio reads and writes with MSG_DONTWAIT, so the fd's blocking mode does not matter.
    unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) }
}
