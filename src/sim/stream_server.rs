//! [`StreamServer`]: an NDJSON stream over HTTP for tests, benchmarks and examples: each
//! connection is answered by the next [`Script`] (the last one again when they run
//! out), as a chunked body sent line by line at the script's pace, ended normally or
//! cut mid-line.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use blossom_sql::sim::{Script, StreamServer};
//! let lines = (0..10).map(|i| format!("{{\"id\": {i}, \"sent_at\": $SENT_AT}}")).collect();
//! let server = StreamServer::start(vec![Script::lines(lines, Duration::from_millis(200))]).await;
//! println!("CREATE UNBOUNDED EXTERNAL TABLE e STORED AS NDJSON LOCATION '{}'", server.url());
//! # }
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// In a line, replaced by the time it is sent, in seconds since the Unix epoch.
pub const SENT_AT: &str = "$SENT_AT";

/// Makes the i-th line of a generated stream.
pub type LineMaker = fn(usize) -> String;

/// What the server does with one connection.
#[derive(Debug, Clone)]
pub struct Script {
    /// The response's status.
    pub status: u16,
    /// The lines of the body, each sent as its own chunk.
    pub lines: Vec<String>,
    /// The wait after each line.
    pub pause: Duration,
    /// After the lines: bytes of a cut line, then the socket closes without ending the
    /// body.
    pub cut: Option<String>,
    /// Lines made as they are sent, after `lines`: this many, the i-th by the function
    /// (for streams too long to hold).
    pub generated: Option<(usize, LineMaker)>,
}

impl Script {
    /// A `200` answer sending `lines`, `pause` apart, then ending the body.
    pub fn lines(lines: Vec<String>, pause: Duration) -> Self {
        Self {
            status: 200,
            lines,
            pause,
            cut: None,
            generated: None,
        }
    }

    /// A `200` answer sending `count` lines made by `line` as they are sent.
    pub fn generated(count: usize, line: LineMaker, pause: Duration) -> Self {
        Self {
            generated: Some((count, line)),
            ..Self::lines(Vec::new(), pause)
        }
    }
}

/// The server; it stops when dropped.
#[derive(Debug)]
pub struct StreamServer {
    url: String,
    sent: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StreamServer {
    /// Starts a server on 127.0.0.1 with a free port. Must be called inside a tokio
    /// runtime.
    pub async fn start(scripts: Vec<Script>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port on 127.0.0.1");
        let url = format!(
            "http://{}/stream",
            listener.local_addr().expect("a bound address")
        );
        let sent = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (counter, kept) = (Arc::clone(&sent), Arc::clone(&heads));
        let task = tokio::spawn(async move {
            let mut n = 0;
            while let Ok((socket, _)) = listener.accept().await {
                let Some(script) = scripts.get(n.min(scripts.len().saturating_sub(1))).cloned()
                else {
                    return;
                };
                n += 1;
                tokio::spawn(serve(
                    socket,
                    script,
                    Arc::clone(&counter),
                    Arc::clone(&kept),
                ));
            }
        });
        Self {
            url,
            sent,
            heads,
            task,
        }
    }

    /// The stream's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Lines sent so far, over all connections.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// The head (request line and headers) of each request, in order.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut socket: tokio::net::TcpStream,
    script: Script,
    sent: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
) {
    let mut head = vec![0u8; 8192];
    let read = socket.read(&mut head).await.unwrap_or(0);
    heads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(String::from_utf8_lossy(&head[..read]).into_owned());
    let reason = if script.status == 200 {
        "OK"
    } else {
        "Refused"
    };
    let start = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/x-ndjson\r\n\
         transfer-encoding: chunked\r\n\r\n",
        script.status
    );
    if socket.write_all(start.as_bytes()).await.is_err() {
        return;
    }
    let generated = script
        .generated
        .into_iter()
        .flat_map(|(count, line)| (0..count).map(line));
    for line in script.lines.iter().cloned().chain(generated) {
        let line = format!("{}\n", line.replace(SENT_AT, &unix_seconds().to_string()));
        let chunk = format!("{:x}\r\n{line}\r\n", line.len());
        if socket.write_all(chunk.as_bytes()).await.is_err() {
            return;
        }
        sent.fetch_add(1, Ordering::SeqCst);
        if !script.pause.is_zero() {
            tokio::time::sleep(script.pause).await;
        }
    }
    if let Some(cut) = &script.cut {
        let chunk = format!("{:x}\r\n{cut}\r\n", cut.len());
        let _ = socket.write_all(chunk.as_bytes()).await;
        return;
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
}

/// Now, in seconds since the Unix epoch.
pub fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
