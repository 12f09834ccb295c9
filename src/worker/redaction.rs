//! What the worker keeps of an SMTP answer: without the addresses and the name it often quotes.

/// `text` with every word holding an `@` replaced: SMTP answers often quote the address.
pub(super) fn without_addresses(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.contains('@') {
                "[address]"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` with each word of `name` (in any case) replaced.
pub(super) fn without_name(text: &str, name: Option<&str>) -> String {
    let mut text = text.to_owned();
    for word in name.unwrap_or_default().split_whitespace() {
        let word = word.to_lowercase();
        if word.chars().count() < 2 {
            continue;
        }
        while let Some(at) = text.to_lowercase().find(&word) {
            // Lower-casing can change a text's length: replace only where the bytes line up.
            match text.get(at..at + word.len()) {
                Some(found) if found.to_lowercase() == word => {
                    text.replace_range(at..at + word.len(), "[name]")
                }
                _ => break,
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_taken_out_of_server_answers() {
        assert_eq!(
            without_name(
                "550 5.7.1 rejected for [address] (Amira HASSAN) policy",
                Some("Amira Hassan")
            ),
            "550 5.7.1 rejected for [address] ([name] [name]) policy"
        );
        assert_eq!(without_name("250 ok", None), "250 ok");
    }

    #[test]
    fn addresses_are_taken_out_of_server_answers() {
        assert_eq!(
            without_addresses("550 5.1.1 <amira@example.org>: Recipient address rejected"),
            "550 5.1.1 [address] Recipient address rejected"
        );
    }
}
