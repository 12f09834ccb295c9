//! Mail as canvass writes and sends it, whoever sends: the worker's campaign messages and the
//! service's sign-up confirmations. [`message`] builds a message (MIME, the headers the contract
//! asks for, the footer) and its envelope; [`dkim`] signs it with its From domain's key;
//! [`transport`] hands it to an SMTP server or a `file://` outbox, judging each failure by the
//! step of the dialogue it happened at; [`relays`] holds several relays and their limits.
//! [`render`] compiles and checks a campaign's bodies once; [`token`] signs and verifies the
//! links in every message; [`feedback`] reads the bounces and complaints that come back;
//! [`imap`] fetches them from the bounce mailbox, over [`tls`].

mod dkim;
pub mod feedback;
pub mod imap;
mod message;
mod relays;
pub mod render;
pub mod tls;
pub mod token;
mod transport;

pub use dkim::{DkimError, DkimKeys, NewDkimKey, load_dkim};
pub use message::{Letterhead, Mailer, MessageError, TRIAL_SUBJECT_PREFIX};
pub use relays::{Limits, Relay, RelaySettings, Relays};
pub use transport::{
    Connection, SendFailure, Timeouts, Transport, TransportError, Trouble, envelope,
};
