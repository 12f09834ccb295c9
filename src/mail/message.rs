//! One recipient's message: rendered from the campaign's compiled templates, with the headers
//! the contract asks for (RFC 2369 List-Unsubscribe with RFC 8058 one-click, List-Id,
//! Message-ID), and a DKIM signature over them when a key is configured.

use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MessageBuilder, MultiPart};

use super::{Connection, DkimKeys, SendFailure, Transport, envelope};
use crate::domain::{Email, Publisher, Sender};
use crate::mail::render::{Footer, MessageVars, TemplateError, Templates};
use crate::mail::token::SigningKeys;
use crate::store::{Campaign, ClaimedDelivery};

/// What a test message's subject begins with.
pub const TRIAL_SUBJECT_PREFIX: &str = "[Test] ";

/// Sends the messages that are not a campaign's deliveries (sign-up confirmations, test
/// messages) with what every message of this process carries.
pub struct Mailer {
    pub transport: Transport,
    pub letterhead: Letterhead,
}

impl Mailer {
    /// Sends one message to `to` on a connection of its own, closed after; `name` names the
    /// outbox file.
    pub async fn send_one(
        &self,
        to: &Email,
        message: &Message,
        name: &str,
    ) -> Result<(), SendFailure> {
        let envelope = self
            .letterhead
            .envelope(&self.letterhead.from.email, to.address());
        let mut connection = Connection::new(self.transport.clone());
        let sent = connection.send(&envelope, &message.formatted(), name).await;
        connection.close().await;
        sent.map(|_| ())
    }
}

/// What every message of this process shares.
#[derive(Clone)]
pub struct Letterhead {
    pub keys: SigningKeys,
    /// The public base of every link.
    pub base_url: String,
    pub from: Mailbox,
    /// An address that takes unsubscribe requests by email, offered beside the link.
    pub unsubscribe_mailto: Option<lettre::Address>,
    /// The DKIM keys, by sending domain.
    pub dkim: DkimKeys,
    /// The envelope sender at the From domain (`CANVASS_RETURN_PATH`); `None`: `bounces@` it.
    pub return_path: Option<lettre::Address>,
    /// Who sends, as every footer says.
    pub publisher: Publisher,
    pub reply_to: Option<Mailbox>,
    /// The providers whose relays carry the mail: each message carries its Message-ID the way
    /// their webhooks return it.
    pub providers: crate::hooks::Providers,
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("rendering: {0}")]
    Template(#[from] TemplateError),
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
}

impl Letterhead {
    /// The envelope of a message from `from` (its From address) to `to`: the return path at
    /// the From's domain, so that SPF aligns with it for DMARC: `CANVASS_RETURN_PATH` where it
    /// is at that domain, else `bounces@` that domain.
    pub fn envelope(
        &self,
        from: &lettre::Address,
        to: &lettre::Address,
    ) -> lettre::address::Envelope {
        let return_path = self
            .return_path
            .clone()
            .filter(|path| path.domain().eq_ignore_ascii_case(from.domain()))
            .or_else(|| lettre::Address::new("bounces", from.domain()).ok())
            .unwrap_or_else(|| from.clone());
        envelope(&return_path, to)
    }

    /// The From address of `campaign`'s messages: its own, or the letterhead's.
    pub fn sender_of<'a>(&'a self, campaign: &'a Campaign) -> &'a lettre::Address {
        campaign
            .spec
            .from
            .as_ref()
            .map_or(&self.from.email, |sender| sender.email.address())
    }

    /// A message of canvass's own to one address (a sign-up's confirmation), with what every
    /// message carries: its Message-ID, the Reply-To, the DKIM signature. Its Message-ID too.
    pub fn notice(
        &self,
        to: &crate::domain::Email,
        subject: &str,
        text: String,
        html: String,
    ) -> Result<(String, Message), MessageError> {
        let to = Mailbox::new(None, to.address().clone());
        let (message_id, builder) = self.start(&self.from, self.reply_to.as_ref(), to, subject);
        Ok((
            message_id,
            self.seal(builder, text, html, self.from.email.domain())?,
        ))
    }

    /// What every message of this process begins with: a new Message-ID at the From address's
    /// domain, From, Reply-To, To, Subject and Date. Its Message-ID too.
    fn start(
        &self,
        from: &Mailbox,
        reply_to: Option<&Mailbox>,
        to: Mailbox,
        subject: &str,
    ) -> (String, MessageBuilder) {
        // Time-ordered, so that the ledger's index of Message-IDs (bounces and complaints are
        // matched by it) is appended to as a campaign goes out.
        let message_id = format!(
            "<{}@{}>",
            crate::domain::time_ordered_uuid().simple(),
            from.email.domain()
        );
        let mut builder = Message::builder().from(from.clone());
        if let Some(reply_to) = reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        let builder = builder
            .to(to)
            .subject(subject)
            .date_now()
            .message_id(Some(message_id.clone()));
        (message_id, builder)
    }

    /// The text and HTML parts, and the DKIM signature over the whole with the key of the From
    /// address's domain (`from_domain`), when keys are configured.
    fn seal(
        &self,
        builder: MessageBuilder,
        text: String,
        html: String,
        from_domain: &str,
    ) -> Result<Message, MessageError> {
        let mut message = builder.multipart(MultiPart::alternative_plain_html(text, html))?;
        if let Some(dkim) = self.dkim.for_domain(from_domain) {
            message.sign(dkim);
        }
        Ok(message)
    }

    /// The message for one recipient, and its Message-ID.
    pub fn message(
        &self,
        campaign: &Campaign,
        templates: &Templates,
        delivery: &ClaimedDelivery,
    ) -> Result<(String, Message), MessageError> {
        let vars = MessageVars::for_recipient(
            &delivery.recipient,
            campaign.spec.event.as_ref(),
            campaign.link_tag.as_ref(),
            &self.keys,
            &self.base_url,
        );
        let to = Mailbox::new(
            delivery.recipient.name.clone(),
            delivery.email.address().clone(),
        );
        self.campaign_message(campaign, templates, &vars, to, &campaign.spec.subject, true)
    }

    /// A test of a campaign's message to `to`: `[Test] ` before its subject, rendered with
    /// `vars` (whose links lead to the page that says it was a test), and no `mailto:`
    /// unsubscribe, which would act. Its Message-ID too.
    pub fn trial(
        &self,
        campaign: &Campaign,
        templates: &Templates,
        vars: &MessageVars,
        to: &Email,
    ) -> Result<(String, Message), MessageError> {
        let subject = format!("{TRIAL_SUBJECT_PREFIX}{}", campaign.spec.subject);
        let to = Mailbox::new(None, to.address().clone());
        self.campaign_message(campaign, templates, vars, to, &subject, false)
    }

    /// A campaign's message with the headers the contract asks for: List-Unsubscribe (the
    /// link, and the `mailto:` address when configured and `mailto` is true) with one-click,
    /// List-Id.
    fn campaign_message(
        &self,
        campaign: &Campaign,
        templates: &Templates,
        vars: &MessageVars,
        to: Mailbox,
        subject: &str,
        mailto: bool,
    ) -> Result<(String, Message), MessageError> {
        let footer = Footer {
            publisher: &self.publisher,
            topic: &campaign.topic_name,
        };
        let bodies = templates.render(vars, &footer)?;
        let domain = self.from.email.domain();
        let mut unsubscribe = format!("<{}>", vars.unsubscribe_url);
        if let Some(mailto) = self.unsubscribe_mailto.as_ref().filter(|_| mailto) {
            // The token in the subject says who and what, as the link does.
            let token = vars.unsubscribe_url.rsplit('/').next().unwrap_or_default();
            unsubscribe.push_str(&format!(
                ", <mailto:{mailto}?subject=unsubscribe%20{token}>"
            ));
        }
        let header = |name: &'static str, value: String| {
            HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
        };
        // The campaign's own From and Reply-To, where it has them.
        let mailbox =
            |sender: &Sender| Mailbox::new(sender.name.clone(), sender.email.address().clone());
        let from = campaign.spec.from.as_ref().map(mailbox);
        let reply_to = campaign.spec.reply_to.as_ref().map(mailbox);
        let from = from.as_ref().unwrap_or(&self.from);
        let (message_id, builder) = self.start(
            from,
            reply_to.as_ref().or(self.reply_to.as_ref()),
            to,
            subject,
        );
        let builder = builder
            .raw_header(header("List-Unsubscribe", unsubscribe))
            .raw_header(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".into(),
            ))
            .raw_header(header(
                "List-Id",
                format!("<{}.{domain}>", campaign.spec.topic),
            ));
        let builder = self
            .providers
            .carriers(&message_id)
            .into_iter()
            .fold(builder, |builder, (name, value)| {
                builder.raw_header(header(name, value))
            });
        let message = self.seal(builder, bodies.text, bodies.html, from.email.domain())?;
        Ok((message_id, message))
    }
}
