//! A scriptable SMTP server for the tests: `smtpd.py` beside this file, built on aiosmtpd
//! (Debian's python3-aiosmtpd, which `.ci/run` installs). Where smtp-sink speaks plain SMTP,
//! this one also speaks STARTTLS and implicit TLS with certificates from a private CA
//! ([`Certs`]), AUTH PLAIN and LOGIN, answers with refusals scripted per command and recipient,
//! answers slowly, and misbehaves on request (an endless or silent greeting, a QUIT never
//! answered, a connection dropped after the final dot). The JSON configuration is described at
//! the top of `smtpd.py`. The server logs every event as a JSON line and keeps every message it
//! accepts. Killed when dropped.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Debian's Python, which has Debian's aiosmtpd (a `python3` on PATH may not).
const PYTHON: &str = "/usr/bin/python3";

/// A private CA, a server certificate it signed for `localhost` and `127.0.0.1`, and an
/// unrelated CA that did not sign it. Removed when dropped.
pub struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    /// Makes the certificates with openssl; `None` (saying so) when aiosmtpd or openssl is not
    /// installed, which under CI is a failure instead.
    pub fn make() -> Option<Self> {
        if !available(true) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let made = Command::new(PYTHON)
            .arg(script())
            .arg("--make-certs")
            .arg(dir.path())
            .output()
            .expect("python3 runs");
        assert!(
            made.status.success(),
            "smtpd.py --make-certs failed: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        Some(Self { dir })
    }

    /// The CA that signed the server's certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA that signed nothing the server shows (PEM).
    pub fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// The server's certificate (PEM), for `localhost` and `127.0.0.1`.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server's private key (PEM).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

/// A running `smtpd.py` on `127.0.0.1:port`, with its configuration, log and messages in a
/// folder of its own.
pub struct Smtpd {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Smtpd {
    /// Starts a server configured by `config`, a JSON object (see `smtpd.py`); `host`, `log`
    /// and `messages` are filled in, and `port` too unless given (0: the server picks a free
    /// port and says which). `None` (saying so) when aiosmtpd is not installed, which under CI
    /// is a failure instead.
    ///
    /// ```ignore
    /// let server = Smtpd::start(json!({
    ///     "tls": "starttls", "cert": certs.cert(), "key": certs.key(),
    ///     "auth": {"user": "news", "password": "secret"},
    ///     "replies": [{"command": "RCPT", "match": "bad@", "reply": "550 5.1.1 no such user"}],
    /// }))?;
    /// ```
    pub fn start(mut config: serde_json::Value) -> Option<Self> {
        if !available(false) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let fields = config
            .as_object_mut()
            .expect("the configuration is a JSON object");
        fields.insert("host".into(), "127.0.0.1".into());
        fields.entry("port").or_insert(0_u16.into());
        fields.insert("log".into(), path_value(&dir.path().join("events.jsonl")));
        fields.insert("messages".into(), path_value(&dir.path().join("messages")));
        let file = dir.path().join("config.json");
        std::fs::write(&file, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
        // Its standard input stays open as long as `child` lives: if this process dies without
        // dropping it, the server sees the end of its input and stops.
        let mut child = Command::new(PYTHON)
            .arg(script())
            .arg("--config")
            .arg(&file)
            .arg("--stop-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("python3 starts");
        // Read the READY line on a thread of its own, so that the wait for it has a limit.
        let stdout = child.stdout.take().unwrap();
        let (ready, said) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = ready.send(line);
        });
        let port = said
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .and_then(|line| line.trim().strip_prefix("READY ")?.parse::<u16>().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "smtpd.py did not start: {}",
                std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
            );
        };
        Some(Self { child, port, dir })
    }

    /// Stops the server at once, as a relay that dies does; what it logged stays readable.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every event logged so far, in order (lines still being written are left out).
    pub fn events(&self) -> Vec<serde_json::Value> {
        let log = std::fs::read_to_string(self.dir.path().join("events.jsonl")).unwrap_or_default();
        log.split_inclusive('\n')
            .filter(|line| line.ends_with('\n'))
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("event {line:?}: {e}"))
            })
            .collect()
    }

    /// The messages accepted so far: `from`, `to`, `data_len`, `auth_user`, `tls`, `file`.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.events()
            .into_iter()
            .filter(|event| event["event"] == "accepted")
            .collect()
    }

    /// How many accepted messages each envelope recipient received.
    pub fn accepted_by_recipient(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for message in self.accepted() {
            for to in message["to"].as_array().expect("a list of recipients") {
                let to = to.as_str().expect("an address").to_owned();
                *counts.entry(to).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Every accepted message whole, as received, in the order accepted.
    pub fn message_files(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("messages")) else {
            return Vec::new();
        };
        let mut numbered: Vec<(u64, PathBuf)> = entries
            .map(|entry| entry.unwrap().path())
            .filter_map(|path| {
                let number = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".eml")?
                    .parse::<u64>()
                    .ok()?;
                Some((number, path))
            })
            .collect();
        numbered.sort();
        numbered
            .into_iter()
            .map(|(_, path)| String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned())
            .collect()
    }

    /// The server's URL for canvass, e.g. `smtps://user:pass@localhost:PORT`: `scheme` is
    /// `smtp`, `smtp+starttls` or `smtps`, `host` `localhost` or `127.0.0.1` (both are in the
    /// certificate). The user and password are percent-encoded.
    pub fn url(&self, scheme: &str, credentials: Option<(&str, &str)>, host: &str) -> String {
        let user = credentials
            .map(|(user, password)| {
                format!("{}:{}@", percent_encode(user), percent_encode(password))
            })
            .unwrap_or_default();
        format!("{scheme}://{user}{host}:{}", self.port)
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the server can run here; if not, says so, and under CI fails.
fn available(with_openssl: bool) -> bool {
    static AIOSMTPD: OnceLock<bool> = OnceLock::new();
    static OPENSSL: OnceLock<bool> = OnceLock::new();
    let missing = if !*AIOSMTPD.get_or_init(|| succeeds(PYTHON, &["-c", "import aiosmtpd"])) {
        "/usr/bin/python3 cannot import aiosmtpd (apt-get install python3-aiosmtpd)"
    } else if with_openssl && !*OPENSSL.get_or_init(|| succeeds("openssl", &["version"])) {
        "openssl is not installed (apt-get install openssl)"
    } else {
        return true;
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing} under CI: .ci/run installs it so that the SMTP tests run"
    );
    eprintln!("SKIPPED: {missing}");
    false
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtpd.py")
}

fn path_value(path: &Path) -> serde_json::Value {
    path.to_str().expect("a UTF-8 temporary path").into()
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as canvass decodes it
/// (not form encoding: canvass reads `+` as a plus, not a space).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
