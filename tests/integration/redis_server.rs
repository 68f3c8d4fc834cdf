//! A `redis-server` of a test's own on a free 127.0.0.1 port, for the tests of the
//! shared response cache (`cache_redis.rs`) and of the cluster (`cluster.rs`).
//!
//! `redis-server` must be installed (`apt-get install -y redis-server`; `.ci/run`
//! installs it): without it these tests fail, they do not skip.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use blossom_sql::dispatch::KEY_PREFIX;

/// A `redis-server` of its own, without persistence, killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    password: Option<String>,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_on(free_port(), None)
    }

    pub fn with_password(password: &str) -> Self {
        Self::start_on(free_port(), Some(password))
    }

    pub fn start_on(port: u16, password: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = password {
            command.args(["--requirepass", password]);
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start redis-server ({e}): the Redis cache tests need it installed \
                 (apt-get install -y redis-server; .ci/run installs it)"
            )
        });
        let server = Self {
            child,
            port,
            password: password.map(str::to_string),
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    /// Waits until the server answers a PING.
    fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut answer = [0u8; 64];
                if stream.write_all(b"PING\r\n").is_ok()
                    && let Ok(n) = stream.read(&mut answer)
                {
                    let answer = String::from_utf8_lossy(&answer[..n]);
                    if answer.starts_with("+PONG") || answer.contains("NOAUTH") {
                        return;
                    }
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The URL blossom is given (with the password, if the server has one).
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// The answers the cache holds.
    pub fn answers(&self) -> u64 {
        let client = redis::Client::open(self.url()).unwrap();
        let mut connection = client.get_connection().unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{KEY_PREFIX}*"))
            .query(&mut connection)
            .unwrap();
        keys.len() as u64
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
