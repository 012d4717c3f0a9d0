//! The stream traits of [`DeadlineStream`]: every byte read or written passes its watch,
//! so Pingora's own reads and writes are what the deadline sees.

use super::{DeadlineStream, Phase};
use async_trait::async_trait;
use pingora::protocols::Peek;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

impl AsyncRead for DeadlineStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.read(&buf.filled()[before..]);
                if this.expired(cx, false) {
                    return Poll::Ready(Err(this.refuse(cx)));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx, true) => Poll::Ready(Err(this.refuse(cx))),
            other => other,
        }
    }
}

impl AsyncWrite for DeadlineStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.replaced || this.replaces(buf) {
            // Pingora's bytes are taken as written; Usher's answer goes out instead.
            return this.drain(cx).map_ok(|()| buf.len());
        }
        this.wrote(buf);
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let first = bufs.iter().find(|b| !b.is_empty());
        if this.replaced || first.is_some_and(|first| this.replaces(first)) {
            let total = bufs.iter().map(|b| b.len()).sum();
            return this.drain(cx).map_ok(|()| total);
        }
        if let Some(first) = first {
            this.wrote(first);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Peek for DeadlineStream {
    /// Pingora peeks for the h2c preface before reading anything: within the deadline too.
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        let Phase::Head(deadline) = self.phase else {
            return self.inner.try_peek(buf).await;
        };
        match tokio::time::timeout_at(deadline, self.inner.try_peek(buf)).await {
            Ok(result) => result,
            Err(_) => Err(std::future::poll_fn(|cx| Poll::Ready(self.refuse(cx))).await),
        }
    }
}
