//! A guest's stdout and stderr: a capped buffer per stream that the host drains after every
//! call. wasmtime-wasi's `MemoryOutputPipe` cannot be emptied, and a guest keeps the stream it
//! opened for as long as its instance lives, so a warm instance (see `warm`) needs a buffer
//! whose cap holds per call, not per instance.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// One captured stream. Clones share the buffer.
#[derive(Clone)]
pub(crate) struct CallOutput {
    capacity: usize,
    buffer: Arc<Mutex<BytesMut>>,
}

impl CallOutput {
    /// An empty stream that takes at most `capacity` bytes per call; writes past it fail.
    pub(crate) fn new(capacity: usize) -> CallOutput {
        CallOutput {
            capacity,
            buffer: Arc::new(Mutex::new(BytesMut::new())),
        }
    }

    /// What was written since the last drain, as text; the buffer is empty afterwards.
    pub(crate) fn drain(&self) -> String {
        let taken = std::mem::take(&mut *crate::sync::lock(&self.buffer));
        String::from_utf8_lossy(&taken).into_owned()
    }

    fn room(&self) -> usize {
        self.capacity
            .saturating_sub(crate::sync::lock(&self.buffer).len())
    }
}

#[async_trait::async_trait]
impl Pollable for CallOutput {
    async fn ready(&mut self) {}
}

#[async_trait::async_trait]
impl OutputStream for CallOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        let mut buffer = crate::sync::lock(&self.buffer);
        if bytes.len() > self.capacity.saturating_sub(buffer.len()) {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "wrote more than {} bytes of output in one call",
                self.capacity
            )));
        }
        buffer.extend_from_slice(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // As wasmtime-wasi's own memory pipe: a full stream is closed for the rest of the call.
        match self.room() {
            0 => Err(StreamError::Closed),
            room => Ok(room),
        }
    }
}

impl tokio::io::AsyncWrite for CallOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut buffer = crate::sync::lock(&self.buffer);
        let amount = buf.len().min(self.capacity.saturating_sub(buffer.len()));
        buffer.extend_from_slice(&buf[..amount]);
        std::task::Poll::Ready(Ok(amount))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CallOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CallOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_per_call_and_a_drain_empties_the_buffer() {
        let mut out = CallOutput::new(8);
        out.write(Bytes::from_static(b"12345")).unwrap();
        assert!(out.write(Bytes::from_static(b"6789")).is_err());
        assert_eq!(out.drain(), "12345");
        out.write(Bytes::from_static(b"abcdefgh")).unwrap();
        assert_eq!(out.drain(), "abcdefgh");
        assert_eq!(out.drain(), "");
    }
}
