//! A real IMAP server for the bounce-mailbox tests: Debian's Dovecot (`dovecot-imapd`, which
//! `.ci/run` installs), run from a configuration of its own in a temporary folder, with TLS
//! from the tests' private CA ([`super::smtpd::Certs`]), one user, and a Maildir the test fills.
//! Stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::smtpd::Certs;

pub const USER: &str = "bounces";
pub const PASSWORD: &str = "horse battery staple";

/// The uid and gid the mail is kept as: Dovecot runs mail processes as no one's root.
const MAIL_ID: u32 = 65534;

pub struct Dovecot {
    dir: tempfile::TempDir,
    pub imaps_port: u16,
    pub imap_port: u16,
    pub certs: Certs,
}

impl Dovecot {
    /// Starts Dovecot; `None` (saying so) when it is not installed or this is not root, which
    /// under CI is a failure instead.
    pub fn start() -> Option<Self> {
        let missing = if !Path::new("/usr/sbin/dovecot").exists() {
            "dovecot is not installed (apt-get install dovecot-imapd)"
        } else if !super::smtp::is_root() {
            "the IMAP test runs Dovecot, which needs root"
        } else {
            ""
        };
        if !missing.is_empty() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{missing} under CI: .ci/run installs it"
            );
            eprintln!("SKIPPED: {missing}");
            return None;
        }
        let certs = Certs::make()?;
        let dir = tempfile::Builder::new()
            .prefix("dovecot")
            .tempdir()
            .unwrap();
        let root = dir.path();
        for folder in [
            "run",
            "state",
            "home/Maildir/new",
            "home/Maildir/cur",
            "home/Maildir/tmp",
        ] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
        }
        chown_all(&root.join("home"));
        // Dovecot's own processes must reach the configuration and the socket folder.
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::write(
            root.join("passwd"),
            format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"),
        )
        .unwrap();
        let (imaps_port, imap_port) = (super::smtp::free_port(), super::smtp::free_port());
        let config = format!(
            "base_dir = {root}/run\n\
             state_dir = {root}/state\n\
             log_path = {root}/dovecot.log\n\
             protocols = imap\n\
             listen = 127.0.0.1\n\
             ssl = required\n\
             ssl_cert = <{cert}\n\
             ssl_key = <{key}\n\
             disable_plaintext_auth = yes\n\
             auth_mechanisms = plain login\n\
             first_valid_uid = 1\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {root}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid={MAIL_ID} gid={MAIL_ID} home={root}/home\n}}\n\
             mail_location = maildir:~/Maildir\n\
             namespace inbox {{\n  inbox = yes\n  separator = /\n}}\n\
             service imap-login {{\n  chroot =\n  \
               inet_listener imap {{\n    port = {imap_port}\n  }}\n  \
               inet_listener imaps {{\n    port = {imaps_port}\n    ssl = yes\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n",
            root = root.display(),
            cert = certs.cert().display(),
            key = certs.key().display(),
        );
        std::fs::write(root.join("dovecot.conf"), config).unwrap();
        // It daemonizes, its processes keeping what they inherit: no pipes to wait on.
        let errors = root.join("start.err");
        let started = Command::new("/usr/sbin/dovecot")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&errors).unwrap())
            .status()
            .unwrap();
        assert!(
            started.success(),
            "dovecot did not start: {}",
            std::fs::read_to_string(&errors).unwrap_or_default()
        );
        let server = Self {
            dir,
            imaps_port,
            imap_port,
            certs,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", imaps_port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("dovecot does not listen: {}", server.log());
    }

    /// Delivers a message into the inbox, as the MTA would.
    pub fn deliver(&self, name: &str, message: &[u8]) {
        let path = self.maildir().join("new").join(name);
        std::fs::write(&path, message).unwrap();
        chown_all(&path);
    }

    /// How many messages a folder (`INBOX`, `canvass/processed`...) holds, read from disk.
    pub fn count(&self, folder: &str) -> usize {
        let dir = match folder {
            "INBOX" => self.maildir(),
            other => self.maildir().join(format!(".{}", other.replace('/', "."))),
        };
        ["new", "cur"]
            .iter()
            .map(|sub| std::fs::read_dir(dir.join(sub)).map_or(0, |entries| entries.count()))
            .sum()
    }

    pub fn url(&self, scheme: &str, password: &str) -> String {
        let port = match scheme {
            "imaps" => self.imaps_port,
            _ => self.imap_port,
        };
        let password: String = url::form_urlencoded::byte_serialize(password.as_bytes()).collect();
        format!(
            "{scheme}://{USER}:{}@localhost:{port}/INBOX",
            password.replace('+', "%20")
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("home/Maildir")
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/dovecot")
            .arg("-c")
            .arg(self.dir.path().join("dovecot.conf"))
            .arg("stop")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn chown_all(path: &Path) {
    std::os::unix::fs::chown(path, Some(MAIL_ID), Some(MAIL_ID)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_all(&entry.unwrap().path());
        }
    }
}
