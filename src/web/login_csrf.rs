//! The sign-in form's CSRF token, without a session: a signed double submit.
//!
//! `GET /login` must not write a session row per visitor (anyone could fill the table),
//! so its token cannot live in a session. Instead the page sets a short-lived cookie
//! holding a random value, and the form carries that value signed by the server's key
//! ([`super::signing::Signer`], purpose `login-csrf`). `POST /login` is accepted when the
//! form's token is a valid signature of the cookie's value: a cross-site page can make a
//! browser send the cookie, but cannot read it, nor sign a value of its own.
//!
//! Once signed in, pages use the synchronizer token kept in the session
//! ([`super::csrf`]).

use axum::http::{HeaderMap, HeaderValue, header};
use rand::Rng as _;
use subtle::ConstantTimeEq as _;

use super::signing::Signer;
use super::state::WebConfig;

/// Base name of the cookie (with secure cookies: `__Host-batchboard_login`).
pub const COOKIE: &str = "batchboard_login";

/// What the signature is for, so no other signed value can stand in for it.
const PURPOSE: &str = "login-csrf";

/// How long the cookie lives: a sign-in form left open longer is refused and shown again.
const LIFETIME_SECONDS: u32 = 2 * 60 * 60;

/// Hex characters in a cookie value (32 random bytes).
const VALUE_LEN: usize = 64;

/// The token for a sign-in form and the `Set-Cookie` that goes with it. A browser that
/// already holds a well-formed cookie keeps its value, so two open sign-in tabs both work.
pub fn issue(config: &WebConfig, signer: &Signer, headers: &HeaderMap) -> (String, HeaderValue) {
    let value = cookie_value(config, headers)
        .filter(|value| well_formed(value))
        .map_or_else(fresh_value, str::to_owned);
    let secure = if config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={value}; Path=/; Max-Age={LIFETIME_SECONDS}; HttpOnly; SameSite=Strict{secure}",
        config.cookie_name(COOKIE)
    );
    // Hex, a fixed name and fixed attributes: always a valid header value.
    let cookie = HeaderValue::from_str(&cookie)
        .unwrap_or_else(|_| unreachable!("the cookie is plain ASCII"));
    (signer.sign(PURPOSE, &value), cookie)
}

/// Whether `sent` (the form's token) is the signature of this request's cookie value.
pub fn verify(config: &WebConfig, signer: &Signer, headers: &HeaderMap, sent: &str) -> bool {
    let Some(cookie) = cookie_value(config, headers) else {
        return false;
    };
    signer
        .verify(PURPOSE, sent)
        .is_some_and(|signed| bool::from(signed.as_bytes().ct_eq(cookie.as_bytes())))
}

fn fresh_value() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn well_formed(value: &str) -> bool {
    value.len() == VALUE_LEN && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The value of the sign-in cookie in the request's `Cookie` headers, if any.
fn cookie_value<'a>(config: &WebConfig, headers: &'a HeaderMap) -> Option<&'a str> {
    let name = config.cookie_name(COOKIE);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::from_key(b"0123456789abcdef0123456789abcdef")
    }

    fn with_cookie(cookie: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(cookie).expect("a header value"),
        );
        headers
    }

    /// The `name=value` part of a `Set-Cookie`, as a browser would send it back.
    fn sent_back(set_cookie: &HeaderValue) -> HeaderMap {
        let text = set_cookie.to_str().expect("ASCII");
        with_cookie(text.split(';').next().expect("a pair"))
    }

    #[test]
    fn the_form_token_matches_only_its_own_cookie() {
        let config = WebConfig::default();
        let (token, cookie) = issue(&config, &signer(), &HeaderMap::new());
        assert!(verify(&config, &signer(), &sent_back(&cookie), &token));
        let (other_token, _) = issue(&config, &signer(), &HeaderMap::new());
        assert!(!verify(
            &config,
            &signer(),
            &sent_back(&cookie),
            &other_token
        ));
        assert!(!verify(&config, &signer(), &HeaderMap::new(), &token));
    }

    #[test]
    fn a_value_signed_with_another_key_or_purpose_is_refused() {
        let config = WebConfig::default();
        let (_, cookie) = issue(&config, &signer(), &HeaderMap::new());
        let value = sent_back(&cookie);
        let raw = cookie_value(&config, &value)
            .expect("the cookie")
            .to_owned();
        let other_key = Signer::from_key(b"another key, also 32 bytes long!");
        assert!(!verify(
            &config,
            &signer(),
            &value,
            &other_key.sign(PURPOSE, &raw)
        ));
        assert!(!verify(
            &config,
            &signer(),
            &value,
            &signer().sign("device", &raw)
        ));
        assert!(!verify(&config, &signer(), &value, &raw));
    }

    #[test]
    fn a_well_formed_cookie_is_kept_and_a_strange_one_replaced() {
        let config = WebConfig::default();
        let kept = "ab".repeat(32);
        let (token, cookie) = issue(
            &config,
            &signer(),
            &with_cookie(&format!("batchboard_login={kept}")),
        );
        assert!(cookie.to_str().expect("ASCII").contains(&kept));
        assert_eq!(signer().verify(PURPOSE, &token), Some(kept.as_str()));
        let (_, cookie) = issue(&config, &signer(), &with_cookie("batchboard_login=x;y"));
        assert!(
            !cookie
                .to_str()
                .expect("ASCII")
                .starts_with("batchboard_login=x")
        );
    }

    #[test]
    fn secure_cookies_are_host_prefixed_and_secure() {
        let config = WebConfig {
            secure_cookies: true,
            ..WebConfig::default()
        };
        let (token, cookie) = issue(&config, &signer(), &HeaderMap::new());
        let text = cookie.to_str().expect("ASCII");
        assert!(text.starts_with("__Host-batchboard_login="), "{text}");
        assert!(text.ends_with("; Secure"), "{text}");
        assert!(verify(&config, &signer(), &sent_back(&cookie), &token));
    }
}
