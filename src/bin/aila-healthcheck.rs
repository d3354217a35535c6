//! `aila-healthcheck`: the container health check. `GET /health` on this machine and exit 0
//! when it answers 200, 1 otherwise (one line on stderr saying why).
//!
//! The runtime image has no curl or wget; this binary uses only the standard library, so it
//! adds a few hundred kilobytes and no shell is needed (`HEALTHCHECK CMD ["aila-healthcheck"]`).
//!
//! The port is `PORT` (the service's own variable, default 8001); `AILA_HEALTHCHECK_URL_PATH`
//! changes the path (default `/health`, the liveness endpoint: it never depends on the
//! database). One argument `HOST:PORT` overrides the address. The whole check is bounded by
//! a 2 s deadline (connect, write, read).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    match check() {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("aila-healthcheck: {why}");
            ExitCode::FAILURE
        }
    }
}

fn target() -> Result<(SocketAddr, String), String> {
    let path = std::env::var("AILA_HEALTHCHECK_URL_PATH").unwrap_or_else(|_| "/health".into());
    let address = match std::env::args().nth(1) {
        Some(a) => a,
        None => {
            let port = std::env::var("PORT").unwrap_or_else(|_| "8001".into());
            let port: u16 = port
                .parse()
                .map_err(|_| format!("PORT = {port:?} is not a port number"))?;
            // PORT=0 makes no sense for a container; the service would pick a random port.
            if port == 0 {
                return Err("PORT = 0: the health check needs the real port".into());
            }
            format!("127.0.0.1:{port}")
        }
    };
    let addr = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address} resolves to nothing"))?;
    Ok((addr, path))
}

fn check() -> Result<(), String> {
    let started = Instant::now();
    let (addr, path) = target()?;
    let mut stream = TcpStream::connect_timeout(&addr, DEADLINE)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let left = |started: Instant| {
        DEADLINE
            .checked_sub(started.elapsed())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_millis(1))
    };
    stream
        .set_write_timeout(Some(left(started)))
        .and_then(|()| stream.set_read_timeout(Some(left(started))))
        .map_err(|e| format!("socket: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: aila-healthcheck\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send the request to {addr}: {e}"))?;
    // The status line is all we need: "HTTP/1.1 200 OK".
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("no answer from {addr}{path} within {DEADLINE:?}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("");
    let status = line.split_whitespace().nth(1).unwrap_or("");
    if status == "200" {
        Ok(())
    } else {
        Err(format!("{addr}{path} answered {line:?}"))
    }
}
