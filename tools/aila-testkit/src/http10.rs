//! A one-shot HTTP/1.0 call to a local test server's API (Mailpit, Toxiproxy): the server
//! closes the connection after one answer and never chunks it, so std's TCP is enough and
//! the spawners need no async client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `method path` on `127.0.0.1:port` with an optional JSON body, each step bounded by
/// `timeout`; the answer's status and body. Errors name the call and, when nothing
/// answers, the server (`server`) that should be running.
pub fn call(
    port: u16,
    method: &str,
    path: &str,
    json_body: Option<&str>,
    timeout: Duration,
    server: &str,
) -> Result<(u16, String), String> {
    let what = format!("{method} http://127.0.0.1:{port}{path}");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut conn = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("{what}: {e} (is {server} running?)"))?;
    conn.set_read_timeout(Some(timeout))
        .and_then(|()| conn.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{what}: {e}"))?;
    let body = json_body.unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes())
        .map_err(|e| format!("{what}: {e}"))?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)
        .map_err(|e| format!("{what}: reading the answer: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{what}: not an HTTP answer: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("{what}: no status in {head:?}"))?;
    Ok((status, body.to_string()))
}
