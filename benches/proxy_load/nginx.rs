//! The comparison users would deploy instead of `ProxyCall`: nginx as a reverse proxy that
//! injects the `Authorization` header, in front of an nginx answering a fixed JSON body (the
//! upstream never waits, so both proxies are measured, not the upstream). Debian's nginx,
//! started here on loopback with a generated configuration in a temporary directory, stopped
//! (SIGTERM, then SIGKILL after a bound) when dropped. Throughput is measured with h2load
//! (Debian's nghttp2-client) for every path, so one client drives all of them.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The fixed body the upstream answers (about the size of a small API reply).
pub const BODY: &str = r#"{"status":"ok","data":{"id":"0dce6fc98256","items":[1,2,3],"next":null}}"#;

/// One nginx master process with its own prefix directory.
pub struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

/// A free loopback port (released before nginx binds it; fine on a bench machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Nginx {
    /// Starts nginx with `servers` (server blocks) inside a bounded `http` block, and waits
    /// until every port in `ports` accepts connections.
    pub fn start(servers: &str, ports: &[u16]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        // Two workers: the same cores credbroker's two runtime workers get. Access logs off
        // and bodies kept in memory (64 KiB would otherwise go to a temp file): the
        // configuration a performance-minded deployment would use.
        let config = format!(
            "daemon off;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             client_body_buffer_size 1m;\n  client_max_body_size 4m;\n  keepalive_requests 1000000;\n{servers}\n}}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(nginx_binary())
            .args(["-e", &format!("{d}/startup.log"), "-p", &d.to_string(), "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx (Debian package `nginx`) must be installed");
        let nginx = Self { child, _dir: dir };
        for port in ports {
            wait_listening(SocketAddr::from(([127, 0, 0, 1], *port)), &nginx.log());
        }
        nginx
    }

    /// The master's and its workers' process ids.
    pub fn pids(&self) -> Vec<u32> {
        let master = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children")).unwrap_or_default();
        std::iter::once(master).chain(children.split_whitespace().filter_map(|pid| pid.parse().ok())).collect()
    }

    fn log(&self) -> PathBuf {
        self._dir.path().join("error.log")
    }

    /// The upstream: a fixed JSON body on `http1` (what both proxies call) and the same on
    /// `direct` over cleartext HTTP/2 (what h2load calls for the direct figure).
    pub fn upstream(http1: u16, direct: u16) -> Self {
        let location = format!("location / {{ default_type application/json; return 200 '{BODY}'; }}");
        let servers = format!(
            "  server {{ listen 127.0.0.1:{http1}; {location} }}\n  \
             server {{ listen 127.0.0.1:{direct} http2; {location} }}"
        );
        Self::start(&servers, &[http1, direct])
    }

    /// The header-injecting reverse proxy on `listen` (cleartext HTTP/2, like ProxyCall's
    /// gRPC), HTTP/1.1 keep-alive to the upstream on `upstream`.
    pub fn proxy(listen: u16, upstream: u16, authorization: &str) -> Self {
        Self::proxy_with(listen, upstream, authorization, "")
    }

    /// `proxy` with more directives in its location (the streamed transfers turn buffering off).
    pub fn proxy_with(listen: u16, upstream: u16, authorization: &str, directives: &str) -> Self {
        let servers = format!(
            "  upstream api {{ server 127.0.0.1:{upstream}; keepalive 64; keepalive_requests 1000000; }}\n  \
             server {{ listen 127.0.0.1:{listen} http2;\n    location / {{\n      proxy_pass http://api;\n      \
             proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      \
             proxy_set_header Authorization \"{authorization}\";\n      {directives}\n    }}\n  }}"
        );
        Self::start(&servers, &[listen])
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: nginx's fast shutdown (SIGQUIT would wait for the bench's idle keep-alive
        // connections); SIGKILL if the master does not exit in time.
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> PathBuf {
    std::env::var_os("NGINX").map_or_else(|| PathBuf::from("/usr/sbin/nginx"), PathBuf::from)
}

/// Polls until `addr` accepts a connection, for at most 10 s.
pub fn wait_listening(addr: SocketAddr, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} not listening; log: {:?}", std::fs::read_to_string(log));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What h2load sends: the URL, and for a POST the body file and its content type.
pub struct H2load<'a> {
    pub url: String,
    /// HTTP/1.1 instead of cleartext HTTP/2.
    pub h1: bool,
    pub body: Option<&'a Path>,
    pub headers: &'a [&'a str],
}

/// Requests per second h2load reaches against `target` for `seconds` (after one second of
/// warm-up) with `connections` × `streams` requests in flight. `None` (h2load's output on
/// stderr) if any request failed or none completed: such a figure is not reported.
pub fn h2load(target: &H2load, seconds: u64, connections: usize, streams: usize) -> Option<f64> {
    let mut command = Command::new("h2load");
    command.args(["-D", &seconds.to_string(), "--warm-up-time", "1"]);
    command.args(["-c", &connections.to_string(), "-m", &streams.to_string(), "-t", "1"]);
    if target.h1 {
        command.arg("--h1");
    }
    for header in target.headers {
        command.args(["-H", header]);
    }
    if let Some(body) = target.body {
        command.arg("-d").arg(body);
    }
    let output = command.arg(&target.url).output().expect("h2load (Debian package `nghttp2-client`) must be installed");
    let text = String::from_utf8_lossy(&output.stdout);
    let requests = text.lines().find(|l| l.starts_with("requests:")).unwrap_or_default();
    let count = |what: &str| -> u64 {
        let field = requests.split(',').find(|f| f.trim().ends_with(what)).unwrap_or_default();
        field.split_whitespace().find_map(|w| w.parse().ok()).unwrap_or(u64::MAX)
    };
    let (failed, errored, succeeded) = (count("failed"), count("errored"), count("succeeded"));
    let statuses = text.lines().find(|l| l.starts_with("status codes:")).unwrap_or_default();
    // Counted apart from `succeeded` (a response across the end of warm-up can differ by one).
    let ok = failed == 0 && errored == 0 && succeeded > 0 && succeeded != u64::MAX;
    if !ok || !statuses.ends_with(" 2xx, 0 3xx, 0 4xx, 0 5xx") {
        eprintln!("h2load {} failed:\n{text}", target.url);
        return None;
    }
    let finished = text.lines().find(|l| l.starts_with("finished in")).unwrap_or_default();
    finished.split(',').nth(1).and_then(|f| f.split_whitespace().next()).and_then(|v| v.parse().ok())
}
