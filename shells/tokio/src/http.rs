//! Carrying out the core's HTTP requests (design §4).
//!
//! The core builds every request as a plain `http::Request`; this module only sends it and
//! reads the answer, under the rules that protect credentials on the wire:
//!
//! - no redirect is ever followed: a request that carries a secret must not be replayed to
//!   another origin, and the core wants to see every answer itself;
//! - https only, except on loopback hosts (checked again here, whatever the core built);
//! - a connect timeout and a total timeout on every request;
//! - bodies are read with a cap (1 MiB for answers, 8 KiB for errors) and never read whole
//!   when they are larger: a 10 MB metadata document fails after the first megabyte.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tenure_core::endpoint::{sanitize, secure_endpoint};
use tenure_core::{BODY_LIMIT, ERROR_BODY_LIMIT};

/// Timeouts for every request.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// How long to wait for a connection (TCP and TLS).
    pub connect: Duration,
    /// How long the whole exchange, body included, may take.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            total: Duration::from_secs(30),
        }
    }
}

/// An HTTP client that follows the core's rules.
///
/// Its two reqwest clients are built at their first request, not before: building one
/// loads the system's trusted roots, which costs milliseconds that a process serving a
/// stored token never needs to spend.
#[derive(Clone, Debug)]
pub struct HttpClient {
    timeouts: Timeouts,
    /// For other hosts: honours `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`.
    inner: Arc<OnceLock<Result<reqwest::Client, TransportError>>>,
    /// For loopback hosts: never through a proxy, which would carry a loopback server's
    /// secrets (over plain HTTP) off the machine.
    direct: Arc<OnceLock<Result<reqwest::Client, TransportError>>>,
}

/// Why a request got no usable answer. The text names the sanitized URL and never a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

impl HttpClient {
    /// A client with these timeouts.
    pub fn new(timeouts: Timeouts) -> Self {
        HttpClient {
            timeouts,
            inner: Arc::default(),
            direct: Arc::default(),
        }
    }

    /// Builds both clients on a blocking thread now, so that the first request does not
    /// pay for it (a request under a store lease should not load certificates first).
    pub fn warm_up(&self) {
        if self.inner.get().is_some() && self.direct.get().is_some() {
            return;
        }
        let http = self.clone();
        tokio::task::spawn_blocking(move || {
            let _ = http.client_for(true);
            let _ = http.client_for(false);
        });
    }

    /// The reqwest client for `url`'s host, built on first use.
    fn client_for(&self, loopback: bool) -> Result<&reqwest::Client, TransportError> {
        let (cell, proxies) = if loopback {
            (&self.direct, false)
        } else {
            (&self.inner, true)
        };
        cell.get_or_init(|| {
            let mut builder = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(self.timeouts.connect)
                .timeout(self.timeouts.total)
                .user_agent(concat!("tenure/", env!("CARGO_PKG_VERSION")));
            if !proxies {
                builder = builder.no_proxy();
            }
            builder
                .build()
                .map_err(|e| TransportError(format!("cannot build the HTTP client: {e}")))
        })
        .as_ref()
        .map_err(Clone::clone)
    }

    /// Sends `request` and reads the answer with the body capped at `limit` bytes for a
    /// success and [`ERROR_BODY_LIMIT`] for anything else.
    pub async fn send(
        &self,
        request: http::Request<Vec<u8>>,
        limit: usize,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        let url_text = request.uri().to_string();
        let shown = sanitize(&url_text);
        let url = secure_endpoint(&url_text).map_err(TransportError)?;
        let client = self.client_for(tenure_core::endpoint::is_loopback(&url))?;
        let (parts, body) = request.into_parts();
        let mut response = client
            .request(parts.method, url_text.as_str())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| TransportError(format!("{shown}: {}", describe(&e))))?;
        let status = response.status();
        let limit = if status.is_success() {
            limit.min(BODY_LIMIT)
        } else {
            ERROR_BODY_LIMIT
        };
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64 && status.is_success())
        {
            return Err(TransportError(format!(
                "{shown}: the answer announces {} bytes, over the {limit}-byte limit",
                response.content_length().unwrap_or_default()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| TransportError(format!("{shown}: {}", describe(&e))))?
        {
            let room = limit.saturating_sub(body.len());
            if chunk.len() > room {
                if status.is_success() {
                    return Err(TransportError(format!(
                        "{shown}: the answer is over the {limit}-byte limit"
                    )));
                }
                // An error page is only read for diagnostics: keep its start, drop the rest.
                body.extend_from_slice(&chunk[..room]);
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let mut answer = http::Response::new(body);
        *answer.status_mut() = status;
        *answer.headers_mut() = response.headers().clone();
        Ok(answer)
    }
}

/// A transport error in words, without the URL (reqwest's text can carry the query).
fn describe(error: &reqwest::Error) -> String {
    if let Some(tls) = cause_mentioning(error, "certificate") {
        return format!(
            "the server's TLS certificate was refused ({tls}); check that the URL names the \
             right host and that its certificate is issued by a trusted authority"
        );
    }
    let words = if error.is_timeout() {
        "timed out"
    } else if cause_mentioning(error, "connection closed").is_some() {
        "the server closed the connection without a complete answer"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the answer broke off"
    } else if error.is_request() {
        "the request could not be sent"
    } else {
        "the exchange failed"
    };
    words.to_string()
}

/// The first of the error's causes whose words mention `needle`. rustls and hyper name the
/// problem there (an unknown issuer, a closed connection), never a URL or a secret.
fn cause_mentioning(error: &reqwest::Error, needle: &str) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(current) = cause {
        let text = current.to_string();
        if text.contains(needle) {
            return Some(text);
        }
        cause = current.source();
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot server on 127.0.0.1 that answers every connection with `answer`.
    async fn serve(answer: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..4 {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(&answer).await;
                let _ = socket.shutdown().await;
            }
        });
        format!("http://{address}")
    }

    fn get(url: &str) -> http::Request<Vec<u8>> {
        http::Request::get(url).body(Vec::new()).unwrap()
    }

    /// A client with short timeouts, for tests against local sockets.
    pub(crate) fn client() -> HttpClient {
        HttpClient::new(Timeouts {
            connect: Duration::from_secs(2),
            total: Duration::from_secs(2),
        })
    }

    #[tokio::test]
    async fn redirects_are_never_followed() {
        let base = serve(
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        )
        .await;
        let answer = client()
            .send(get(&format!("{base}/token")), 1024)
            .await
            .unwrap();
        assert_eq!(answer.status(), 302);
    }

    #[tokio::test]
    async fn oversized_answers_are_refused_without_reading_them_whole() {
        let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n".to_vec();
        answer.extend(std::iter::repeat_n(b'x', 64 * 1024));
        let base = serve(answer).await;
        let error = client().send(get(&base), BODY_LIMIT).await.unwrap_err();
        assert!(error.0.contains("limit"), "{error}");
        // Without a length header the cap applies while reading.
        let mut chunked = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        chunked.extend(std::iter::repeat_n(b'y', 5000));
        let base = serve(chunked).await;
        let error = client().send(get(&base), 1000).await.unwrap_err();
        assert!(error.0.contains("limit"), "{error}");
    }

    #[tokio::test]
    async fn error_bodies_are_cut_not_refused() {
        let mut answer =
            b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n".to_vec();
        answer.extend(std::iter::repeat_n(b'z', 20 * 1024));
        let base = serve(answer).await;
        let answer = client().send(get(&base), BODY_LIMIT).await.unwrap();
        assert_eq!(answer.status(), 500);
        assert_eq!(answer.body().len(), ERROR_BODY_LIMIT);
    }

    #[tokio::test]
    async fn plain_http_is_refused_off_loopback() {
        let error = client()
            .send(get("http://as.example.com/token?code=secret"), 1024)
            .await
            .unwrap_err();
        assert!(error.0.contains("not https"), "{error}");
        assert!(!error.0.contains("secret"));
    }

    #[tokio::test]
    async fn silent_servers_time_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        let quick = HttpClient::new(Timeouts {
            connect: Duration::from_millis(500),
            total: Duration::from_millis(300),
        });
        let error = quick
            .send(get(&format!("http://{address}/")), 1024)
            .await
            .unwrap_err();
        assert!(error.0.contains("timed out"), "{error}");
        hold.abort();
    }
}
