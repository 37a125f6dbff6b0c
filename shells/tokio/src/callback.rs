//! The loopback callback: where the browser lands after the user logs in (RFC 8252 §7.3).
//!
//! The listener binds 127.0.0.1 only (NAT-5), is opened just before the browser is sent
//! away, answers the one redirect it waits for with a small page, and is then dropped. The
//! query it hands back is not trusted here: the core checks `state` and `iss` and ignores a
//! callback that fails them (INV-11). The overall timeout is the core's (`poll_timeout`); each
//! connection also gets a short read timeout so a silent client cannot hold the listener.

use std::net::{Ipv4Addr, SocketAddr};
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

    /// Waits for a request to the callback path and returns its raw query. Requests to
    /// other paths (a browser's `/favicon.ico`) get a 404 and the wait goes on.
    pub async fn receive(self) -> Result<String, CallbackError> {
        loop {
            let (socket, _) = self
                .listener
                .accept()
                .await
                .map_err(CallbackError::Accept)?;
            if let Some(query) = self.answer(socket).await {
                return Ok(query);
            }
        }
    }

    async fn answer(&self, mut socket: TcpStream) -> Option<String> {
        let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut socket))
            .await
            .ok()??;
        let target = head
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("GET "))
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != self.path {
            let _ = socket
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
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
    async fn hands_back_the_query_of_the_callback_path() {
        let listener = CallbackListener::bind("http://127.0.0.1:0/callback")
            .await
            .unwrap();
        let port = listener.port();
        let waiting = tokio::spawn(listener.receive());
        let favicon = get(port, "/favicon.ico").await;
        assert!(favicon.starts_with("HTTP/1.1 404"));
        let page = get(port, "/callback?code=abc&state=xyz").await;
        assert!(page.starts_with("HTTP/1.1 200") && page.contains("close this tab"));
        assert_eq!(waiting.await.unwrap().unwrap(), "code=abc&state=xyz");
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
