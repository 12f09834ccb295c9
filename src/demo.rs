//! `canvass demo`: the whole job on the embedded defaults, in a folder of its own.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

use std::sync::Arc;

use chrono::Utc;
use lettre::message::Mailbox;

use crate::app::contacts::{self, Held};
use crate::app::imports::{self, CsvFile};
use crate::app::{App, AppError, campaigns, staff};
use crate::database;
use crate::domain::{
    Actor, CampaignChanges, CampaignDraft, ConstituencyCode, Publisher, Role, Scope, StaffMember,
};
use crate::http::{Application, Metrics, ServiceSettings, shutdown_signal};
use crate::mail::token::Purpose;
use crate::mail::{DkimKeys, Mailer};
use crate::mail::{Letterhead, Transport};
use crate::progress::{ConsoleReport, report_table};
use crate::worker::{Sending, Worker, WorkerSettings};

/// Where the demo serves its links, when the port is free.
/// The sample constituency both demo mailings go to.
const DEMO_CONSTITUENCY: &str = "E14900001";
const SENDER_NAME: &str = "Hertford and Stortford Labour (demo)";

/// Who the demo's test message goes to.
const TESTER: &str = "organiser@hertford.example.org";
const SENDER_ADDRESS: &str = "news@hertford.example.org";
const SENDER_DOMAIN: &str = "hertford.example.org";
const REMINDER: &str = include_str!("../examples/templates/reminder.md");
const CANVASSING: &str = "Dear {{#if contact.name}}{{contact.name}}{{else}}friend{{/if}},\n\n\
    We are knocking on doors this Saturday from 10am. Come for an hour or the day: we will pair \
    you with someone who has done it before.\n";

/// The sample constituency's name, as the sample directory gives it.
const CONSTITUENCY_NAME: &str = "Hertford and Stortford (sample)";

/// The demo's admin; the organiser is [`TESTER`].
const ADMIN: &str = "admin@hertford.example.org";

/// The demo's sender, as its footers say (invented, as the sample data are).
fn publisher() -> Publisher {
    Publisher {
        organisation: SENDER_NAME.into(),
        postal_address: Some("1 Example Street, Hertford SG13 8EQ".into()),
        imprint: Some(
            "Promoted by A. Agent on behalf of Hertford and Stortford Labour (demo), both at \
             1 Example Street, Hertford SG13 8EQ"
                .into(),
        ),
        privacy_url: Some("https://hertford.example.org/privacy".into()),
    }
}
const NEWSLETTER: &str = include_str!("../examples/templates/newsletter.html");
const EVENT: &str = include_str!("../examples/templates/event.html");

/// The sample postcode directory and contacts list, shipped inside the binary so that the demo
/// runs from anywhere. The constituency codes are invented (`E149...`); real ones come from the
/// ONS postcode directory.
const SAMPLE_POSTCODES: &str = include_str!("../examples/postcodes.csv");
const SAMPLE_CONTACTS: &str = include_str!("../examples/contacts.csv");

/// Runs the demo in `dir`, its links served on `listen` (or, when that is taken, any free port).
pub async fn run(dir: &Path, listen: SocketAddr, serve: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("canvass.db");
    let url = format!("sqlite://{}", file.display());
    let journal = dir.join("canvass.journal");
    // The links' base is known once the service is bound, below; the service shows no preview.
    let app = database::open_migrated(&url, &journal, publisher(), "http://127.0.0.1").await?;
    println!(
        "database: {url}\nsuppression journal: {}",
        journal.display()
    );

    let postcodes = dir.join("postcodes.csv");
    let contacts = dir.join("contacts.csv");
    std::fs::write(&postcodes, SAMPLE_POSTCODES)?;
    std::fs::write(&contacts, SAMPLE_CONTACTS)?;

    let keys = app.signing_keys(None).await?;
    let me = &Actor::Operator;

    println!("\n$ canvass postcodes import {}", postcodes.display());
    let mut report = ConsoleReport::new("postcodes");
    let imported = imports::directory(&app, me, CsvFile::open(&postcodes)?, false, &mut report);
    println!("{}", imported.await?);
    println!(
        "\n$ canvass contacts import {} --source demo",
        contacts.display()
    );
    println!(
        "(three rows of the sample are wrong on purpose, to show how bad rows are reported; a \
         child under 14 without a guardian's consent is not kept at all)"
    );
    let mut report = ConsoleReport::new("contacts");
    let imported = imports::contacts(
        &app,
        &Actor::Operator,
        CsvFile::open(&contacts)?,
        "demo",
        None,
        &mut report,
    );
    println!("{}", imported.await?);

    // The service binds first, so that the links in the emails point at where it listens.
    let metrics = Arc::new(Metrics::new());
    let service = |listen: SocketAddr| ServiceSettings {
        app: app.clone(),
        keys: keys.clone(),
        listen,
        metrics: metrics.clone(),
        trusted_proxies: Vec::new(),
        worker: None,
        metrics_access: Default::default(),
    };
    let web = match Application::build(service(listen)).await {
        Ok(web) => web,
        // Something else has the port: any free one will do.
        Err(_) => {
            let web = Application::build(service(SocketAddr::new(listen.ip(), 0)))
                .await
                .context("starting the demo's web service")?;
            println!(
                "({listen} is taken; serving on {} instead)",
                web.local_addr()
            );
            web
        }
    };
    let base = format!("http://{}", web.local_addr());
    let outbox = dir.join("outbox");
    let letterhead = || -> anyhow::Result<Letterhead> {
        Ok(Letterhead {
            keys: keys.clone(),
            base_url: base.clone(),
            from: Mailbox::new(Some(SENDER_NAME.into()), SENDER_ADDRESS.parse()?),
            unsubscribe_mailto: None,
            dkim: DkimKeys::default(),
            return_path: None,
            publisher: publisher(),
            reply_to: None,
            providers: Default::default(),
        })
    };
    let app = app
        .clone()
        .with_base_url(&base)
        .with_sender_domains(vec![SENDER_DOMAIN.into()])
        .with_mailer(Mailer {
            transport: Transport::Outbox(outbox.clone()),
            letterhead: letterhead()?,
        });

    let newsletter = CampaignDraft {
        name: "Autumn newsletter".into(),
        topic: "news".into(),
        subject: "News from Hertford and Stortford".into(),
        html_template: NEWSLETTER.into(),
        constituencies: vec![DEMO_CONSTITUENCY.into()],
        ..CampaignDraft::default()
    };
    let hustings = CampaignDraft {
        name: "Hustings".into(),
        topic: "events".into(),
        subject: "Hustings at the Corn Exchange: come and ask".into(),
        html_template: EVENT.into(),
        constituencies: vec![DEMO_CONSTITUENCY.into()],
        event_title: Some("Hustings at the Corn Exchange".into()),
        event_starts_at: Some((Utc::now() + chrono::Duration::days(14)).to_rfc3339()),
        event_venue: Some("Hertford Corn Exchange, Fore Street".into()),
        event_postcode: Some("SG14 1BA".into()),
        ..CampaignDraft::default()
    };
    let mut queued = Vec::new();
    for draft in [newsletter, hustings] {
        println!(
            "\n$ canvass campaign create --name '{}' --topic {} ... --constituency {DEMO_CONSTITUENCY}",
            draft.name, draft.topic
        );
        let id = campaigns::create(&app, me, draft).await?;
        println!("{id}");
        if queued.is_empty() {
            println!("$ canvass campaign test {id} --to {TESTER} --as amira.hassan@example.org");
            let to = [TESTER.to_owned()];
            let sent = campaigns::test(&app, me, id, &to, Some("amira.hassan@example.org"));
            println!("{} test message(s) of campaign {id} sent", sent.await?);
        }
        println!("$ canvass campaign queue {id}");
        println!("{}", campaigns::queue(&app, me, id).await?);
        queued.push(id);
    }

    // A reminder written in Markdown, from last month's newsletter, scheduled for a week on.
    println!("\n$ canvass campaign copy {}", queued[0]);
    let reminder = campaigns::copy(&app, me, queued[0], campaigns::CopyFor::Everyone).await?;
    println!("{reminder}");
    println!(
        "$ canvass campaign edit {reminder} --name 'Polling day reminder' --subject \
         'Polling day: polls open 7am to 10pm' --markdown reminder.md"
    );
    let changes = CampaignChanges {
        name: Some("Polling day reminder".into()),
        subject: Some("Polling day: polls open 7am to 10pm".into()),
        markdown: Some(REMINDER.into()),
        ..CampaignChanges::default()
    };
    campaigns::edit(&app, me, reminder, changes).await?;
    let week_on = (Utc::now() + chrono::Duration::days(7))
        .with_timezone(&chrono_tz::Europe::London)
        .format("%Y-%m-%d 09:00")
        .to_string();
    println!("$ canvass campaign schedule {reminder} --at '{week_on}'");
    let at = campaigns::schedule(&app, me, reminder, &week_on).await?;
    println!("campaign {reminder} will be queued at {}", at.to_rfc3339());

    // The staff, as the console sees them: an admin, and an organiser of the sample
    // constituency whose draft waits for a second person's approval.
    println!(
        "\n$ canvass staff user add {ADMIN} --name 'Ada Admin' --role admin\n\
         $ canvass staff user add {TESTER} --name 'Olu Organiser' --role organiser \
         --constituency {DEMO_CONSTITUENCY}"
    );
    let staff = [
        (ADMIN, "Ada Admin", "admin", None),
        (
            TESTER,
            "Olu Organiser",
            "organiser",
            Some(DEMO_CONSTITUENCY),
        ),
    ];
    let mut passwords = Vec::new();
    for (email, name, role, constituency) in staff {
        passwords.push(demo_person(&app, email, name, role, constituency).await?);
    }
    let organiser = Actor::Staff(StaffMember {
        name: TESTER.into(),
        role: Role::Organiser,
        scope: Scope::of(vec![ConstituencyCode::parse(DEMO_CONSTITUENCY)?]),
    });
    let canvassing = CampaignDraft {
        name: "Canvassing this Saturday".into(),
        topic: "events".into(),
        subject: "Knock on doors with us this Saturday".into(),
        markdown: Some(CANVASSING.into()),
        constituencies: vec![DEMO_CONSTITUENCY.into()],
        ..CampaignDraft::default()
    };
    let waiting = campaigns::create(&app, &organiser, canvassing).await?;
    campaigns::submit(&app, &organiser, waiting)
        .await?
        .told()
        .await;
    println!(
        "(Olu writes campaign {waiting}, \"Canvassing this Saturday\", and asks for approval)"
    );

    let mut worker = Worker::of(
        &app,
        WorkerSettings {
            letterhead: letterhead()?,
            relays: Transport::Outbox(outbox.clone()).into(),
            metrics: metrics.clone(),
            sending: Sending::default(),
        },
    );
    println!("\n$ canvass worker --drain");
    let sent = worker.drain().await?;
    println!(
        "sent {}, skipped {}, failed {}, retried {}",
        sent.sent, sent.skipped, sent.failed, sent.retried
    );

    println!("\n$ canvass campaign report {}", queued[0]);
    print!(
        "{}",
        report_table(&campaigns::report(&app, &Actor::Operator, queued[0]).await?)
    );

    let Held::Contact(amira) = contacts::view(&app, me, "amira.hassan@example.org").await? else {
        anyhow::bail!("the sample holds Amira");
    };
    let unsubscribe = keys.sign(Purpose::Unsubscribe, &amira.public_id);
    let preferences = keys.sign(Purpose::Preferences, &amira.public_id);

    let canvass = this_program();
    let served = if serve {
        ", served now"
    } else {
        " (served by `canvass serve` on this database)"
    };
    println!(
        "\nThe messages are in {outbox}/ (one .eml file each; open one in a mail client).\n\
         Amira's links{served}:\n  \
         unsubscribe  {base}/u/{unsubscribe}\n  \
         preferences  {base}/p/{preferences}\n\
         \nLater, with CANVASS_DATABASE_URL={url}:\n  \
         {canvass} campaign list\n  \
         {canvass} contact export amira.hassan@example.org\n  \
         {canvass} serve",
        outbox = outbox.display(),
        unsubscribe = unsubscribe.as_str(),
        preferences = preferences.as_str(),
    );
    // Last, so that it is what a newcomer reads first: the screen the staff will use.
    println!(
        "\nThe staff console{served}:\n\n    {base}/admin\n\n  \
         {ADMIN:<32} password {admin}  (admin)\n  \
         {TESTER:<32} password {organiser}  (organiser, {CONSTITUENCY_NAME})\n\n\
         Sign in as Ada Admin: Olu Organiser's \"Canvassing this Saturday\" waits for her \
         approval. The passwords are new each time the demo runs.",
        admin = passwords[0],
        organiser = passwords[1],
    );
    if serve {
        println!("\nServing {base} until Ctrl-C.");
        web.run_until_stopped(shutdown_signal()).await?;
    }
    app.close().await;
    Ok(())
}

/// Puts a person on the demo's staff (again, when the demo ran before) with a new password,
/// set through their link as they would; the password.
async fn demo_person(
    app: &App,
    email: &str,
    name: &str,
    role: &str,
    constituency: Option<&str>,
) -> anyhow::Result<String> {
    let me = &Actor::Operator;
    let constituencies: Vec<String> = constituency.into_iter().map(Into::into).collect();
    let added = match staff::add(app, me, email, name, role, &constituencies).await {
        Ok(added) => added,
        Err(AppError::Conflict { .. }) => staff::renew_password_link(app, me, email).await?,
        Err(other) => return Err(other.into()),
    };
    let secret = added.link.rsplit('/').next().unwrap_or_default();
    let password = demo_password();
    staff::set_password(app, secret, &password, &password, None).await?;
    Ok(password)
}

/// A password of 16 letters and digits, in four groups, easy to type from the screen.
fn demo_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let letters: Vec<char> = (0..16)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    letters
        .chunks(4)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// How to run this program again from here: `canvass` when it is on the PATH, else its path.
fn this_program() -> String {
    let exe = std::env::current_exe().ok();
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| Some(dir.join("canvass")) == exe)
    });
    match exe {
        Some(exe) if !on_path => {
            let cwd = std::env::current_dir().unwrap_or_default();
            exe.strip_prefix(&cwd).unwrap_or(&exe).display().to_string()
        }
        _ => "canvass".to_owned(),
    }
}
