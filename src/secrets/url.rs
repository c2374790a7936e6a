//! URLs as they may be shown: no user info, no secret-looking query values.

use reqwest::Url;

use super::REDACTED;
use super::list::{RedactionList, normalise};

/// Query keys that carry credentials in common APIs although the redaction list does
/// not name them (`sig` for signed URLs, `key` for API keys, `session`, `auth`, ...).
/// Matched as fragments, ignoring case and punctuation, like the redaction list.
const QUERY_KEY_HINTS: [&str; 6] = ["key", "pass", "pwd", "auth", "sig", "session"];

/// A URL with its secrets found: the text to show, and the values it hid.
pub(super) struct RedactedUrl {
    pub shown: String,
    pub hidden: Vec<String>,
}

/// `url` as it may be logged or shown: the user info replaced by `[redacted]`, and the
/// values of query (and fragment) keys that look secret too.
pub fn loggable_url(url: &Url, list: &RedactionList) -> String {
    redact_url(url, list).shown
}

/// The URLs inside `text` (whitespace-separated words that parse as URLs with a host,
/// quotes and brackets around them allowed) redacted; `None` when nothing was hidden.
pub(super) fn redact_urls_in(text: &str, list: &RedactionList) -> Option<RedactedUrl> {
    if !text.contains("://") {
        return None;
    }
    let mut shown = String::with_capacity(text.len());
    let mut hidden = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at(word_end);
        let core = word.trim_matches(|c: char| "'\"<>()[],;".contains(c));
        let redacted = core
            .contains("://")
            .then(|| Url::parse(core).ok())
            .flatten()
            .filter(Url::has_host)
            .map(|url| redact_url(&url, list))
            .filter(|redacted| !redacted.hidden.is_empty());
        match redacted {
            Some(redacted) => {
                shown.push_str(&word.replacen(core, &redacted.shown, 1));
                hidden.extend(redacted.hidden);
            }
            None => shown.push_str(word),
        }
        let spaces = after.len() - after.trim_start().len();
        shown.push_str(&after[..spaces]);
        rest = &after[spaces..];
    }
    (!hidden.is_empty()).then_some(RedactedUrl { shown, hidden })
}

fn redact_url(url: &Url, list: &RedactionList) -> RedactedUrl {
    let mut hidden = Vec::new();
    let user_info = if url.username().is_empty() && url.password().is_none() {
        ""
    } else {
        // The user name is shown nowhere but not masked in output: it is rarely
        // secret and often a common word.
        if let Some(password) = url.password() {
            hidden.push(password.to_owned());
            hidden.push(percent_decode(password));
        }
        "[redacted]@"
    };
    let host = url.host_str().unwrap_or_default();
    let port = url
        .port()
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    let query = url
        .query()
        .map(|query| format!("?{}", redact_pairs(query, list, &mut hidden)))
        .unwrap_or_default();
    let fragment = url
        .fragment()
        .map(|fragment| format!("#{}", redact_pairs(fragment, list, &mut hidden)))
        .unwrap_or_default();
    RedactedUrl {
        shown: format!(
            "{}://{user_info}{host}{port}{}{query}{fragment}",
            url.scheme(),
            url.path()
        ),
        hidden,
    }
}

/// `key=value&…` with the values of secret-looking keys replaced; the hidden values
/// (as written and decoded) are added to `hidden`.
fn redact_pairs(pairs: &str, list: &RedactionList, hidden: &mut Vec<String>) -> String {
    pairs
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !value.is_empty() && is_secret_key(key, list) => {
                hidden.push(value.to_owned());
                hidden.push(percent_decode(value));
                format!("{key}={REDACTED}")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret_key(raw_key: &str, list: &RedactionList) -> bool {
    let key = percent_decode(raw_key);
    let normalised = normalise(&key);
    list.matches(&key) || QUERY_KEY_HINTS.iter().any(|hint| normalised.contains(hint))
}

/// Decodes `%XX` escapes and `+` (a space in query strings); invalid escapes stay.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| text.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[at], escaped) {
            (_, Some(byte)) => {
                decoded.push(byte);
                at += 3;
            }
            (b'+', None) => {
                decoded.push(b' ');
                at += 1;
            }
            (byte, None) => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        let url = Url::parse(text).expect("a URL");
        loggable_url(&url, &RedactionList::default())
    }

    #[test]
    fn user_info_and_secret_query_values_are_hidden_and_the_rest_kept() {
        assert_eq!(
            shown("https://bob:hunter2@example.com/p?token=abc&page=2&Signature=x"),
            "https://[redacted]@example.com/p?token=[redacted]&page=2&Signature=[redacted]"
        );
        assert_eq!(
            shown("http://[::1]:8080/a?api_key=k%2B1&sort=asc#access_token=t0k"),
            "http://[::1]:8080/a?api_key=[redacted]&sort=asc#access_token=[redacted]"
        );
        assert_eq!(
            shown("https://example.com/plain?page=2"),
            "https://example.com/plain?page=2"
        );
    }

    #[test]
    fn keys_on_the_settings_list_are_hidden_in_queries_too() {
        let list = RedactionList::new(&["iban".to_owned()]);
        let url = Url::parse("https://x.example/pay?IBAN=DE123456&amount=5").expect("a URL");
        assert_eq!(
            loggable_url(&url, &list),
            "https://x.example/pay?IBAN=[redacted]&amount=5"
        );
    }

    #[test]
    fn urls_inside_text_are_found_and_their_secrets_reported() {
        let text = "curl -H x 'https://u:p%40ss@h.example/?token=t1+2' done";
        let found = redact_urls_in(text, &RedactionList::default()).expect("secrets found");
        assert_eq!(
            found.shown,
            "curl -H x 'https://[redacted]@h.example/?token=[redacted]' done"
        );
        for secret in ["p%40ss", "p@ss", "t1+2", "t1 2"] {
            assert!(found.hidden.contains(&secret.to_owned()), "{secret}");
        }
        assert!(
            redact_urls_in("see https://example.com/docs", &RedactionList::default()).is_none()
        );
        assert!(redact_urls_in("no url at all", &RedactionList::default()).is_none());
    }

    #[test]
    fn percent_decoding_keeps_invalid_escapes() {
        assert_eq!(percent_decode("a%20b+c%zz%4"), "a b c%zz%4");
    }
}
