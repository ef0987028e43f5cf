//! The file servers the transfer benchmark fetches its sources from: its own (sendfile, the
//! best case), and the ones users have: Python's `http.server` (the first thing a new user
//! tries), nginx (Debian's package, as most mirrors run it), and one that writes in small
//! pieces with Nagle off (a slow or naive application server). A result counts only if it
//! holds for all of them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, String>;

/// The `--server` names, in the order the benchmark measures them.
pub const SERVERS: [&str; 4] = ["own", "python", "nginx", "small-writes"];

/// Bytes per write of the small-writes server: one typical segment's worth of payload.
const SMALL_WRITE: usize = 4096;

pub struct SourceServer {
    pub name: &'static str,
    addr: SocketAddr,
    inner: Inner,
}

enum Inner {
    Thread { stop: Arc<AtomicBool> },
    Process { child: Child, scratch: PathBuf },
}

impl SourceServer {
    /// Starts the server called `name`, serving the files of `dir`.
    pub fn start(name: &str, dir: &Path) -> Result<Self> {
        let Some(&name) = SERVERS.iter().find(|known| **known == name) else {
            return Err(format!(
                "no server {name}: use one of {}",
                SERVERS.join(", ")
            ));
        };
        let server = match name {
            "own" => threaded(name, dir, Writes::Sendfile)?,
            "small-writes" => threaded(name, dir, Writes::Small)?,
            "python" => {
                let port = free_port()?;
                let child = Command::new("python3")
                    .args(["-m", "http.server", "--bind", "127.0.0.1"])
                    .arg(port.to_string())
                    .arg("--directory")
                    .arg(dir)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("cannot start python3 -m http.server: {e}"))?;
                process(name, port, child, PathBuf::new())?
            }
            _ => nginx(dir, "  access_log off;\n")?,
        };
        Ok(server)
    }

    /// The folder of a server run as a process (nginx's config and logs); none for the others.
    pub fn scratch(&self) -> Option<&Path> {
        match &self.inner {
            Inner::Process { scratch, .. } if !scratch.as_os_str().is_empty() => Some(scratch),
            _ => None,
        }
    }

    pub fn url(&self, file: &Path) -> String {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        format!("http://{}/{name}", self.addr)
    }
}

impl Drop for SourceServer {
    fn drop(&mut self) {
        match &mut self.inner {
            Inner::Thread { stop } => {
                stop.store(true, Ordering::Relaxed);
                // Wake the accept loop so that it sees the flag.
                let _ = TcpStream::connect(self.addr);
            }
            Inner::Process { child, scratch } => {
                super::common::harness::stop_process(child);
                if !scratch.as_os_str().is_empty() {
                    let _ = std::fs::remove_dir_all(&*scratch);
                }
            }
        }
    }
}

/// nginx serving `dir` on a free loopback port, with `http_extra` added to its http block
/// (the access log's setting at least: `access_log off;` unless its writes are wanted);
/// `{scratch}` in it names the server's own folder.
pub fn nginx(dir: &Path, http_extra: &str) -> Result<SourceServer> {
    let port = free_port()?;
    let scratch = std::env::temp_dir().join(format!("glint-bench-nginx-{port}"));
    let http_extra = http_extra.replace("{scratch}", &scratch.display().to_string());
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let config = scratch.join("nginx.conf");
    // Debian's defaults where they matter for speed (sendfile, tcp_nopush).
    std::fs::write(
        &config,
        format!(
            "daemon off;\nuser root;\nworker_processes 1;\npid {scratch}/nginx.pid;\n\
             error_log {scratch}/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n{http_extra}  sendfile on;\n  tcp_nopush on;\n\
             client_body_temp_path {scratch}/body;\n  proxy_temp_path {scratch}/proxy;\n\
             fastcgi_temp_path {scratch}/fastcgi;\n  uwsgi_temp_path {scratch}/uwsgi;\n\
             scgi_temp_path {scratch}/scgi;\n  default_type application/octet-stream;\n\
             server {{ listen 127.0.0.1:{port}; root {dir}; }}\n}}\n",
            scratch = scratch.display(),
            dir = dir.display(),
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = super::common::mirror::spawn_nginx(&config, &scratch)
        .map_err(|e| format!("cannot start nginx (scripts/bench installs it): {e}"))?;
    process("nginx", port, child, scratch)
}

pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// Waits until the child accepts connections on `port`; the server stops it (and deletes
/// `scratch`, unless empty) when dropped.
pub fn process(
    name: &'static str,
    port: u16,
    mut child: Child,
    scratch: PathBuf,
) -> Result<SourceServer> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the {name} server exited at start: {status}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "the {name} server did not listen on {addr} within 10 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(SourceServer {
        name,
        addr,
        inner: Inner::Process { child, scratch },
    })
}

#[derive(Clone, Copy)]
enum Writes {
    /// File to socket with sendfile: the server costs next to no CPU.
    Sendfile,
    /// [`SMALL_WRITE`] bytes per write, each sent at once.
    Small,
}

/// A server in this process: one thread per connection.
fn threaded(name: &'static str, dir: &Path, writes: Writes) -> Result<SourceServer> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stopped.load(Ordering::Relaxed) {
                break;
            }
            if let Ok(stream) = stream {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &dir, writes);
                });
            }
        }
    });
    Ok(SourceServer {
        name,
        addr,
        inner: Inner::Thread { stop },
    })
}

fn serve(mut stream: TcpStream, dir: &Path, writes: Writes) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let name = target.trim_start_matches('/');
    let file = (!name.is_empty() && !name.contains('/') && !name.starts_with('.'))
        .then(|| std::fs::File::open(dir.join(name)).ok())
        .flatten();
    let Some(mut file) = file.filter(|_| method == "GET" || method == "HEAD") else {
        return stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    };
    let len = file.metadata()?.len();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    )?;
    if method != "GET" {
        return stream.flush();
    }
    match writes {
        // File to socket: std uses sendfile here.
        Writes::Sendfile => {
            std::io::copy(&mut file, &mut stream)?;
        }
        Writes::Small => {
            stream.set_nodelay(true)?;
            let mut buffer = [0u8; SMALL_WRITE];
            loop {
                let read = file.read(&mut buffer)?;
                if read == 0 {
                    break;
                }
                stream.write_all(&buffer[..read])?;
            }
        }
    }
    stream.flush()
}
