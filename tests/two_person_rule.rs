//! The two-person rule under races, on both engines: the author of an approved draft edits it at
//! the very moment they queue it, schedule it, or the worker queues it as its time comes, 50
//! times each. The version approved, the version queued and the version mailed must be one: no
//! version nobody approved is queued, scheduled, queued by the worker, or sent.

mod support;

use canvass::app::{Actor, campaigns};
use canvass::domain::{CampaignDraft, CampaignState, Role, Scope, StaffMember};
use support::{TestStore, on_both_backends};

on_both_backends!(
    an_edit_raced_against_queue_or_schedule_never_lets_an_unapproved_version_out,
    whoever_wrote_any_version_cannot_approve_a_later_one,
);

const PEOPLE: &str = "email,name,postcode,topics,consent_at\n\
    amira@example.org,Amira Hassan,SG13 8EQ,news,2026-09-14T18:30:00Z\n\
    ben@example.org,Ben Okafor,SG1 2AA,news,2026-09-14T18:30:00Z\n";

const TRIES: usize = 50;

/// An admin of the staff, signed in (as the console or their own token would have them).
async fn admin(db: &TestStore, name: &str) -> Actor {
    support::console::add_staff(db, name, "admin", &[]).await;
    Actor::Staff(StaffMember {
        name: name.into(),
        role: Role::Admin,
        scope: Scope::Everyone,
    })
}

fn draft() -> CampaignDraft {
    serde_json::from_value(serde_json::json!({
        "name": "Polling day", "topic": "news", "subject": "Approved",
        "html_template": "<p>Approved text for {{contact.name}}</p>"
    }))
    .unwrap()
}

/// Where the draft leaves for its recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// Its author queues it.
    Queue,
    /// Its author schedules it.
    Schedule,
    /// It was scheduled, and the worker queues it as it comes due.
    Due,
}

async fn an_edit_raced_against_queue_or_schedule_never_lets_an_unapproved_version_out(
    db: TestStore,
) {
    db.load_sample_directory().await;
    db.import_people(PEOPLE).await;
    let app = db.app();
    let author = admin(&db, "olu@hq.example.org").await;
    let approver = admin(&db, "hana@hq.example.org").await;
    let mut through = [0, 0, 0];
    for door in [Door::Queue, Door::Schedule, Door::Due] {
        for attempt in 0..TRIES {
            let id = campaigns::create(&app, &author, draft()).await.unwrap();
            campaigns::approve(&app, &approver, id, 1).await.unwrap();
            if door == Door::Due {
                campaigns::schedule(&app, &author, id, "2030-01-01T09:00:00Z")
                    .await
                    .unwrap();
                db.execute(
                    "UPDATE campaigns SET scheduled_at = '2020-01-01T09:00:00+00:00' \
                     WHERE state = 'draft' AND scheduled_at IS NOT NULL",
                )
                .await;
            }
            let edit = async {
                let changes = serde_json::from_value(serde_json::json!({
                    "subject": "Unapproved",
                    "html_template": "<p>Unapproved text</p>"
                }))
                .unwrap();
                campaigns::edit(&app, &author, id, changes)
                    .await
                    .map_err(|e| e.to_string())
            };
            let send = async {
                match door {
                    Door::Queue => campaigns::queue(&app, &author, id)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Door::Schedule => {
                        campaigns::schedule(&app, &author, id, "2030-01-01T09:00:00Z")
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }
                    Door::Due => match app
                        .store
                        .queue_due_campaigns(canvass::store::Imprint::Set)
                        .await
                    {
                        Ok(queued) if queued.iter().any(|(queued, _)| *queued == id) => Ok(()),
                        Ok(_) => Err("not queued".to_owned()),
                        Err(e) => Err(e.to_string()),
                    },
                }
            };
            // Each starts first half of the time.
            let (edited, sent) = match attempt % 2 {
                0 => tokio::join!(edit, send),
                _ => {
                    let (sent, edited) = tokio::join!(send, edit);
                    (edited, sent)
                }
            };
            let campaign = app.store.campaign(id).await.unwrap().unwrap();
            let approved = campaign.approval.approved_by.is_some();
            let left = match door {
                Door::Queue | Door::Due => campaign.state == CampaignState::Queued,
                Door::Schedule => campaign.scheduled_at.is_some(),
            };
            if left {
                assert!(
                    approved,
                    "{door:?} {attempt}: left without an approval of its version"
                );
                assert_eq!(campaign.spec.subject, "Approved", "{door:?} {attempt}");
                through[door as usize] += 1;
            } else {
                assert!(
                    sent.is_err() || edited.is_ok(),
                    "{door:?} {attempt}: answered done but did not happen"
                );
            }
            if campaign.state == CampaignState::Queued {
                assert!(
                    edited.is_err(),
                    "{door:?} {attempt}: an edit landed on a queued campaign"
                );
            }
            if edited.is_ok() {
                assert!(!approved, "an edit after approval withdraws it");
                assert_eq!(campaign.approval.version, 2);
            }
        }
    }
    // The schedules left standing come due: the worker queues them all, and sends everything.
    db.execute(
        "UPDATE campaigns SET scheduled_at = '2020-01-01T09:00:00+00:00' \
         WHERE scheduled_at IS NOT NULL",
    )
    .await;
    let due = app
        .store
        .queue_due_campaigns(canvass::store::Imprint::Set)
        .await
        .unwrap();
    assert_eq!(due.len(), through[Door::Schedule as usize]);
    let outbox = db.dir.path().join("outbox");
    let mut worker = support::outbox_worker(&db, &outbox);
    let totals = worker.drain().await.unwrap();
    let messages: Vec<String> = std::fs::read_dir(&outbox)
        .map(|dir| {
            dir.map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    let queued: usize = through.iter().sum();
    assert_eq!(messages.len(), queued * 2, "{totals:?}");
    for message in &messages {
        assert!(message.contains("Subject: Approved"), "{message}");
        assert!(
            !message.contains("Unapproved"),
            "an unapproved version was mailed"
        );
    }
    eprintln!(
        "of {TRIES} races each, the approved version left by queue {}, by schedule {}, by the \
         worker {}; the edit won the rest",
        through[0], through[1], through[2]
    );
    db.assert_counts_kept().await;
}

/// Hana writes version 2 of Olu's draft and Olu writes version 3: neither may approve it, since
/// each wrote a version of what would go out, nor a copy of it; a third person may.
async fn whoever_wrote_any_version_cannot_approve_a_later_one(db: TestStore) {
    db.load_sample_directory().await;
    db.import_people(PEOPLE).await;
    let app = db.app();
    let olu = admin(&db, "olu@hq.example.org").await;
    let hana = admin(&db, "hana@hq.example.org").await;
    let id = campaigns::create(&app, &olu, draft()).await.unwrap();
    for (author, subject) in [(&hana, "Second"), (&olu, "Third")] {
        let changes = serde_json::from_value(serde_json::json!({ "subject": subject })).unwrap();
        campaigns::edit(&app, author, id, changes).await.unwrap();
    }
    for author in [&hana, &olu] {
        let refused = campaigns::approve(&app, author, id, 3).await;
        assert!(
            matches!(refused, Err(canvass::app::AppError::Denied(_))),
            "{author}: {refused:?}"
        );
    }
    let campaign = app.store.campaign(id).await.unwrap().unwrap();
    assert!(campaign.approval.approved_by.is_none());
    assert!(campaign.approval.written_by(&hana.to_string()));
    // A copy is the same words: whoever wrote them, or copied them, still cannot approve them.
    let dan = admin(&db, "dan@hq.example.org").await;
    let copy = campaigns::copy(&app, &dan, id, campaigns::CopyFor::Everyone)
        .await
        .unwrap();
    for author in [&hana, &olu, &dan] {
        let refused = campaigns::approve(&app, author, copy, 1).await;
        assert!(
            matches!(refused, Err(canvass::app::AppError::Denied(_))),
            "{author} approved a copy: {refused:?}"
        );
    }
    // Nor may a token without an owner: it is no second person.
    let token = Actor::Staff(StaffMember {
        name: "press office".into(),
        role: Role::Admin,
        scope: Scope::Everyone,
    });
    let refused = campaigns::approve(&app, &token, id, 3).await;
    assert!(
        matches!(refused, Err(canvass::app::AppError::Denied(_))),
        "{refused:?}"
    );
    let cara = admin(&db, "cara@hq.example.org").await;
    campaigns::approve(&app, &cara, id, 3).await.unwrap();
    assert_eq!(campaigns::queue(&app, &olu, id).await.unwrap(), 2);
}
