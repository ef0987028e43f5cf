//! The fan-out benchmark's sources: a file served at a mirror-like rate per connection, by
//! the benchmark's own server (paced writes) or by nginx (`limit_rate`), each able to say how
//! many body bytes it sent (nginx through its access log's `$body_bytes_sent`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Result;

pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

pub fn wait_for_port(port: u16) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("nothing listens on {addr} after 15 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A source server limited to a rate per connection, counting the body bytes it sent.
pub enum Source {
    Own {
        addr: SocketAddr,
        sent: Arc<AtomicU64>,
    },
    Nginx {
        addr: SocketAddr,
        child: Child,
        scratch: PathBuf,
    },
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Source::Nginx { child, scratch, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&*scratch);
        }
    }
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
            Source::Nginx { .. } => "nginx (limit_rate)",
        }
    }

    pub fn url(&self, file: &Path) -> String {
        let addr = match self {
            Source::Own { addr, .. } | Source::Nginx { addr, .. } => addr,
        };
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        format!("http://{addr}/{name}")
    }

    /// Body bytes sent so far.
    pub fn bytes_sent(&self) -> u64 {
        match self {
            Source::Own { sent, .. } => sent.load(Ordering::SeqCst),
            // One number per request: the access log's $body_bytes_sent.
            Source::Nginx { scratch, .. } => std::fs::read_to_string(scratch.join("access.log"))
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
    let port = free_port()?;
    let scratch = std::env::temp_dir().join(format!("glint-bench-fanout-nginx-{port}"));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let config = scratch.join("nginx.conf");
    std::fs::write(
        &config,
        format!(
            "daemon off;\nuser root;\nworker_processes 1;\npid {s}/nginx.pid;\n\
             error_log {s}/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n  log_format sent '$body_bytes_sent';\n  access_log {s}/access.log sent;\n\
             sendfile on;\n  tcp_nopush on;\n  limit_rate {rate};\n\
             client_body_temp_path {s}/body;\n  proxy_temp_path {s}/proxy;\n\
             fastcgi_temp_path {s}/fastcgi;\n  uwsgi_temp_path {s}/uwsgi;\n\
             scgi_temp_path {s}/scgi;\n  default_type application/octet-stream;\n\
             server {{ listen 127.0.0.1:{port}; root {dir}; }}\n}}\n",
            s = scratch.display(),
            dir = dir.display(),
        ),
    )
    .map_err(|e| e.to_string())?;
    let binary = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("nginx"));
    let child = Command::new(binary)
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(&scratch)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start nginx (scripts/bench installs it): {e}"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let source = Source::Nginx {
        addr,
        child,
        scratch,
    };
    wait_for_port(port)?;
    Ok(source)
}
