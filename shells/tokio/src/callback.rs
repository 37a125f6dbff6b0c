//! The loopback callback: where the browser lands after the user logs in (RFC 8252 §7.3).
//!
//! The listener binds 127.0.0.1 only (NAT-5), is opened just before the browser is sent
//! away, and serves until the login ends. Every request to the callback path hands its query
//! on and gets the same small page: the query is not trusted here, the core checks `state`
//! and `iss` and ignores a callback that fails them (INV-11) and goes on waiting, so a forged
//! request from another local process or a web page can neither end the login nor learn
//! anything. Connections are served concurrently, each with a short read timeout, so idle
//! connections cannot delay the real redirect. The overall timeout is the core's
//! (`poll_timeout`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

/// How long one connection may take to send its request line.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes read of one request's head.
const HEAD_LIMIT: usize = 8 * 1024;

const DONE_PAGE: &str =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>Tenure</title></head>\
<body style=\"font-family:sans-serif;margin:3em\"><h1>Tenure received the answer</h1>\
<p>You can close this tab and go back to the terminal.</p></body></html>";

/// Why the callback could not be received.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The redirect URI is not a loopback http URI with a port.
    #[error("the redirect URI `{0}` is not http://127.0.0.1:PORT/PATH; configure a loopback redirect URI")]
    NotLoopback(String),
    /// The port is taken.
    #[error("cannot listen on {address} for the login callback ({cause}); is another login running? choose another port with --redirect-port")]
    Bind {
        /// Where.
        address: SocketAddr,
        /// What the system said.
        cause: std::io::Error,
    },
    /// Accepting failed.
    #[error("the login callback listener failed: {0}")]
    Accept(std::io::Error),
}

/// A listener for one redirect.
#[derive(Debug)]
pub struct CallbackListener {
    listener: TcpListener,
    path: String,
}

impl CallbackListener {
    /// Binds 127.0.0.1 on the port of `redirect_uri` (`localhost` is served on 127.0.0.1
    /// too); port 0 picks a free one.
    pub async fn bind(redirect_uri: &str) -> Result<Self, CallbackError> {
        let not_loopback = || CallbackError::NotLoopback(redirect_uri.to_string());
        let url = Url::parse(redirect_uri).map_err(|_| not_loopback())?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1") | Some("localhost"));
        if url.scheme() != "http" || !loopback {
            return Err(not_loopback());
        }
        let port = url.port().ok_or_else(not_loopback)?;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = TcpListener::bind(address)
            .await
            .map_err(|cause| CallbackError::Bind { address, cause })?;
        Ok(CallbackListener {
            listener,
            path: url.path().to_string(),
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until the task running it is dropped or aborted: the raw query of every
    /// request to the callback path goes to `deliver`; requests to other paths (a browser's
    /// `/favicon.ico`) get a 404. Returns only if accepting fails.
    pub async fn serve(self, deliver: impl Fn(String) + Send + Sync + 'static) -> CallbackError {
        let deliver = Arc::new(deliver);
        let path: Arc<str> = self.path.into();
        loop {
            let socket = match self.listener.accept().await {
                Ok((socket, _)) => socket,
                Err(error) => return CallbackError::Accept(error),
            };
            let (deliver, path) = (deliver.clone(), path.clone());
            tokio::spawn(async move {
                if let Some(query) = answer(&path, socket).await {
                    deliver(query);
                }
            });
        }
    }
}

/// Answers one connection; the query when it asked for the callback path.
async fn answer(path: &str, mut socket: TcpStream) -> Option<String> {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut socket))
        .await
        .ok()??;
    let target = head
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("GET "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("");
    let (asked, query) = target.split_once('?').unwrap_or((target, ""));
    if asked != path {
        let _ = socket
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return None;
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{DONE_PAGE}",
        DONE_PAGE.len()
    );
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
    Some(query.to_string())
}

/// Reads until the end of the request head, at most [`HEAD_LIMIT`] bytes.
async fn read_head(socket: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while head.len() < HEAD_LIMIT && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = socket.read(&mut buffer).await.ok()?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8(head).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(port: u16, target: &str) -> String {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn hands_on_every_callback_query_while_idle_connections_wait() {
        let listener = CallbackListener::bind("http://127.0.0.1:0/callback")
            .await
            .unwrap();
        let port = listener.port();
        let (sink, mut queries) = tokio::sync::mpsc::unbounded_channel();
        let serving = tokio::spawn(listener.serve(move |query| {
            let _ = sink.send(query);
        }));
        // Connections that say nothing do not hold the listener.
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        let favicon = get(port, "/favicon.ico").await;
        assert!(favicon.starts_with("HTTP/1.1 404"));
        // A forged request and the real one get the same page, and both are handed on: the
        // core tells them apart by `state`.
        let forged = get(port, "/callback?code=forged&state=wrong").await;
        let page = get(port, "/callback?code=abc&state=xyz").await;
        assert_eq!(forged, page);
        assert!(page.starts_with("HTTP/1.1 200") && page.contains("close this tab"));
        let within = std::time::Duration::from_secs(2);
        let first = tokio::time::timeout(within, queries.recv()).await.unwrap();
        let second = tokio::time::timeout(within, queries.recv()).await.unwrap();
        assert_eq!(first.as_deref(), Some("code=forged&state=wrong"));
        assert_eq!(second.as_deref(), Some("code=abc&state=xyz"));
        serving.abort();
        drop(idle);
    }

    #[tokio::test]
    async fn only_loopback_redirects_are_served_nat_5() {
        for uri in [
            "https://app.example.com/cb",
            "http://10.0.0.1:80/cb",
            "http://127.0.0.1/cb",
        ] {
            assert!(matches!(
                CallbackListener::bind(uri).await,
                Err(CallbackError::NotLoopback(_))
            ));
        }
    }

    #[tokio::test]
    async fn a_taken_port_says_what_to_do() {
        let first = CallbackListener::bind("http://127.0.0.1:0/callback")
            .await
            .unwrap();
        let uri = format!("http://127.0.0.1:{}/callback", first.port());
        let error = CallbackListener::bind(&uri).await.unwrap_err();
        assert!(error.to_string().contains("--redirect-port"), "{error}");
    }
}
