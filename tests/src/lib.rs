//! A harness that runs the real `floe` binary for tests and benchmarks.
//!
//! [`Floe::start`] launches `floe serve` on free ports (port 0) in a
//! temporary data directory, waits for its ready line, and reads back the
//! bound addresses. The process is killed when the value is dropped, so a
//! failing test never leaves a broker behind. The Python end-to-end suite in
//! `tests/e2e` has the same harness in `conftest.py`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running broker.
pub struct Floe {
    child: Option<Child>,
    data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    extra: Vec<String>,
    /// Kafka bootstrap address.
    pub bootstrap: String,
    /// HTTP address.
    pub http: String,
}

/// The floe binary: `$FLOE_BIN`, else `floe` next to the running executable's
/// target directory (`target/release/floe`).
pub fn floe_binary() -> PathBuf {
    if let Ok(p) = std::env::var("FLOE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current executable");
    let mut dir = exe.parent().expect("executable directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("floe")
}

impl Floe {
    /// Starts a broker in a fresh temporary directory.
    pub fn start(extra: &[&str]) -> std::io::Result<Floe> {
        let temp = tempfile::tempdir()?;
        let data_dir = temp.path().join("data");
        let mut f = Floe {
            child: None,
            data_dir,
            _temp: Some(temp),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            bootstrap: "127.0.0.1:0".into(),
            http: "127.0.0.1:0".into(),
        };
        f.launch()?;
        Ok(f)
    }

    /// Starts a broker over an existing data directory.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> std::io::Result<Floe> {
        let mut f = Floe {
            child: None,
            data_dir: data_dir.to_path_buf(),
            _temp: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            bootstrap: "127.0.0.1:0".into(),
            http: "127.0.0.1:0".into(),
        };
        f.launch()?;
        Ok(f)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn launch(&mut self) -> std::io::Result<()> {
        let mut child = Command::new(floe_binary())
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--kafka-listen")
            .arg(&self.bootstrap)
            .arg("--http-listen")
            .arg(&self.http)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && line.contains("floe is ready") {
                    let field = |name: &str| {
                        line.split_whitespace()
                            .find_map(|w| w.strip_prefix(name))
                            .map(str::to_string)
                            .unwrap_or_default()
                    };
                    let _ = tx.send((field("kafka="), field("http=")));
                    sent = true;
                }
                if std::env::var_os("FLOE_TEST_LOG").is_some() {
                    eprintln!("floe: {line}");
                }
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok((kafka, http)) => {
                    self.bootstrap = kafka;
                    self.http = http;
                    return Ok(());
                }
                Err(_) if Instant::now() > deadline => {
                    self.kill();
                    return Err(std::io::Error::other("floe did not become ready in 30 s"));
                }
                Err(_) => {
                    if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                        return Err(std::io::Error::other(format!(
                            "floe exited early: {status}"
                        )));
                    }
                }
            }
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops (SIGTERM, then SIGKILL) and starts again on the same ports.
    pub fn restart(&mut self, crash: bool) -> std::io::Result<()> {
        if crash {
            self.kill();
        } else if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let mut last = Ok(());
        for _ in 0..50 {
            last = self.launch();
            if last.is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        last
    }
}

impl Drop for Floe {
    fn drop(&mut self) {
        self.kill();
    }
}
