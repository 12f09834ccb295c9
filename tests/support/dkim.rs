//! A receiver's DKIM check: dkimpy (Debian's python3-dkim, which `.ci/run` installs), given
//! the published records instead of DNS.

use std::path::Path;

/// Whether dkimpy is here; outside CI a test without it skips, saying so.
pub fn verifier_installed() -> bool {
    if Path::new("/usr/lib/python3/dist-packages/dkim").exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "python3-dkim is missing under CI: .ci/run installs it"
    );
    eprintln!("SKIPPED: python3-dkim is not installed");
    false
}

/// Whether dkimpy verifies `message` (written to a file in `dir`) against the records of
/// selector `canvass` published for each `(domain, record)`.
pub fn verifies(dir: &Path, message: &str, records: &[(&str, &str)]) -> bool {
    let file = dir.join("message.eml");
    std::fs::write(&file, message).unwrap();
    let table: Vec<String> = records
        .iter()
        .map(|(domain, record)| format!("b'canvass._domainkey.{domain}.': b'{record}'"))
        .collect();
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(format!(
            "import dkim, sys\n\
             records = {{{}}}\n\
             message = open(sys.argv[1], 'rb').read()\n\
             print(dkim.verify(message, dnsfunc=lambda name, timeout=5: records.get(name)))",
            table.join(", ")
        ))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "True"
}
