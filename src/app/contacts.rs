//! One person: their details and consents, and their rights (access, restriction, erasure,
//! withdrawal). A person is named by their address or by their public id.

use serde::Serialize;

use super::{Actor, App, AppError, Conflict, Result};
use chrono::NaiveDate;

use crate::domain::{
    AGE_OF_CONSENT, AuditAction, ContactDraft, ContactExport, ContactRules, Email, Information,
    InformationFor, PublicId, RequestStatus, Right, Scope, SignupExport, SuppressionExport,
    SuppressionReason, Topic, TopicSlug, parse_source,
};
pub use crate::store::{
    CONTACTS_PAGE, ConsentFilter, ContactPage, ContactQuery, ContactSearch, ErasureOutcome, Matches,
};
use crate::store::{
    RecentSuppression, RestrictionOutcome, SIGNUP_SOURCE, SaveOutcome, Unsavable,
    UnsuppressOutcome, Withdrawal, WithdrawalOutcome, WithheldGrant, now,
};

/// What a contact is checked against now: the topics that exist, and the source of a draft
/// that gives none (empty: one is required).
pub async fn rules(app: &App, default_source: &str) -> Result<ContactRules> {
    Ok(ContactRules {
        topics: app
            .store
            .list_topics()
            .await?
            .into_iter()
            .map(|topic| topic.slug)
            .collect(),
        now: now(),
        default_source: default_source.to_owned(),
        default_consent_at: None,
    })
}

/// What saving a contact did.
#[derive(Debug)]
pub struct Saved {
    /// A new contact, rather than one held at that address already.
    pub created: bool,
    /// Topics given that an earlier withdrawal kept out: not subscribed again.
    pub withheld: Vec<WithheldGrant>,
    /// Everything now held.
    pub export: Box<ContactExport>,
}

/// A page of the contacts the actor may see that match `query`, and how many match in all.
pub async fn find(app: &App, actor: &Actor, query: &ContactQuery) -> Result<ContactPage> {
    Ok(app.store.find_contacts(actor.scope(), query).await?)
}

/// The constituencies the actor may see, as (code, name), by name.
pub async fn constituencies(app: &App, actor: &Actor) -> Result<Vec<(String, Option<String>)>> {
    let scope = actor.scope();
    Ok(app
        .store
        .constituency_names()
        .await?
        .into_iter()
        .filter(|(code, _)| scope.covers(Some(code)))
        .collect())
}

/// Every constituency's name by its code, to tell people which ones are meant.
pub struct ConstituencyNames(std::collections::HashMap<String, Option<String>>);

impl ConstituencyNames {
    /// The constituency's name, or its code when the directory names it not.
    pub fn of(&self, code: &str) -> String {
        self.0
            .get(code)
            .cloned()
            .flatten()
            .unwrap_or_else(|| code.to_owned())
    }

    /// The constituencies `scope` covers, as a sentence lists them (`Stevenage and Hitchin`);
    /// `None` for everyone.
    pub fn of_scope(&self, scope: &Scope) -> Option<String> {
        let codes = scope.constituencies()?;
        let named: Vec<String> = codes.iter().map(|code| self.of(code.as_str())).collect();
        Some(if named.is_empty() {
            "none".to_owned()
        } else {
            crate::domain::listed(&named)
        })
    }
}

pub async fn constituency_names(app: &App) -> Result<ConstituencyNames> {
    Ok(ConstituencyNames(
        app.store.constituency_names().await?.into_iter().collect(),
    ))
}

/// How many contacts the actor may see, and who among them was suppressed lately.
pub struct Overview {
    pub contacts: u64,
    pub recent: Vec<RecentSuppression>,
}

pub async fn overview(app: &App, actor: &Actor) -> Result<Overview> {
    let scope = actor.scope();
    let contacts = app
        .store
        .find_contacts(scope, &ContactQuery::default())
        .await?
        .total
        .counted();
    let recent = app.store.recent_suppressions(scope, 10).await?;
    Ok(Overview { contacts, recent })
}

/// Of the contacts the actor may see: how many may be mailed each topic today, in all and in
/// each constituency (consent in force, neither restricted nor suppressed, of age), from the
/// counts the database keeps.
pub struct MailableCounts {
    pub topics: Vec<(Topic, u64)>,
    /// Each constituency in scope that has someone to mail, or that the actor is kept to; and
    /// the contacts the directory places nowhere (`code` `None`), for those who see them.
    pub constituencies: Vec<MailableInConstituency>,
}

/// How many in one constituency may be mailed each topic, in the order of [`MailableCounts::topics`].
pub struct MailableInConstituency {
    pub code: Option<String>,
    pub name: Option<String>,
    pub by_topic: Vec<u64>,
}

pub async fn counts(app: &App, actor: &Actor) -> Result<MailableCounts> {
    let scope = actor.scope();
    let topics = app.store.list_topics().await?;
    let mailable = app.store.mailable(None, now().date_naive()).await?;
    let of = |code: &str, topic: &Topic| {
        mailable
            .get(&(code.to_owned(), topic.slug.as_str().to_owned()))
            .copied()
    };
    let lines = |code: &str| topics.iter().map(|t| of(code, t).unwrap_or(0)).collect();
    let listed = |code: &str| {
        scope.constituencies().is_some() || topics.iter().any(|t| of(code, t).is_some())
    };
    let mut constituencies: Vec<MailableInConstituency> = app
        .store
        .constituency_names()
        .await?
        .into_iter()
        .filter(|(code, _)| scope.covers(Some(code)) && listed(code))
        .map(|(code, name)| MailableInConstituency {
            by_topic: lines(&code),
            code: Some(code),
            name,
        })
        .collect();
    if scope.covers(None) && listed("") {
        constituencies.push(MailableInConstituency {
            code: None,
            name: None,
            by_topic: lines(""),
        });
    }
    let topics = topics
        .into_iter()
        .map(|topic| {
            let total = mailable
                .iter()
                .filter(|((code, slug), _)| {
                    *slug == topic.slug.as_str() && scope.covers((!code.is_empty()).then_some(code))
                })
                .map(|(_, n)| n)
                .sum();
            (topic, total)
        })
        .collect();
    Ok(MailableCounts {
        topics,
        constituencies,
    })
}

/// Creates a contact, or updates the one held at the address, granting the topics given. A
/// member of staff kept to some constituencies saves only contacts with a postcode in them.
pub async fn save(app: &App, actor: &Actor, draft: &ContactDraft<'_>) -> Result<Saved> {
    super::may_write(actor)?;
    let contact = draft
        .parse(&rules(app, "").await?)
        .map_err(|e| AppError::invalid(e.field, e.message))?;
    // Staff kept to some constituencies are refused as an import refuses their rows: an
    // address they may not add is refused alike, whoever holds it or whatever suppressed it.
    let outside = app
        .store
        .outside_scope(std::slice::from_ref(&contact), actor.scope())
        .await?;
    if let Some(&(_, why)) = outside.first() {
        return Err(match why {
            Unsavable::Postcode => {
                AppError::invalid("postcode", "give a postcode in one of your constituencies")
            }
            Unsavable::Address => AppError::invalid("email", why.message()),
        });
    }
    let saved = match app
        .store
        .save_contact(&contact, &contact.consent_source, actor)
        .await?
    {
        SaveOutcome::Saved(outcome) => outcome,
        SaveOutcome::Erased => {
            return Err(AppError::conflict(
                Conflict::Erased,
                "the person asked to be erased; only their own confirmed sign-up brings them back",
            ));
        }
        SaveOutcome::UnderAge => {
            return Err(AppError::invalid(
                "guardian_consent",
                format!(
                    "under {AGE_OF_CONSENT}: a child's details are kept only with a guardian's \
                     consent, naming who gave it and how they are related; to record that a \
                     guardian withdrew it, erase the child"
                ),
            ));
        }
    };
    let export = app
        .store
        .export_contact(&contact.email)
        .await?
        .ok_or_else(|| AppError::NotFound("the contact was not saved".into()))?;
    Ok(Saved {
        created: saved.inserted > 0,
        withheld: saved.withheld,
        export: Box::new(export),
    })
}

/// Everything held on a person: the answer to a subject access request.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Held {
    Contact(Box<ContactExport>),
    /// No contact, only sign-ups waiting for (or recently given) their confirmation.
    Signups {
        email: String,
        signups: Vec<SignupExport>,
    },
}

/// The answer to a subject access request: everything held on the person, what the registers
/// hold about them, and the information the law says goes with it.
#[derive(Debug, Serialize)]
pub struct AccessPack {
    #[serde(flatten)]
    pub held: Held,
    /// Their rights requests, as the register keeps them (for admins, the operator and the
    /// person; empty for other staff).
    pub requests: Vec<RequestExport>,
    /// The complaints they made (likewise).
    pub complaints: Vec<ComplaintExport>,
    pub information: Information,
}

/// A rights request in an access pack.
#[derive(Debug, Serialize)]
pub struct RequestExport {
    pub reference: String,
    pub right: Right,
    pub received: NaiveDate,
    pub status: RequestStatus,
    pub closed_on: Option<NaiveDate>,
    pub outcome: Option<String>,
}

/// A complaint in an access pack.
#[derive(Debug, Serialize)]
pub struct ComplaintExport {
    pub reference: String,
    pub received: NaiveDate,
    pub summary: String,
    pub message_id: Option<String>,
    pub acknowledged_on: Option<NaiveDate>,
    pub closed_on: Option<NaiveDate>,
    pub outcome: Option<String>,
}

/// Everything held on a person, as the operator or a member of staff downloads it or the person
/// asks for it through their link: audited under whoever asked, whatever the door.
pub async fn export(app: &App, actor: &Actor, contact: &str) -> Result<AccessPack> {
    let held = view(app, actor, contact).await?;
    let email = match &held {
        Held::Contact(export) => {
            Email::parse(&export.email).map_err(|e| AppError::invalid("contact", e))?
        }
        Held::Signups { email, .. } => {
            Email::parse(email).map_err(|e| AppError::invalid("contact", e))?
        }
    };
    let hash = email.hash();
    // The registers are the admins' (a complaint may be about a member of staff): others'
    // downloads leave them out; the person's own holds them.
    let registers = match actor {
        Actor::Staff(member) => member.role.manages_staff(),
        Actor::Operator | Actor::Contact => true,
        Actor::Worker | Actor::Retention | Actor::Provider(_) => false,
    };
    let requests = if registers {
        app.store.rights_requests_about(&hash).await?
    } else {
        Vec::new()
    };
    let requests = requests
        .into_iter()
        .map(|r| RequestExport {
            reference: r.reference.to_string(),
            right: r.right,
            received: r.clock.received,
            status: r.clock.status(),
            closed_on: r.clock.closed_on,
            outcome: r.outcome,
        })
        .collect();
    let complaints = if registers {
        app.store.complaints_by(&hash).await?
    } else {
        Vec::new()
    };
    let complaints = complaints
        .into_iter()
        .map(|c| ComplaintExport {
            reference: c.reference.to_string(),
            received: c.received,
            summary: c.summary,
            message_id: c.message_id,
            acknowledged_on: c.acknowledged_on,
            closed_on: c.closed_on,
            outcome: c.outcome,
        })
        .collect();
    let topics = app.store.list_topics().await?;
    let source = match &held {
        Held::Contact(export) => export.source.as_deref(),
        Held::Signups { .. } => Some(SIGNUP_SOURCE),
    };
    let complaint_url = format!("{}/complaint", app.base_url);
    let information = app.data_protection.privacy.information(&InformationFor {
        publisher: &app.publisher,
        topics: &topics,
        retention_months: app.data_protection.retention_months,
        complaint_url: &complaint_url,
        source,
    });
    app.store
        .record_audit_about(actor, AuditAction::ContactExported, &email, None)
        .await?;
    Ok(AccessPack {
        held,
        requests,
        complaints,
        information,
    })
}

/// Everything held on a person, to look at.
pub async fn view(app: &App, actor: &Actor, contact: &str) -> Result<Held> {
    let email = address(app, actor, contact).await?;
    if let Some(export) = app.store.export_contact(&email).await? {
        return Ok(Held::Contact(Box::new(export)));
    }
    let signups = app.store.signups_of(&email).await?;
    if !signups.is_empty() {
        return Ok(Held::Signups {
            email: email.as_str().to_owned(),
            signups,
        });
    }
    Err(AppError::NotFound(
        match app.store.suppression(&email.hash()).await? {
            Some(s) => format!(
                "nothing is held on that address beyond its suppression ({})",
                s.reason.as_str()
            ),
            None => "nothing is held on that address".into(),
        },
    ))
}

/// Whether an address is on the suppression list, why and since when.
pub async fn suppression(
    app: &App,
    actor: &Actor,
    address: &str,
) -> Result<Option<SuppressionExport>> {
    let email = Email::parse(address).map_err(|e| AppError::invalid("email", e))?;
    // Whether someone elsewhere unsubscribed or was erased is not for staff kept to some
    // constituencies to learn: they ask only about their own contacts.
    let scope = actor.scope();
    if scope.constituencies().is_some() && !app.store.contact_in_scope(&email, scope).await? {
        return Err(not_in_scope());
    }
    Ok(app.store.suppression(&email.hash()).await?)
}

/// What recording a withdrawal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawn {
    /// From everything: the address is suppressed, as the one-click link does.
    Unsubscribed,
    /// From this many topics.
    Topics(u64),
    /// Nobody is held at the address: it is suppressed, so that no import adds it.
    Suppressed,
}

/// Records a withdrawal the person made by phone, letter or email: from the topics named, or
/// from everything when none are.
pub async fn withdraw(
    app: &App,
    actor: &Actor,
    contact: &str,
    topics: &[String],
    source: &str,
    note: Option<&str>,
) -> Result<Withdrawn> {
    super::may_write(actor)?;
    let email = address(app, actor, contact).await?;
    let topics = topics
        .iter()
        .map(|slug| TopicSlug::parse(slug))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AppError::invalid("topics", e))?;
    let source = parse_source(source).map_err(|e| {
        AppError::invalid(
            "source",
            format!("say how the person asked (phone, letter, email...): {e}"),
        )
    })?;
    let withdrawal = Withdrawal {
        topics: &topics,
        source,
        note: note.map(str::trim).filter(|note| !note.is_empty()),
    };
    match app
        .store
        .record_withdrawal(&email, &withdrawal, actor)
        .await?
    {
        WithdrawalOutcome::Recorded(_) if topics.is_empty() => Ok(Withdrawn::Unsubscribed),
        WithdrawalOutcome::Recorded(n) => Ok(Withdrawn::Topics(n)),
        WithdrawalOutcome::NotHeld if topics.is_empty() => Ok(Withdrawn::Suppressed),
        WithdrawalOutcome::NotHeld => {
            Err(AppError::NotFound("nothing is held on that address".into()))
        }
        WithdrawalOutcome::UnknownTopic => Err(AppError::invalid(
            "topics",
            "no such topic; see `canvass topics list`",
        )),
    }
}

/// Restricts the person (keeps their data, never mails them) or lifts that; whether anything
/// changed.
pub async fn restrict(app: &App, actor: &Actor, contact: &str, restricted: bool) -> Result<bool> {
    super::may_write(actor)?;
    let email = address(app, actor, contact).await?;
    match app.store.set_restricted(&email, restricted, actor).await? {
        RestrictionOutcome::Changed => Ok(true),
        RestrictionOutcome::AlreadySo => Ok(false),
        RestrictionOutcome::NotFound => {
            Err(AppError::NotFound("nothing is held on that address".into()))
        }
    }
}

/// Erases the person: their data goes, and the address stays only as a hash on the
/// suppression list, so that it is never imported or mailed again.
pub async fn erase(app: &App, actor: &Actor, contact: &str) -> Result<ErasureOutcome> {
    super::may_write(actor)?;
    let email = address(app, actor, contact).await?;
    Ok(app.store.erase_contact(&email, actor).await?)
}

/// Lifts a bounced or complaint suppression found wrong; never an unsubscribe or an erasure.
pub async fn unsuppress(
    app: &App,
    actor: &Actor,
    contact: &str,
    note: &str,
) -> Result<SuppressionReason> {
    super::may_write(actor)?;
    let email = address(app, actor, contact).await?;
    let note = note.trim();
    if note.is_empty() {
        return Err(AppError::invalid(
            "note",
            "say why the suppression is wrong, for the audit log",
        ));
    }
    match app.store.unsuppress(&email, note, actor).await? {
        UnsuppressOutcome::Lifted(reason) => Ok(reason),
        UnsuppressOutcome::Refused(reason) => Err(AppError::conflict(
            Conflict::Refused,
            format!(
                "the address is {}: only the person's own confirmed sign-up lifts that",
                reason.as_str()
            ),
        )),
        UnsuppressOutcome::NotSuppressed => {
            Err(AppError::NotFound("that address is not suppressed".into()))
        }
    }
}

/// The address `contact` names: itself, or the address of the contact with that public id.
/// For a member of staff kept to some constituencies, only a contact held in them: anyone
/// else is not found, as if nobody were held there.
pub async fn address(app: &App, actor: &Actor, contact: &str) -> Result<Email> {
    let scope = actor.scope();
    let email = match contact.trim().parse::<PublicId>() {
        Ok(id) => match app.store.preferences(&id).await? {
            Some(held) => held.email,
            None if scope.constituencies().is_some() => return Err(not_in_scope()),
            None => return Err(AppError::NotFound("no contact has that public id".into())),
        },
        Err(_) => Email::parse(contact).map_err(|e| AppError::invalid("contact", e))?,
    };
    if scope.constituencies().is_some() && !app.store.contact_in_scope(&email, scope).await? {
        return Err(not_in_scope());
    }
    Ok(email)
}

/// What staff kept to some constituencies are told of anyone else, whether held or not.
fn not_in_scope() -> AppError {
    AppError::NotFound("no contact in your constituencies has that address or id".into())
}

/// The kept counts' differences from a count from scratch, one line each; none when they agree.
pub async fn recount(app: &App, actor: &Actor) -> Result<Vec<String>> {
    super::must_be_admin(actor)?;
    Ok(app.store.count_drift().await?)
}
