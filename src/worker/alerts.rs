//! Telling people that a campaign stopped: when the worker pauses one for what needs a person
//! (our login refused, TLS that cannot be verified, a run of refusals), every admin and the
//! campaign's maker get an email naming the campaign, the reason and its page in the console,
//! sent through the same relay when it answers (without our login when it refused that: a mail
//! server takes mail for its own domains from anyone). The console's dashboard shows it too.

use handlebars::html_escape;

use crate::domain::Email;
use crate::mail::{Connection, Letterhead, Transport};
use crate::store::Store;

/// What an alert needs, taken from the worker's settings.
pub(super) struct Alerting {
    pub store: Store,
    pub transport: Transport,
    pub letterhead: Letterhead,
}

impl Alerting {
    /// Emails the admins and the campaign's maker that the worker paused `campaign`, and why.
    /// A message that cannot go is logged (with no address): the dashboard still says it.
    /// `refused_login`: the server refused our login, so the alert goes without it.
    pub async fn campaign_paused(&self, campaign: i64, why: &str, refused_login: bool) {
        let recipients = match self.store.pause_alert_recipients(campaign).await {
            Ok(recipients) => recipients,
            Err(e) => {
                tracing::warn!(campaign, "finding whom to tell of the pause: {e}");
                return;
            }
        };
        let Some(name) = recipients.first().map(|r| r.campaign_name.clone()) else {
            tracing::warn!(
                campaign,
                "nobody to tell of the pause: the staff has no admin"
            );
            return;
        };
        let page = format!(
            "{}/admin/campaigns/{campaign}",
            self.letterhead.base_url.trim_end_matches('/')
        );
        let subject = format!("Paused: \u{201c}{name}\u{201d} needs someone to look at it");
        let transport = if refused_login {
            self.transport.clone().anonymous()
        } else {
            self.transport.clone()
        };
        let mut connection = Connection::new(transport);
        let mut told = 0;
        for recipient in &recipients {
            let Ok(to) = Email::parse(&recipient.email) else {
                continue;
            };
            let text = format!(
                "Hello {},\n\n\
                 canvass paused the campaign \u{201c}{name}\u{201d}: {why}\n\n\
                 Nobody is blamed and nothing is lost: its messages wait. Once that is mended \
                 (the relay's password, its certificate, what it refuses), resume the campaign \
                 on its page:\n\n{page}\n",
                recipient.staff_name
            );
            let html = format!(
                "<p>Hello {},</p><p>canvass paused the campaign \u{201c}{}\u{201d}: {}</p>\
                 <p>Nobody is blamed and nothing is lost: its messages wait. Once that is \
                 mended (the relay's password, its certificate, what it refuses), resume the \
                 campaign on <a href=\"{page}\">its page</a>.</p>",
                html_escape(&recipient.staff_name),
                html_escape(&name),
                html_escape(why)
            );
            let message = match self.letterhead.notice(&to, &subject, text, html) {
                Ok((_, message)) => message,
                Err(e) => {
                    tracing::warn!(campaign, "writing the pause alert: {e}");
                    continue;
                }
            };
            let envelope = self
                .letterhead
                .envelope(&self.letterhead.from.email, to.address());
            let file = format!("alert-{campaign}-{told}.eml");
            match connection
                .send(&envelope, &message.formatted(), &file)
                .await
            {
                Ok(_) => told += 1,
                Err(failure) => tracing::warn!(
                    campaign,
                    "the pause alert could not go through the mail server ({}); the console's \
                     dashboard shows the pause",
                    failure.kind()
                ),
            }
        }
        connection.close().await;
        tracing::info!(campaign, told, "told the admins of the pause");
    }
}
