//! Mail as canvass writes and sends it, whoever sends: the worker's campaign messages and the
//! service's sign-up confirmations. [`message`] builds a message (MIME, the headers the contract
//! asks for, the footer) and its envelope; [`dkim`] signs it with its From domain's key;
//! [`transport`] hands it to an SMTP server or a `file://` outbox, judging each failure by the
//! step of the dialogue it happened at; [`relays`] holds several relays and their limits.

mod dkim;
pub mod imap;
mod message;
mod relays;
pub mod tls;
mod transport;

pub use dkim::{DkimError, DkimKeys, NewDkimKey, load_dkim};
pub use message::{Letterhead, Mailer, MessageError, TRIAL_SUBJECT_PREFIX};
pub use relays::{Limits, Relay, RelaySettings, Relays};
pub use transport::{
    Connection, SendFailure, Timeouts, Transport, TransportError, Trouble, envelope,
};
