//! Who publishes canvass's emails and pages, as the law asks every one of them to say: the
//! organisation, its postal address (PECR and the ICO's direct marketing guidance), the digital
//! imprint (Elections Act 2022: "Promoted by ... on behalf of ..., both at ..."), and where its
//! privacy notice is (UK GDPR articles 13 and 14).

/// The publisher's details, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publisher {
    pub organisation: String,
    pub postal_address: Option<String>,
    pub imprint: Option<String>,
    pub privacy_url: Option<String>,
}

impl Publisher {
    /// The settings left out that the law expects on marketing email, by name, to warn about.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.postal_address.is_none() {
            missing.push("CANVASS_POSTAL_ADDRESS");
        }
        if self.imprint.is_none() {
            missing.push("CANVASS_IMPRINT");
        }
        missing
    }
}
