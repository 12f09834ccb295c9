//! How a search box is read.

use super::*;

#[test]
fn a_search_is_read_as_what_it_looks_like() {
    assert!(matches!(
        ContactSearch::parse(" Amira@Example.org "),
        Some(ContactSearch::Email(_))
    ));
    assert!(matches!(
        ContactSearch::parse("sg138eq"),
        Some(ContactSearch::Postcode(_))
    ));
    assert!(matches!(
        ContactSearch::parse("SG13 8"),
        Some(ContactSearch::PostcodePrefix(PostcodePrefix::Sector(_)))
    ));
    assert!(matches!(
        ContactSearch::parse("sg13"),
        Some(ContactSearch::PostcodePrefix(PostcodePrefix::District(_)))
    ));
    assert_eq!(
        ContactSearch::parse("Jo"),
        Some(ContactSearch::Text("Jo".into()))
    );
    assert_eq!(ContactSearch::parse("   "), None);
}
