//! The Debian package as a party's volunteer installs it: built by `cargo deb` from the binary
//! the tests built, unpacked into a scratch root as `dpkg -i` lays it out, its unit checked by
//! `systemd-analyze verify`, and its binary started as the unit starts it (its user, its working
//! directory, its config, `migrate` before `serve`) until `/healthz` answers and a campaign
//! reaches an SMTP server.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::smtp::{SmtpSink, free_port};

/// Whether the packaging tools are here; under CI they must be (`.ci/run` installs them).
fn tools_present() -> bool {
    let present = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let missing: Vec<&str> = [
        ("cargo-deb", "--version"),
        ("dpkg-deb", "--version"),
        ("systemd-analyze", "--version"),
        ("readelf", "--version"),
    ]
    .into_iter()
    .filter(|(program, arg)| !present(program, arg))
    .map(|(program, _)| program)
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing:?} missing under CI: .ci/run installs them"
    );
    eprintln!(
        "SKIPPED: {missing:?} not installed (cargo install cargo-deb; apt-get install systemd)"
    );
    false
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("the program runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?}: {said}");
    said
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// The installed binary, run as the service's user would run it: `nobody` standing in for the
/// package's `canvass` user when the tests run as root (`setpriv` execs it, as systemd does,
/// so that a signal reaches the program itself).
fn as_service_user(binary: &Path, state: &Path, config: &Path) -> Command {
    let mut command = match is_root() {
        true => {
            let mut command = Command::new("setpriv");
            command
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
                .arg(binary);
            command
        }
        false => Command::new(binary),
    };
    for (key, _) in std::env::vars() {
        if key.starts_with("CANVASS_") {
            command.env_remove(key);
        }
    }
    command.current_dir(state).env("CANVASS_CONFIG", config);
    command
}

/// A unit's `Key=` values, in order.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_package_installs_and_runs_as_its_unit_says() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    if !tools_present() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let scratch = scratch.path();
    // The service's user must reach the binary and the config through these folders.
    std::fs::set_permissions(scratch, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    // Built from the binary these tests built (a release build is the same, optimised).
    run(Command::new("cargo")
        .args(["deb", "--profile", "dev", "--no-build", "--fast", "--quiet"])
        .arg("-o")
        .arg(scratch.join("deb"))
        .current_dir(env!("CARGO_MANIFEST_DIR")));
    let deb: PathBuf = std::fs::read_dir(scratch.join("deb"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");
    let root = scratch.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(scratch.join("control")));

    // What is where.
    let binary = root.join("usr/bin/canvass");
    let unit_file = root.join("usr/lib/systemd/system/canvass.service");
    let shipped_config = root.join("etc/canvass/canvass.toml");
    for path in [&binary, &unit_file, &shipped_config] {
        assert!(path.exists(), "{} is not in the package", path.display());
    }
    let conffiles = std::fs::read_to_string(scratch.join("control/conffiles")).unwrap();
    assert!(
        conffiles.contains("/etc/canvass/canvass.toml"),
        "{conffiles}"
    );
    let postinst = std::fs::read_to_string(scratch.join("control/postinst")).unwrap();
    assert!(postinst.contains("useradd --system"), "{postinst}");
    assert!(!postinst.contains("#DEBHELPER#"), "{postinst}");
    // The binary carries no debug information; its symbols are a file of their own.
    let sections = run(Command::new("readelf").args(["-S", "--wide"]).arg(&binary));
    assert!(!sections.contains(".debug_info"), "{sections}");
    let debug = run(Command::new("find")
        .arg(root.join("usr/lib/debug"))
        .args(["-name", "*.debug"]));
    assert!(debug.trim().ends_with(".debug"), "{debug}");

    // The unit: hardened, and clean to systemd, its programs pointed into the scratch root.
    let unit = std::fs::read_to_string(&unit_file).unwrap();
    for line in [
        "User=canvass",
        "StateDirectory=canvass",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
        "NoNewPrivileges=yes",
        "SystemCallFilter=@system-service",
        "Environment=CANVASS_CONFIG=/etc/canvass/canvass.toml",
        "ExecStartPre=/usr/bin/canvass migrate",
        "ExecStart=/usr/bin/canvass serve",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }
    let verified = scratch.join("canvass.service");
    std::fs::write(
        &verified,
        unit.replace("/usr/bin/canvass", &binary.display().to_string()),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&verified)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}");
    assert!(!said.contains("canvass.service"), "systemd-analyze: {said}");

    // The config as shipped is the one read, and names the state folder, where no command but
    // migrate makes a database.
    let refused = Command::new(&binary)
        .arg("--config")
        .arg(&shipped_config)
        .args(["topics", "list"])
        .env_remove("CANVASS_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("no database at /var/lib/canvass/canvass.db"),
        "{said}"
    );

    // The service as the unit starts it: its state folder (StateDirectory, 0700, the user's),
    // its config (the shipped one, pointed at that folder and at the relay, as an admin would
    // edit it), migrate, then serve.
    let state = scratch.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    if is_root() {
        run(Command::new("chown").arg("nobody").arg(&state));
    }
    let port = free_port();
    let config = scratch.join("canvass.toml");
    let edited = std::fs::read_to_string(&shipped_config)
        .unwrap()
        .replace("/var/lib/canvass", &state.display().to_string())
        .replace(&format!("file://{}/outbox", state.display()), &sink.url())
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    assert!(edited.contains(&sink.url()), "{edited}");
    std::fs::write(&config, edited).unwrap();
    let [working] = unit_values(&unit, "WorkingDirectory")[..] else {
        panic!("one WorkingDirectory: {unit}")
    };
    assert_eq!(working, "/var/lib/canvass");
    for pre in unit_values(&unit, "ExecStartPre") {
        let args: Vec<&str> = pre.split_whitespace().skip(1).collect();
        let said = run(as_service_user(&binary, &state, &config).args(&args));
        assert!(said.contains("created the schema"), "{said}");
    }
    let [start] = unit_values(&unit, "ExecStart")[..] else {
        panic!("one ExecStart: {unit}")
    };
    let args: Vec<&str> = start.split_whitespace().skip(1).collect();
    let mut service = as_service_user(&binary, &state, &config)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let health = || -> Option<String> {
        let mut connection = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        write!(
            connection,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut answer = String::new();
        connection.read_to_string(&mut answer).ok()?;
        Some(answer)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !health().is_some_and(|answer| answer.starts_with("HTTP/1.1 200")) {
        assert!(service.try_wait().unwrap().is_none(), "serve exited");
        assert!(Instant::now() < deadline, "/healthz never answered");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Staff run commands as the service's user; the service sends.
    std::fs::write(
        state.join("people.csv"),
        "email,name,topics\r\nann@example.org,Ann,news\r\nbo@example.org,Bo,news\r\n",
    )
    .unwrap();
    std::fs::write(state.join("news.html"), "<p>Hello {{contact.name}}</p>").unwrap();
    if is_root() {
        run(Command::new("chown")
            .arg("nobody")
            .arg(state.join("people.csv"))
            .arg(state.join("news.html")));
    }
    run(as_service_user(&binary, &state, &config).args(["contacts", "import", "people.csv"]));
    let id = run(as_service_user(&binary, &state, &config).args([
        "campaign",
        "create",
        "--name",
        "News",
        "--topic",
        "news",
        "--subject",
        "News",
        "--html",
        "news.html",
    ]));
    run(as_service_user(&binary, &state, &config).args(["campaign", "queue", id.trim()]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.received_by_recipient().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the campaign never reached the relay"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .unwrap();
    let output = service.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        sink.received_by_recipient().into_keys().collect::<Vec<_>>(),
        ["ann@example.org", "bo@example.org"]
    );
    // Everything the service wrote is in its state folder: the database and the journal.
    for file in ["canvass.db", "canvass.journal"] {
        assert!(state.join(file).exists(), "{file}");
    }
}
