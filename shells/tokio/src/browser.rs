//! Sending the user to the authorization URL: the system browser (never an embedded web
//! view, NAT-8), or the URL printed for the user to open.

use std::process::{Command, Stdio};

use tenure_core::endpoint::sanitize;
use tenure_core::ERROR_BODY_LIMIT;
use url::Url;

use crate::http::HttpClient;

/// How the authorization URL reaches the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrowserMode {
    /// Open the system browser, and hand the URL to the login URL hook too, in case it does
    /// not open.
    Open,
    /// Only hand the URL to the login URL hook (a command line's `--no-browser`).
    Print,
    /// No browser and no listener: the shell itself requests the authorization URL, follows
    /// no redirect, and hands the query of the redirect to the registered redirect URI to the
    /// core as the callback. For tests and for authorization servers that approve at once
    /// (such as the MCP conformance suite's); a server that shows a login page cannot be used
    /// this way, and the login then ends with an error that says so.
    Headless,
}

/// Starts the system browser on `url`; whether it could be started.
pub fn launch(url: &str) -> bool {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(target_os = "windows") {
        "explorer"
    } else {
        "xdg-open"
    };
    Command::new(program)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .is_ok()
}

/// Carries out [`BrowserMode::Headless`]: requests the authorization URL like a browser that
/// never shows a page, and returns the query of its redirect to `redirect_uri` (the callback
/// the core then checks for `state` and `iss`). No redirect is followed: an answer other than
/// a redirect to the redirect URI ends the login with a reason that says what to do.
pub async fn headless_redirect(
    http: &HttpClient,
    url: &str,
    redirect_uri: &str,
) -> Result<String, String> {
    let request = http::Request::get(url)
        .body(Vec::new())
        .map_err(|e| format!("cannot build the authorization request: {e}"))?;
    let response = http
        .send(request, ERROR_BODY_LIMIT)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_redirection() {
        return Err(format!(
            "the authorization endpoint {} answered HTTP {} instead of redirecting at once; a headless login only works with servers that approve without a login page, so log in with a browser instead",
            sanitize(url),
            status.as_u16()
        ));
    }
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            format!(
                "the authorization endpoint {} redirected without a usable Location header",
                sanitize(url)
            )
        })?;
    let target = Url::parse(url)
        .and_then(|base| base.join(location))
        .map_err(|e| format!("the authorization endpoint redirected to an invalid URL ({e})"))?;
    let expected = Url::parse(redirect_uri)
        .map_err(|e| format!("the redirect URI `{redirect_uri}` is not a URL ({e})"))?;
    let same_place = target.scheme() == expected.scheme()
        && target.host_str() == expected.host_str()
        && target.port_or_known_default() == expected.port_or_known_default()
        && target.path() == expected.path();
    if !same_place {
        return Err(format!(
            "the authorization endpoint redirected to {} rather than to the redirect URI {}; it probably wants a login page, so log in with a browser instead",
            sanitize(target.as_str()),
            sanitize(redirect_uri)
        ));
    }
    Ok(target.query().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server on 127.0.0.1 that answers one request with `answer`.
    async fn serve_once(answer: String) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            if let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        format!("http://{address}/authorize?client_id=c&state=s")
    }

    use crate::http::tests::client;

    const REDIRECT_URI: &str = "http://127.0.0.1:8976/callback";

    #[tokio::test]
    async fn a_redirect_to_the_redirect_uri_is_the_callback() {
        let url = serve_once(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:8976/callback?code=abc&state=s\r\nContent-Length: 0\r\n\r\n".into(),
        )
        .await;
        let query = headless_redirect(&client(), &url, REDIRECT_URI)
            .await
            .unwrap();
        assert_eq!(query, "code=abc&state=s");
    }

    #[tokio::test]
    async fn a_login_page_or_a_redirect_elsewhere_says_to_use_a_browser() {
        let page = serve_once(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n\r\n<html>".into(),
        )
        .await;
        let error = headless_redirect(&client(), &page, REDIRECT_URI)
            .await
            .unwrap_err();
        assert!(error.contains("browser"), "{error}");
        let elsewhere = serve_once(
            "HTTP/1.1 302 Found\r\nLocation: /login?code=abc\r\nContent-Length: 0\r\n\r\n".into(),
        )
        .await;
        let error = headless_redirect(&client(), &elsewhere, REDIRECT_URI)
            .await
            .unwrap_err();
        assert!(
            error.contains("browser") && !error.contains("abc"),
            "{error}"
        );
    }
}
