//! Who a campaign comes from, or where replies go: an address, with a display name or not.

use std::fmt;

use super::Email;

/// `Name <address>`, or an address alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub name: Option<String>,
    pub email: Email,
}

impl Sender {
    pub fn parse(input: &str) -> Result<Self, String> {
        let input = input.trim();
        let (name, address) = match input.rsplit_once('<') {
            Some((name, rest)) => {
                let address = rest
                    .strip_suffix('>')
                    .ok_or_else(|| format!("'{input}' is not written Name <address>"))?;
                (name.trim().trim_matches('"').trim(), address)
            }
            None => ("", input),
        };
        if name.chars().count() > 100 || name.chars().any(|c| c.is_control() || "<>\"".contains(c))
        {
            return Err(
                "the name is one line of at most 100 characters, without <, > or \"".into(),
            );
        }
        let email = Email::parse(address).map_err(|e| e.to_string())?;
        Ok(Self {
            name: (!name.is_empty()).then(|| name.to_owned()),
            email,
        })
    }

    /// The domain of the address, lower-cased.
    pub fn domain(&self) -> String {
        self.email.address().domain().to_ascii_lowercase()
    }
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} <{}>", self.email.as_str()),
            None => f.write_str(self.email.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_name_and_an_address_or_an_address_alone() {
        let sender = Sender::parse(" \"Hertford Labour\" <News@Hertford.example.org> ").unwrap();
        assert_eq!(sender.name.as_deref(), Some("Hertford Labour"));
        assert_eq!(sender.domain(), "hertford.example.org");
        assert_eq!(
            sender.to_string(),
            "Hertford Labour <News@Hertford.example.org>"
        );
        assert_eq!(Sender::parse("a@example.org").unwrap().name, None);
        for bad in [
            "Name <a@example.org",
            "Na\nme <a@example.org>",
            "not an address",
            "<>",
        ] {
            assert!(Sender::parse(bad).is_err(), "{bad}");
        }
    }
}
