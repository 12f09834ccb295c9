//! The relays mail goes through: one, or several (`CANVASS_SMTP_URL` as a comma-separated list,
//! or `[[relay]]` tables in the file), each with its own limits: a rate, hourly and daily caps,
//! and a weight by which messages are spread among them.

use std::sync::Arc;

use serde::Deserialize;

use super::{Transport, TransportError};
use crate::domain::Rate;
use crate::hooks::Providers;

/// What one relay may be given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Messages a second through it, for every worker together.
    pub rate: Option<Rate>,
    /// Messages an hour (a clock hour, UTC) and a day (a UTC day), for every worker together.
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    /// Its share of the messages, against the others' weights.
    pub weight: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rate: None,
            hourly: None,
            daily: None,
            weight: 1,
        }
    }
}

/// One relay and its limits.
#[derive(Debug, Clone)]
pub struct Relay {
    /// How logs and the database name it: `host:port` (never the password).
    pub name: String,
    pub transport: Transport,
    pub limits: Limits,
}

/// A `[[relay]]` table in the file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    pub url: String,
    pub rate: Option<f64>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weight: Option<u32>,
}

/// Every relay, in the order given.
#[derive(Debug, Clone)]
pub struct Relays(Arc<[Relay]>);

impl From<Transport> for Relays {
    fn from(transport: Transport) -> Self {
        Self(Arc::new([Relay {
            name: transport.name(),
            transport,
            limits: Limits::default(),
        }]))
    }
}

impl Relays {
    /// `URL[?rate=R&hourly=H&daily=D&weight=W], ...`: each URL as [`Transport::from_url`] reads
    /// it (a comma inside a password is written `%2C`). An outbox (`file://`) stands alone.
    pub fn parse(list: &str) -> Result<Self, TransportError> {
        let relays = list
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|given| {
                let (url, query) = given.split_once('?').unwrap_or((given, ""));
                let mut settings = RelaySettings {
                    url: url.to_owned(),
                    rate: None,
                    hourly: None,
                    daily: None,
                    weight: None,
                };
                for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
                    let bad = || {
                        TransportError::Invalid(
                            Transport::from_url(url).map_or_else(|_| "?".into(), |t| t.to_string()),
                            "a relay's limits are rate (messages a second), hourly, daily and \
                             weight, each a number above 0",
                        )
                    };
                    match name.as_ref() {
                        "rate" => settings.rate = Some(value.parse().map_err(|_| bad())?),
                        "hourly" => settings.hourly = Some(value.parse().map_err(|_| bad())?),
                        "daily" => settings.daily = Some(value.parse().map_err(|_| bad())?),
                        "weight" => settings.weight = Some(value.parse().map_err(|_| bad())?),
                        _ => return Err(bad()),
                    }
                }
                Ok(settings)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_settings(&relays)
    }

    /// The relays of `[[relay]]` tables (or of the list, parsed).
    pub fn from_settings(settings: &[RelaySettings]) -> Result<Self, TransportError> {
        let mut relays = Vec::new();
        for given in settings {
            let transport = Transport::from_url(&given.url)?;
            let invalid = |why: &'static str| TransportError::Invalid(transport.to_string(), why);
            let rate = given
                .rate
                .map(Rate::try_from)
                .transpose()
                .map_err(|_| invalid("its rate must be above 0 messages a second"))?;
            let positive = |cap: Option<u32>| match cap {
                Some(0) => Err(invalid("its caps and weight must be above 0")),
                cap => Ok(cap),
            };
            let limits = Limits {
                rate,
                hourly: positive(given.hourly)?,
                daily: positive(given.daily)?,
                weight: positive(given.weight)?.unwrap_or(1),
            };
            relays.push(Relay {
                name: transport.name(),
                transport,
                limits,
            });
        }
        match relays.as_slice() {
            [] => Err(TransportError::Invalid(
                String::new(),
                "name at least one relay (or file://DIR)",
            )),
            [_] => Ok(Self(relays.into())),
            several
                if several
                    .iter()
                    .any(|r| matches!(r.transport, Transport::Outbox(_))) =>
            {
                Err(TransportError::Invalid(
                    "file://".into(),
                    "an outbox folder stands alone, not among relays",
                ))
            }
            several
                if (1..several.len())
                    .any(|i| several[..i].iter().any(|r| r.name == several[i].name)) =>
            {
                Err(TransportError::Invalid(
                    several[0].transport.to_string(),
                    "the same relay is named twice",
                ))
            }
            _ => Ok(Self(relays.into())),
        }
    }

    /// The relay at `index`.
    pub fn get(&self, index: usize) -> &Relay {
        &self.0[index]
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Relay> {
        self.0.iter()
    }

    /// The first relay given: canvass's own messages (sign-up confirmations, alerts) go there.
    pub fn first(&self) -> &Transport {
        &self.0[0].transport
    }

    /// The providers that run any of these relays.
    pub fn providers(&self) -> Providers {
        self.iter().fold(Providers::default(), |all, relay| {
            all.and(relay.transport.providers())
        })
    }

    /// Each relay trusting the certificates of the PEM file at `path`.
    pub fn trusting(self, path: &std::path::Path) -> Result<Self, TransportError> {
        let relays = self
            .iter()
            .map(|relay| {
                Ok(Relay {
                    transport: relay.transport.clone().trusting(path)?,
                    ..relay.clone()
                })
            })
            .collect::<Result<Vec<_>, TransportError>>()?;
        Ok(Self(relays.into()))
    }

    /// Whether any relay is on another machine.
    pub fn is_remote(&self) -> bool {
        self.iter().any(|relay| relay.transport.is_remote())
    }
}

impl std::fmt::Display for Relays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.iter().map(|r| r.transport.to_string()).collect();
        f.write_str(&names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_relays_each_with_its_limits() {
        let relays = Relays::parse(
            "smtp+starttls://u:p%2Cq@relay1.example.org:587?rate=14&daily=50000, \
             smtp://postfix.internal:25?weight=2&hourly=1000",
        )
        .unwrap();
        assert_eq!(relays.len(), 2);
        assert_eq!(relays.get(0).name, "relay1.example.org:587");
        assert_eq!(
            relays.get(0).limits.rate,
            Some(Rate::try_from(14.0).unwrap())
        );
        assert_eq!(relays.get(0).limits.daily, Some(50_000));
        assert_eq!(relays.get(0).limits.weight, 1);
        assert_eq!(relays.get(1).limits.weight, 2);
        assert_eq!(relays.get(1).limits.hourly, Some(1000));
        assert!(!relays.to_string().contains("p%2Cq"), "{relays}");
    }

    #[test]
    fn nonsense_limits_are_refused() {
        for bad in [
            "smtp://a:25?rate=0",
            "smtp://a:25?speed=3",
            "smtp://a:25?daily=-1",
            "smtp://a:25?weight=0",
            "smtp://a:25, smtp://a:25",
            "file://outbox, smtp://a:25",
            " , ",
        ] {
            assert!(Relays::parse(bad).is_err(), "{bad}");
        }
        assert!(Relays::parse("smtp://a:25?rate=0.5").is_ok());
    }
}
