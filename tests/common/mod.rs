//! Test support: the real `usher` binary on free loopback ports, real upstream servers, and
//! a plain HTTP/1.1 client that sends paths exactly as written.
#![allow(dead_code, unused_imports)] // each test binary uses a different part of this module

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use usher::echo::EchoServer;

/// A running `usher run` process. Killed when dropped.
pub struct Gateway {
    child: Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub config_path: PathBuf,
    pub dir: tempfile::TempDir,
}

/// A port nothing listens on right now (bound, read, released), and not handed out before
/// by this test process: the kernel may give a just-released port again, and a gateway
/// whose two listeners got the same one refuses to start.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("binding an ephemeral port")
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl Gateway {
    /// Starts Usher with `body` (upstreams, routes, defaults) under generated listeners.
    pub async fn start(body: &str) -> Gateway {
        Self::start_with_server(body, "threads: 2\n  grace_period: 5s").await
    }

    /// Like [`Gateway::start`], with a public listener that accepts HTTP/2 over cleartext.
    pub async fn start_h2c(body: &str) -> Gateway {
        Self::launch(|public, admin| {
            format!(
                "server:\n  threads: 2\n  grace_period: 5s\nlisteners:\n  public: {{ address: \"{public}\", h2c: true }}\n  admin: {{ address: \"{admin}\" }}\n{body}"
            )
        })
        .await
    }

    /// Like [`Gateway::start`], with the `server:` section's contents given.
    pub async fn start_with_server(body: &str, server: &str) -> Gateway {
        Self::launch(|public, admin| Self::document(public, admin, server, body)).await
    }

    /// Starts Usher with the document `text(public, admin)` builds for two free ports.
    pub async fn launch(text: impl Fn(SocketAddr, SocketAddr) -> String) -> Gateway {
        Self::launch_with_log(text, "info").await
    }

    /// Like [`Gateway::start`], with environment variables set for the process.
    pub async fn start_with_env(body: &str, env: &[(&str, &str)]) -> Gateway {
        let server = "threads: 2\n  grace_period: 5s";
        Self::spawn(
            |public, admin| Self::document(public, admin, server, body),
            "info",
            env,
        )
        .await
    }

    /// Like [`Gateway::launch`], with a `USHER_LOG` filter.
    pub async fn launch_with_log(
        text: impl Fn(SocketAddr, SocketAddr) -> String,
        log_filter: &str,
    ) -> Gateway {
        Self::spawn(text, log_filter, &[]).await
    }

    async fn spawn(
        text: impl Fn(SocketAddr, SocketAddr) -> String,
        log_filter: &str,
        env: &[(&str, &str)],
    ) -> Gateway {
        // free_port avoids reuse within this process only; nextest runs tests in processes
        // of their own, so another one may bind the same port first: then start again.
        for attempt in 1..=3 {
            match Self::spawn_once(&text, log_filter, env).await {
                Ok(gateway) => return gateway,
                Err(stderr) if attempt < 3 && stderr.contains(" is in use") => continue,
                Err(stderr) => panic!("usher did not start:\n{stderr}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    async fn spawn_once(
        text: &impl Fn(SocketAddr, SocketAddr) -> String,
        log_filter: &str,
        env: &[(&str, &str)],
    ) -> Result<Gateway, String> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let public: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config_path = dir.path().join("routes.yaml");
        std::fs::write(&config_path, text(public, admin)).expect("writing the config");
        let stdout = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_usher"));
        // The OpenTelemetry settings of whoever runs the tests are not the test's.
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("OTEL_")) {
            command.env_remove(name);
        }
        let child = command
            .args(["run", "--config"])
            .arg(&config_path)
            .env("USHER_LOG", log_filter)
            .envs(env.iter().copied())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("starting usher");
        let mut gateway = Gateway {
            child,
            public,
            admin,
            config_path,
            dir,
        };
        gateway.wait_started().await?;
        Ok(gateway)
    }

    pub fn document(public: SocketAddr, admin: SocketAddr, server: &str, body: &str) -> String {
        format!(
            "server:\n  {server}\nlisteners:\n  public: {{ address: \"{public}\" }}\n  admin: {{ address: \"{admin}\" }}\n{body}"
        )
    }

    /// Waits for the gateway to serve; `Err` holds its stderr when it exited first.
    async fn wait_started(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("exited early ({status}):\n{}", self.stderr()));
            }
            // Pingora keeps retrying a port another process holds ("... is in use, will try
            // again"): give up on these ports at once.
            let stderr = self.stderr();
            if stderr.contains(" is in use") {
                return Err(stderr);
            }
            // Started means the first configuration is live and the public listener accepts
            // connections (Pingora starts the proxy service after the admin one).
            if let Ok(response) = get(self.admin, "/health/startup").await {
                if response.status == 200 && TcpStream::connect(self.public).await.is_ok() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("not started in time:\n{}", self.stderr()))
    }

    /// Replaces the config file's routes and upstreams, keeping the listeners, the way an
    /// editor or ConfigMap update would: write aside, then rename over.
    pub fn rewrite_config(&self, body: &str) {
        let text = Self::document(
            self.public,
            self.admin,
            "threads: 2\n  grace_period: 5s",
            body,
        );
        self.write_raw_config(&text);
    }

    pub fn write_raw_config(&self, text: &str) {
        let aside = self.dir.path().join(".routes.yaml.tmp");
        std::fs::write(&aside, text).unwrap();
        std::fs::rename(&aside, &self.config_path).unwrap();
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit; `None` when it is still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> Response {
        get(self.public, path)
            .await
            .expect("request to the gateway")
    }

    pub async fn metrics(&self) -> String {
        let response = get(self.admin, "/metrics").await.expect("metrics");
        String::from_utf8(response.body).unwrap()
    }

    pub fn path(&self) -> &Path {
        &self.config_path
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error.code` of a gateway-made response.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    request(addr, "GET", path, &[], None).await
}

/// A GET on a fresh connection with `token` as its bearer credential.
pub async fn bearer_get(gateway: &Gateway, path: &str, token: &str) -> Response {
    request(
        gateway.public,
        "GET",
        path,
        &[("authorization", &format!("Bearer {token}"))],
        None,
    )
    .await
    .unwrap()
}

/// One request on a fresh connection. `path` is sent exactly as given.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    let mut builder = http::Request::builder().method(method).uri(path);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        builder = builder.header("host", addr.to_string());
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
        .map_err(std::io::Error::other)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(std::io::Error::other)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes()
        .to_vec();
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Writes `raw` bytes on a fresh connection and returns the response: read until a
/// complete response (head and `Content-Length` body) is in, the server closes, or two
/// seconds pass.
pub async fn raw_request(addr: SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connecting");
    stream.write_all(raw).await.expect("writing");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut buffer = [0u8; 8192];
        while !response_complete(&out) {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

fn response_complete(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .is_some_and(|length| body.len() >= length)
}

/// The status code of a raw HTTP/1.1 response.
pub fn raw_status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Polls `check` until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The value of a metric line (name with labels exactly as exported), if present.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The metric families docs/metrics.md documents (`usher_*` names in backquotes).
pub fn documented_metric_families() -> Vec<String> {
    let documented =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let mut names: Vec<String> = documented
        .split('`')
        .filter(|word| {
            word.len() > "usher_".len()
                && word.starts_with("usher_")
                && word.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 12, "{names:?}");
    names
}

/// A stand-in service: answers each request with whatever `answer(path)` returns
/// (status, body), and records the paths it was asked for.
pub struct StubServer {
    pub addr: SocketAddr,
    asked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StubServer {
    pub async fn start<F>(answer: F) -> StubServer
    where
        F: Fn(&str) -> (u16, String) + Send + Sync + 'static,
    {
        Self::serve(answer, None).await
    }

    /// Like [`StubServer::start`], over TLS with `identity`'s certificate.
    pub async fn start_tls<F>(answer: F, identity: native_tls::Identity) -> StubServer
    where
        F: Fn(&str) -> (u16, String) + Send + Sync + 'static,
    {
        let acceptor = native_tls::TlsAcceptor::new(identity).unwrap();
        Self::serve(answer, Some(tokio_native_tls::TlsAcceptor::from(acceptor))).await
    }

    async fn serve<F>(answer: F, tls: Option<tokio_native_tls::TlsAcceptor>) -> StubServer
    where
        F: Fn(&str) -> (u16, String) + Send + Sync + 'static,
    {
        use hyper::service::service_fn;
        use std::sync::{Arc, Mutex};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let log = Arc::clone(&asked);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (log, answer, tls) = (Arc::clone(&log), Arc::clone(&answer), tls.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let path = request.uri().path().to_string();
                            log.lock().unwrap().push(path.clone());
                            let (status, body) = answer(&path);
                            async move {
                                Ok::<_, std::convert::Infallible>(
                                    http::Response::builder()
                                        .status(status)
                                        .body(Full::new(Bytes::from(body)))
                                        .unwrap(),
                                )
                            }
                        });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        StubServer { addr, asked, task }
    }

    /// The paths asked for so far, in order.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A real `redis-server` on a free loopback port, with a password and no persistence.
/// Killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

pub const REDIS_PASSWORD: &str = "test-redis-password-0123456789";

impl RedisServer {
    pub async fn start() -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        std::fs::write(server.password_file(), format!("{REDIS_PASSWORD}\n")).unwrap();
        server.restart().await;
        server
    }

    /// The file holding the password, for `password_file`.
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("redis-password")
    }

    /// The `rate_limiting.redis` settings that reach this server, as a YAML flow mapping.
    pub fn settings(&self, extra: &str) -> String {
        format!(
            "{{ url: \"redis://127.0.0.1:{}\", password_file: \"{}\"{extra} }}",
            self.port,
            self.password_file().display()
        )
    }

    /// A `rate_limiting` section whose store is this server, `extra` added to its settings.
    pub fn section(&self, extra: &str) -> String {
        format!("rate_limiting:\n  redis: {}", self.settings(extra))
    }

    /// (Re)starts the server on its port and waits until it answers.
    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--requirepass", REDIS_PASSWORD])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server (install it: apt-get install redis-server)");
        self.child = Some(child);
        let up = eventually(Duration::from_secs(10), || async {
            self.cli(&["PING"]).trim() == "PONG"
        })
        .await;
        assert!(up, "redis-server did not start on port {}", self.port);
    }

    /// Runs `redis-cli` against the server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-a", REDIS_PASSWORD, "--no-auth-warning"])
            .args(args)
            .output()
            .expect("running redis-cli");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Calls of `command` (lower-case, e.g. `evalsha`) since start or the last CONFIG
    /// RESETSTAT.
    pub fn command_calls(&self, command: &str) -> u64 {
        let stats = self.cli(&["INFO", "commandstats"]);
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    pub fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status();
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A frozen server must be thawed to die cleanly.
        self.signal("CONT");
        self.kill();
    }
}

/// The Python interpreter of the tests' virtualenv (werkzeug, h2), which `.ci/setup` makes:
/// `$USHER_TEST_PYTHON`, or `/var/tmp/usher-test-venv/bin/python`.
pub fn test_python() -> PathBuf {
    let python = std::env::var_os("USHER_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/usher-test-venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run .ci/setup, which makes the tests' virtualenv",
        python.display()
    );
    python
}

/// Runs the Python script `name` of `tests/support/` with `args`, `input` on its stdin;
/// what it printed, as JSON. Panics when it fails.
pub fn python_json(name: &str, args: &[&str], input: &[u8]) -> serde_json::Value {
    use std::io::Write;
    let mut child = Command::new(test_python())
        .arg(support_script(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting a Python support script");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{name} failed");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("{name} printed {}", String::from_utf8_lossy(&output.stdout)))
}

/// The path of a script in `tests/support/`.
pub fn support_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

/// A Python server from `tests/support/` that prints its port on its first line of output.
/// Killed when dropped.
pub struct PythonServer {
    child: Child,
    pub addr: SocketAddr,
}

impl PythonServer {
    pub fn start(script: &str) -> PythonServer {
        use std::io::BufRead;
        let mut child = Command::new(test_python())
            .arg(support_script(script))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting a Python test server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("reading the server's port");
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{script} printed {line:?}, not its port"));
        PythonServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tests/support/h2_client.py` against `port` with `args` (see its doc for the modes)
/// and returns what it printed: `{"statuses": [...], "closed": bool}`.
pub async fn h2_client(port: u16, args: &[&str]) -> serde_json::Value {
    let mut command = Command::new(test_python());
    command
        .arg(support_script("h2_client.py"))
        .arg(port.to_string())
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("running the HTTP/2 client");
    assert!(
        output.status.success(),
        "h2_client.py {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the HTTP/2 client's JSON")
}

/// An `authentication:` section with one HS256 key that no test token is signed with, for
/// configurations whose authenticated routes only need to refuse (a route nothing could
/// authenticate to is a configuration error).
pub fn unused_jwt_section() -> String {
    format!(
        "authentication:\n  jwt: {{ issuer: unused, audiences: [unused], keys: [{{ kid: unused, algorithm: HS256, secret_file: \"{}\" }}] }}\n",
        support_script("jwt-secret").display()
    )
}

/// Seconds since the Unix epoch, for token claims.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The one way tests mint JWTs: `claims` under `header`, signed with `key`.
pub fn sign_jwt(
    header: jsonwebtoken::Header,
    key: &jsonwebtoken::EncodingKey,
    claims: &serde_json::Value,
) -> String {
    jsonwebtoken::encode(&header, claims, key).expect("signing a test token")
}

/// `claims` signed with HS256 under `secret`, without a `kid`.
pub fn hs256_jwt(secret: &str, claims: &serde_json::Value) -> String {
    sign_jwt(
        jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        claims,
    )
}

/// An Ed25519 key pair made by openssl in `dir`: the PKCS#8 private key `<name>.pem` and its
/// public key `<name>.pub`.
pub fn ed25519_keys(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&private)
        .status()
        .expect("running openssl");
    assert!(made.success(), "openssl genpkey");
    let made = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .expect("running openssl");
    assert!(made.success(), "openssl pkey -pubout");
    (private, public)
}
