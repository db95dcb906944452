//! Every request's time budget (`KISS_REQUEST_TIMEOUT_SECS`). A client that has not finished
//! sending its body by then gets `408`; a request the server has not answered by then gets `503`
//! with `Retry-After`, and its work is dropped (an open transaction rolls back).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};

use crate::domain::Error;

/// Middleware: runs the request under the deadline.
pub async fn enforce(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let received = Arc::new(AtomicBool::new(request.body().is_end_stream()));
    let request = request.map(|body| {
        Body::new(Watched {
            inner: body,
            received: received.clone(),
        })
    });
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) if !received.load(Ordering::Acquire) => {
            metrics::counter!("request_timeouts_total", "waiting_for" => "client").increment(1);
            Error::RequestTimeout.into_response()
        }
        Err(_) => {
            metrics::counter!("request_timeouts_total", "waiting_for" => "server").increment(1);
            tracing::warn!(
                timeout_secs = timeout.as_secs(),
                "request not answered in time"
            );
            Error::Unavailable("request timeout").into_response()
        }
    }
}

/// A request body that records when the client has sent all of it.
struct Watched {
    inner: Body,
    received: Arc<AtomicBool>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.received.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
