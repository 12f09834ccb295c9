//! A real SMTP server for the tests: Postfix's `smtp-sink`, which `.ci/run` installs. Started on
//! a free loopback port with the fault options a test asks for (`-r`/`-f` refuse a command
//! with 4xx/5xx, `-q` drops the connection, `-b`/`-B` set the refusal's words); every message it
//! accepts whole is appended to one dump file. Killed when dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    program: &'static str,
    options: Vec<String>,
}

/// Separates the messages in the dump.
const SEPARATOR: &str = "=====canvass-test-dump=====";

impl SmtpSink {
    /// Starts smtp-sink with `options`; `None` (saying so) when it is not installed, which
    /// under CI is a failure instead.
    pub fn start(options: &[&str]) -> Option<Self> {
        let program = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists());
        let Some(program) = program else {
            assert!(
                std::env::var_os("CI").is_none(),
                "no smtp-sink under CI: .ci/run installs postfix so that the SMTP tests run"
            );
            eprintln!("SKIPPED: smtp-sink is not installed (apt-get install postfix)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        // smtp-sink drops root for `nobody`, who must be able to write the dump.
        set_mode(dir.path(), 0o777);
        let port = free_port();
        let options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        let child = spawn(program, &options, &dir.path().join("dump"), port);
        let sink = Self {
            child,
            port,
            dir,
            program,
            options,
        };
        sink.wait_listening();
        Some(sink)
    }

    /// Stops the server, as a relay that goes down: connections are refused until
    /// [`SmtpSink::start_again`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port, adding to the same dump.
    pub fn start_again(&mut self) {
        self.child = spawn(self.program, &self.options, &self.dump_path(), self.port);
        self.wait_listening();
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "smtp-sink did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message accepted so far, whole, as received (smtp-sink's own headers first).
    pub fn messages(&self) -> Vec<String> {
        let dump = std::fs::read_to_string(self.dump_path()).unwrap_or_default();
        dump.split(SEPARATOR)
            .map(str::trim)
            .filter(|message| !message.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// How many whole messages each envelope recipient received.
    pub fn received_by_recipient(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for message in self.messages() {
            for line in message.lines() {
                if let Some(rcpt) = line.strip_prefix("X-Rcpt-Args: <") {
                    let address = rcpt.split('>').next().unwrap().to_owned();
                    *counts.entry(address).or_insert(0) += 1;
                }
            }
        }
        counts
    }

    fn dump_path(&self) -> PathBuf {
        self.dir.path().join("dump")
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(program: &str, options: &[String], dump: &std::path::Path, port: u16) -> Child {
    let mut command = Command::new(program);
    if is_root() {
        command.args(["-u", "nobody"]);
    }
    command
        .args(options)
        .args(["-S", &format!("\\n{SEPARATOR}\\n"), "-D"])
        .arg(dump)
        .arg(format!("127.0.0.1:{port}"))
        .arg("1024")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command.spawn().expect("smtp-sink starts")
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
