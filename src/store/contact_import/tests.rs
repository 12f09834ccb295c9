//! How many rows an import applies at a time beside other writers, and the text it copies.

use super::*;

#[test]
fn an_apply_grows_while_alone_and_holds_the_lock_briefly_while_others_write() {
    let ms = Duration::from_millis;
    assert_eq!(next_apply_rows(1_000, 1_000, ms(900), false), 2_000);
    assert_eq!(next_apply_rows(40_000, 40_000, ms(900), false), APPLY_ROWS);
    // 50,000 rows took a second: 30 ms is 1,500 of them.
    assert_eq!(next_apply_rows(50_000, 50_000, ms(1_000), true), 1_500);
    // Fast applies grow, but no more than twofold at a time.
    assert_eq!(next_apply_rows(1_000, 1_000, ms(1), true), 2_000);
    assert_eq!(next_apply_rows(1_000, 1_000, ms(10), true), 2_000);
    assert_eq!(next_apply_rows(1_000, 1_000, ms(60), true), 500);
    assert_eq!(next_apply_rows(200, 200, ms(5_000), true), APPLY_ROWS_LEAST);
    // An apply made early, for a repeated address, leaves the target as it was.
    assert_eq!(next_apply_rows(50_000, 1, ms(1), false), 50_000);
    assert_eq!(next_apply_rows(1_500, 3, ms(1), true), 1_500);
}

/// An import on SQLite notices another connection's commit (its own pool's, here) and
/// leaves the lock free for a while after its own last commit; its own commits do not count.
#[tokio::test]
async fn an_import_notices_another_writer_and_takes_turns() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/canvass.db", dir.path().display());
    let store = Store::connect(&url.parse().unwrap()).await.unwrap();
    store.migrate().await.unwrap();
    let Pool::Sqlite(pool) = store.pool() else {
        unreachable!("the store was opened on SQLite")
    };
    let mut import = store.contact_import("test").await.unwrap();
    let Stage::Sqlite(Staging::Own(conn)) = &mut import.connection else {
        unreachable!("an SQLite store imports on a connection of its own")
    };
    let sharing = &mut import.sharing;
    assert!(!sharing.before_apply(conn).await.unwrap());
    sqlx::raw_sql("BEGIN IMMEDIATE; COMMIT")
        .execute(&mut *conn)
        .await
        .unwrap();
    let committed = Instant::now();
    sharing.after_commit();
    assert!(!sharing.before_apply(conn).await.unwrap());

    sqlx::query("INSERT INTO topics (slug, name) VALUES ('other', 'Other')")
        .execute(pool)
        .await
        .unwrap();
    assert!(sharing.before_apply(conn).await.unwrap());
    assert!(committed.elapsed() >= SHARED_APPLY_GAP);
    drop(import);
    store.close().await;
}

#[test]
fn copy_text_escapes_what_would_end_a_field_or_a_row() {
    let mut text = String::new();
    copy_row(
        &mut text,
        &[Some("a\\b\tc"), None, Some("d\ne\rf"), Some("")],
    );
    assert_eq!(text, "a\\\\b\\tc\t\\N\td\\ne\\rf\t\n");
}
