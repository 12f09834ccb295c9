//! DKIM: the keys of the sending domains, read at start-up, each message signed with its From
//! domain's key so that it aligns for DMARC; and `canvass dkim keygen`, which makes a key and
//! the DNS record that publishes it.

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;

use crate::config::DkimSettings;

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("reading the DKIM key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the DKIM key {0} is neither an RSA key in PKCS#1 PEM (\"BEGIN RSA PRIVATE KEY\"; \
         convert a PKCS#8 key with `openssl rsa -traditional`) nor a base64 Ed25519 seed"
    )]
    Key(String),
}

/// The DKIM keys of the sending domains. Shared: lettre's configuration is not `Clone`.
#[derive(Clone, Default)]
pub struct DkimKeys(std::sync::Arc<Vec<(String, DkimConfig)>>);

impl DkimKeys {
    /// One key, for `domain`.
    pub fn one(domain: &str, key: DkimConfig) -> Self {
        Self(std::sync::Arc::new(vec![(
            domain.to_ascii_lowercase(),
            key,
        )]))
    }

    /// The key to sign a message from `domain` with: its own, or its parent domain's (which
    /// aligns with it under DMARC's relaxed rule), else the first (a signature that verifies,
    /// though it aligns with nothing).
    pub(super) fn for_domain(&self, domain: &str) -> Option<&DkimConfig> {
        let domain = domain.to_ascii_lowercase();
        let under = |key: &str| domain == key || domain.ends_with(&format!(".{key}"));
        self.0
            .iter()
            .find(|(key, _)| *key == domain)
            .or_else(|| self.0.iter().find(|(key, _)| under(key)))
            .or_else(|| self.0.first())
            .map(|(_, config)| config)
    }
}

/// Reads the signing key and says which headers the signature covers: the ones a receiver
/// shows or acts on, both List-Unsubscribe headers among them (RFC 8058 §4 requires them
/// signed for one-click to be honoured). Relaxed canonicalization: lettre 0.11.23's "simple"
/// header signatures do not verify (dkimpy), nor does a signed Content-Type, whose folded
/// value lettre canonicalizes differently from how it writes it; both checked by the DKIM test.
fn dkim_config(settings: &DkimSettings) -> Result<DkimConfig, DkimError> {
    let path = settings.key_file.display().to_string();
    let pem = std::fs::read_to_string(&settings.key_file).map_err(|source| DkimError::Read {
        path: path.clone(),
        source,
    })?;
    let algorithm = if pem.contains("BEGIN RSA PRIVATE KEY") {
        DkimSigningAlgorithm::Rsa
    } else {
        DkimSigningAlgorithm::Ed25519
    };
    let key = DkimSigningKey::new(pem.trim(), algorithm).map_err(|_| DkimError::Key(path))?;
    // Not Message-ID or Date: SES and Postmark replace them, which would break the signature
    // (SES's own advice for signing before it).
    let headers = [
        "From",
        "To",
        "Subject",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-Id",
        "MIME-Version",
    ]
    .into_iter()
    .map(HeaderName::new_from_ascii_str)
    .collect();
    Ok(DkimConfig::new(
        settings.selector.clone(),
        settings.domain.clone(),
        key,
        headers,
        DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        },
    ))
}

/// Reads the DKIM keys named in the settings: at start-up, so that a bad key stops the worker
/// before it claims anything.
pub fn load_dkim(settings: &[DkimSettings]) -> Result<DkimKeys, DkimError> {
    let keys = settings
        .iter()
        .map(|key| Ok((key.domain.clone(), dkim_config(key)?)))
        .collect::<Result<Vec<_>, DkimError>>()?;
    Ok(DkimKeys(std::sync::Arc::new(keys)))
}

/// A new key for a sending domain: its private half to keep (PKCS#1 PEM, as the key file
/// setting reads it), and the DNS TXT record that publishes its public half.
pub struct NewDkimKey {
    pub pem: String,
    /// `SELECTOR._domainkey.DOMAIN.`
    pub record_name: String,
    /// `v=DKIM1; k=rsa; p=...`
    pub record: String,
}

impl NewDkimKey {
    /// A 2048-bit RSA key, what receivers check everywhere (Ed25519 is not yet).
    pub fn generate(domain: &str, selector: &str) -> Result<Self, String> {
        use base64::Engine;
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::EncodePublicKey;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .map_err(|e| format!("making the key: {e}"))?;
        let pem = key
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .map_err(|e| format!("writing the key: {e}"))?
            .to_string();
        let public = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| format!("writing the public key: {e}"))?;
        Ok(Self {
            pem,
            record_name: format!("{selector}._domainkey.{}.", domain.to_ascii_lowercase()),
            record: format!(
                "v=DKIM1; k=rsa; p={}",
                base64::engine::general_purpose::STANDARD.encode(public.as_bytes())
            ),
        })
    }
}
