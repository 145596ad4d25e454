//! The real binary, run as an operator runs it: `keys generate`, a configuration file, and
//! `serve` as a child process whose logs the test reads.

use super::ISSUER_ID;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The `issuer-gateway` binary Cargo built for these tests, ready for its arguments.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_issuer-gateway"))
}

/// Writes `issuer-gateway.toml` in `dir` for a gateway on loopback (port 0) on the database
/// `db_url`, with the keys of `dir/keys` and the outbox `dir/outbox`. Returns its path.
pub fn write_config(dir: &Path, db_url: &str) -> std::path::PathBuf {
    let keys = dir.join("keys");
    let config = format!(
        "[issuer]\nid = \"{ISSUER_ID}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [database]\nurl = \"{db_url}\"\n\n[keys]\npkcs7_private_keys = [\"{}\"]\npan_index_key_file = \"{}\"\n\n\
         [outbox]\ndir = \"{}\"\n",
        keys.join("issuer-pkcs7-key.pem").display(),
        keys.join("pan-index.key").display(),
        dir.join("outbox").display()
    );
    let path = dir.join("issuer-gateway.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// A folder ready for `serve`: keys made by `keys generate` (the real binary) and a
/// configuration on a SQLite database `gw.db` in it. Returns the configuration file.
pub fn keyed_config(dir: &Path) -> std::path::PathBuf {
    let out = bin()
        .args(["keys", "generate", "--out"])
        .arg(dir.join("keys"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    write_config(dir, &format!("sqlite://{}", dir.join("gw.db").display()))
}

/// A `serve` process whose standard error is collected line by line. Dropped without `stop` or
/// `kill` (a failing test), the process is killed, so no test leaves a server running.
pub struct Served {
    child: std::process::Child,
    done: bool,
    pub lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    pub api: String,
    pub admin: String,
}

impl Served {
    /// Runs `serve --config config` with JSON logs and waits (60 s at most) for its listening
    /// line, which gives the API and admin addresses.
    pub fn start(config: &Path) -> Served {
        issuer_gateway::install_crypto_provider();
        let mut child = bin()
            .args(["serve", "--config"])
            .arg(config)
            .env("ISSUER_GATEWAY__LOG__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let (api, admin) = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("serve prints its listening line");
            let parsed: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            seen.push(line);
            if parsed["message"] == "issuer-gateway listening" {
                break (
                    parsed["api"].as_str().unwrap().to_owned(),
                    parsed["admin"].as_str().unwrap().to_owned(),
                );
            }
        };
        Served {
            child,
            done: false,
            lines: rx,
            seen,
            api,
            admin,
        }
    }

    /// SIGTERM, then wait for a clean exit; returns every log line.
    pub fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        self.done = true;
        assert!(exit.success(), "serve exits 0 after SIGTERM: {exit:?}");
        let mut seen = std::mem::take(&mut self.seen);
        seen.extend(self.lines.iter());
        seen
    }

    /// SIGKILL, as a crash would, and wait for the process to be gone.
    pub fn kill(mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
        self.done = true;
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
