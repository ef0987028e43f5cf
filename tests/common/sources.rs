//! A configurable image source on 127.0.0.1 for the transfer tests: it answers each request
//! with a [`Reply`] chosen from the request (status, body, the Content-Length it announces,
//! how much of the body it really sends, how fast, and whether it then hangs), and records
//! what it saw: the requests with their Authorization header, the body bytes it sent, and
//! the connections the client closed before the server was done with them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the server answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    /// The Content-Length announced; the body's length unless set.
    pub content_length: Option<u64>,
    /// Send only this many bytes of the body, then end the connection.
    pub send_only: Option<usize>,
    /// The body goes out in pieces of `chunk` bytes with `pause` after each.
    pub chunk: usize,
    pub pause: Duration,
    /// After what it sent, hold the connection open this long before closing it.
    pub hang: Duration,
}

impl Reply {
    /// 200 with `body`, all at once.
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Self {
            status: 200,
            body: body.into(),
            content_length: None,
            send_only: None,
            chunk: 64 * 1024,
            pause: Duration::ZERO,
            hang: Duration::ZERO,
        }
    }

    /// An error status with a short text body.
    pub fn status(code: u16) -> Self {
        Self {
            status: code,
            ..Self::ok(format!("the test source answers {code}"))
        }
    }

    /// Announces `len` as the Content-Length, whatever the body's real length.
    pub fn announcing(self, len: u64) -> Self {
        Self {
            content_length: Some(len),
            ..self
        }
    }

    /// Sends only the first `len` bytes of the body.
    pub fn sending_only(self, len: usize) -> Self {
        Self {
            send_only: Some(len),
            ..self
        }
    }

    /// Sends `chunk` bytes, then waits `pause`, until the body is out.
    pub fn slowly(self, chunk: usize, pause: Duration) -> Self {
        Self {
            chunk: chunk.max(1),
            pause,
            ..self
        }
    }

    /// Keeps the connection open, silent, for `hang` after what it sent.
    pub fn then_hanging(self, hang: Duration) -> Self {
        Self { hang, ..self }
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Stats {
    requests: Mutex<Vec<SeenRequest>>,
    body_bytes: AtomicU64,
    completed: AtomicU64,
    cut_off: AtomicU64,
}

/// The running server; it stops (and drops its connections) when dropped.
pub struct SourceServer {
    pub port: u16,
    stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SourceServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Answer = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

impl SourceServer {
    /// Answers every request with `reply`.
    pub async fn serving(reply: Reply) -> Self {
        Self::start(move |_| reply.clone()).await
    }

    /// A server on a free port whose answers `answer` chooses.
    pub async fn start(answer: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind a loopback port");
        Self::run(listener, Arc::new(answer))
    }

    /// A server on `port` (such as the one Glance's web-download may fetch from); waits up to
    /// 60 s for the port while another test holds it.
    pub async fn start_on(
        port: u16,
        answer: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                Ok(listener) => break listener,
                Err(err) if std::time::Instant::now() < deadline => {
                    eprintln!("port {port} is busy ({err}); waiting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(err) => panic!("cannot bind 127.0.0.1:{port}: {err}"),
            }
        };
        Self::run(listener, Arc::new(answer))
    }

    fn run(listener: tokio::net::TcpListener, answer: Arc<Answer>) -> Self {
        let port = listener.local_addr().expect("address").port();
        let stats = Arc::new(Stats::default());
        let shared = stats.clone();
        let task = tokio::spawn(async move {
            // Connections live in the set, so stopping the server ends them too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((socket, _)) = accepted else { return };
                        connections.spawn(serve(socket, answer.clone(), shared.clone()));
                    }
                    Some(_) = connections.join_next() => {}
                }
            }
        });
        Self { port, stats, task }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.stats.requests.lock().expect("requests").clone()
    }

    /// GET requests so far (attempts to download).
    pub fn gets(&self) -> usize {
        self.requests().iter().filter(|r| r.method == "GET").count()
    }

    /// Body bytes written to clients so far.
    pub fn body_bytes_sent(&self) -> u64 {
        self.stats.body_bytes.load(Ordering::SeqCst)
    }

    /// Connections the client closed before the server had sent (and held) all it meant to.
    pub fn cut_off(&self) -> u64 {
        self.stats.cut_off.load(Ordering::SeqCst)
    }

    /// Answers sent in full.
    pub fn completed(&self) -> u64 {
        self.stats.completed.load(Ordering::SeqCst)
    }
}

fn phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

async fn serve(socket: tokio::net::TcpStream, answer: Arc<Answer>, stats: Arc<Stats>) {
    let (mut reader, mut writer) = socket.into_split();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut first = text.split_whitespace();
    let method = first.next().unwrap_or("GET").to_string();
    let path = first.next().unwrap_or("/").to_string();
    let authorization = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("authorization")
            .then(|| value.trim().to_string())
    });
    let request = SeenRequest {
        method,
        path,
        authorization,
    };
    let reply = answer(&request);
    let head_only = request.method == "HEAD";
    stats.requests.lock().expect("requests").push(request);

    let challenge = if reply.status == 401 {
        "WWW-Authenticate: Basic realm=\"glint-test\"\r\n"
    } else {
        ""
    };
    let header = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{challenge}Connection: close\r\n\r\n",
        reply.status,
        phrase(reply.status),
        reply.content_length.unwrap_or(reply.body.len() as u64)
    );
    let body = if head_only {
        Bytes::new()
    } else {
        let len = reply.send_only.unwrap_or(usize::MAX).min(reply.body.len());
        reply.body.slice(..len)
    };
    let send = async {
        writer.write_all(header.as_bytes()).await?;
        for piece in body.chunks(reply.chunk) {
            writer.write_all(piece).await?;
            stats
                .body_bytes
                .fetch_add(piece.len() as u64, Ordering::SeqCst);
            if !reply.pause.is_zero() {
                tokio::time::sleep(reply.pause).await;
            }
        }
        writer.flush().await?;
        tokio::time::sleep(reply.hang).await;
        writer.shutdown().await
    };
    // The client sends nothing more: a read that ends means it hung up.
    let hung_up = async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        biased;
        sent = send => {
            let counter = if sent.is_ok() { &stats.completed } else { &stats.cut_off };
            counter.fetch_add(1, Ordering::SeqCst);
        }
        () = hung_up => {
            stats.cut_off.fetch_add(1, Ordering::SeqCst);
        }
    }
}
