//! `canvass dkim keygen`: a new signing key and the DNS record that publishes it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub(super) enum DkimCommand {
    /// Make a 2048-bit RSA key for DOMAIN (written to a new file, readable by its owner only)
    /// and print the DNS TXT record that publishes it
    Keygen {
        domain: String,
        selector: String,
        /// Where to write the key [default: dkim-DOMAIN-SELECTOR.pem]
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
}

/// `canvass dkim keygen`: a new key in a new file, and its DNS record on stdout (split into
/// strings of 255 characters at most, as zone files need).
pub(super) fn keygen(domain: &str, selector: &str, key: Option<PathBuf>) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if !valid(&domain) || !domain.contains('.') {
        bail!("'{domain}' is not a domain name");
    }
    if !valid(selector) || selector.contains('.') {
        bail!("'{selector}' is not a selector: letters, digits and hyphens");
    }
    let path = key.unwrap_or_else(|| PathBuf::from(format!("dkim-{domain}-{selector}.pem")));
    let made = crate::mail::NewDkimKey::generate(&domain, selector).map_err(anyhow::Error::msg)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing the key to {}", path.display()))?;
    file.write_all(made.pem.as_bytes())?;
    file.sync_all()?;
    let strings: Vec<String> = made
        .record
        .as_bytes()
        .chunks(255)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect();
    println!("{} IN TXT {}", made.record_name, strings.join(" "));
    eprintln!(
        "canvass: the key is in {} (keep it private). Publish the TXT record above, then add \
         {domain}:{selector}:{} to CANVASS_DKIM_KEYS",
        path.display(),
        std::path::absolute(&path).unwrap_or(path.clone()).display()
    );
    Ok(())
}
