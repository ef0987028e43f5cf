//! The fan-out benchmark's sources: a file served at a mirror-like rate per connection, by
//! the benchmark's own server (paced writes) or by nginx (`limit_rate`), each able to say how
//! many body bytes it sent (nginx through its access log's `$body_bytes_sent`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Result;
use super::source_servers::{self, SourceServer};

/// A source server limited to a rate per connection, counting the body bytes it sent.
pub enum Source {
    Own {
        addr: SocketAddr,
        sent: Arc<AtomicU64>,
    },
    Nginx(SourceServer),
}

impl Source {
    pub fn start(name: &str, dir: &Path, rate: u64) -> Result<Self> {
        match name {
            "own" => own_server(dir, rate),
            "nginx" => nginx(dir, rate),
            other => Err(format!("no server {other}: use own or nginx")),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Source::Own { .. } => "own (paced)",
            Source::Nginx(_) => "nginx (limit_rate)",
        }
    }

    pub fn url(&self, file: &Path) -> String {
        match self {
            Source::Own { addr, .. } => {
                let name = file.file_name().unwrap_or_default().to_string_lossy();
                format!("http://{addr}/{name}")
            }
            Source::Nginx(server) => server.url(file),
        }
    }

    /// Body bytes sent so far.
    pub fn bytes_sent(&self) -> u64 {
        match self {
            Source::Own { sent, .. } => sent.load(Ordering::SeqCst),
            // One number per request: the access log's $body_bytes_sent.
            Source::Nginx(server) => server
                .scratch()
                .and_then(|scratch| std::fs::read_to_string(scratch.join("access.log")).ok())
                .unwrap_or_default()
                .lines()
                .filter_map(|line| line.trim().parse::<u64>().ok())
                .sum(),
        }
    }
}

fn own_server(dir: &Path, rate: u64) -> Result<Source> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let sent = Arc::new(AtomicU64::new(0));
    let (counter, dir) = (sent.clone(), dir.to_path_buf());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (counter, dir) = (counter.clone(), dir.clone());
            std::thread::spawn(move || serve_paced(stream, &dir, rate, &counter));
        }
    });
    Ok(Source::Own { addr, sent })
}

/// Answers one GET with the file, 256 KiB at a time, never faster than `rate` bytes/s.
fn serve_paced(mut stream: TcpStream, dir: &Path, rate: u64, sent: &AtomicU64) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let name = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/');
    let Ok(mut file) = std::fs::File::open(dir.join(name)) else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
    if stream.write_all(header.as_bytes()).is_err() {
        return;
    }
    let started = Instant::now();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut done: u64 = 0;
    loop {
        let Ok(read) = file.read(&mut buffer) else {
            return;
        };
        if read == 0 || stream.write_all(&buffer[..read]).is_err() {
            return;
        }
        done += read as u64;
        sent.fetch_add(read as u64, Ordering::SeqCst);
        let due = Duration::from_secs_f64(done as f64 / rate as f64);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}

fn nginx(dir: &Path, rate: u64) -> Result<Source> {
    let extra = format!(
        "  log_format sent '$body_bytes_sent';\n  access_log {{scratch}}/access.log sent;\n  limit_rate {rate};\n"
    );
    let server = source_servers::nginx(dir, &extra)?;
    Ok(Source::Nginx(server))
}
