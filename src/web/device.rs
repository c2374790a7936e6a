//! Device cookies (the OWASP "Slow Down Online Guessing Attacks with Device Cookies"
//! approach): every successful sign-in leaves a signed cookie naming the user and a
//! random nonce. A browser that shows a valid one for the name it signs in as has signed
//! in as that user before, so it is judged by its own failures only and is not refused
//! when someone else's guessing has blocked the name.
//!
//! The value is `name:nonce:issued` signed with [`Signer`] for [`PURPOSE`]. No row per
//! device is stored; a forged, altered, expired or other user's cookie simply does not
//! count.

use axum::http::{HeaderMap, HeaderValue, header};
use chrono::{DateTime, Duration, Utc};
use tower_sessions::cookie::time::Duration as CookieDuration;
use tower_sessions::cookie::{Cookie, SameSite};

use super::signing::Signer;

/// What device cookies are signed for; no other signed value is accepted as one.
pub const PURPOSE: &str = "device";

/// Name of the cookie over plain HTTP.
pub const COOKIE: &str = "batchboard_device";

/// Name of the cookie with `secure_cookies`: `__Host-` makes browsers refuse it unless it
/// is `Secure`, for the whole host and set by the host itself.
pub const SECURE_COOKIE: &str = "__Host-batchboard_device";

/// How long a browser stays known without signing in again.
pub const LIFETIME: Duration = Duration::days(365);

/// Random bytes in a nonce (hex in the cookie).
const NONCE_BYTES: usize = 16;

/// One browser that signed in as a user: the nonce of its device cookie. Failures made
/// with it are counted against it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceId(String);

impl DeviceId {
    /// The nonce, as the throttle keys it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The cookie's name under `secure_cookies`.
pub fn cookie_name(secure_cookies: bool) -> &'static str {
    if secure_cookies {
        SECURE_COOKIE
    } else {
        COOKIE
    }
}

/// The `Set-Cookie` value of a fresh device cookie for `name`, issued `now`; `None` for
/// a name that cannot travel in a cookie (user names are plain slugs, so only a row
/// written around the rules could have one).
pub fn issue(
    signer: &Signer,
    name: &str,
    now: DateTime<Utc>,
    secure_cookies: bool,
) -> Option<HeaderValue> {
    let nonce: [u8; NONCE_BYTES] = rand::random();
    let nonce: String = nonce.iter().map(|byte| format!("{byte:02x}")).collect();
    let value = signer.sign(PURPOSE, &format!("{name}:{nonce}:{}", now.timestamp()));
    let cookie = Cookie::build((cookie_name(secure_cookies), value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure_cookies)
        .max_age(CookieDuration::seconds(LIFETIME.num_seconds()))
        .build();
    let travels = name
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, ';' | ',' | '"' | '\\'));
    travels
        .then(|| HeaderValue::from_str(&cookie.to_string()).ok())
        .flatten()
}

/// The device of the request's cookie when it is genuine, unexpired at `now`, and was
/// issued to `name`.
pub fn recognise(
    signer: &Signer,
    headers: &HeaderMap,
    secure_cookies: bool,
    name: &str,
    now: DateTime<Utc>,
) -> Option<DeviceId> {
    let wanted = cookie_name(secure_cookies);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|cookie| cookie.name() == wanted)
        .find_map(|cookie| device_in(signer, cookie.value(), name, now))
}

fn device_in(signer: &Signer, signed: &str, name: &str, now: DateTime<Utc>) -> Option<DeviceId> {
    let value = signer.verify(PURPOSE, signed)?;
    // From the right: the nonce and the time never hold a ':'.
    let mut parts = value.rsplitn(3, ':');
    let (issued, nonce, owner) = (parts.next()?, parts.next()?, parts.next()?);
    if owner != name {
        return None;
    }
    let issued = DateTime::from_timestamp(issued.parse().ok()?, 0)?;
    if issued > now || now - issued > LIFETIME {
        return None;
    }
    Some(DeviceId(nonce.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::from_key(b"0123456789abcdef0123456789abcdef")
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("a time")
    }

    /// The request headers of a browser that kept the cookie `set_cookie` set.
    fn sent_back(set_cookie: &HeaderValue) -> HeaderMap {
        let text = set_cookie.to_str().expect("text");
        let pair = text.split(';').next().expect("name=value");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {pair}")).expect("a header"),
        );
        headers
    }

    #[test]
    fn a_cookie_is_recognised_for_its_own_user_only() {
        let set = issue(&signer(), "ann", now(), false).expect("a cookie");
        let headers = sent_back(&set);
        let device = recognise(&signer(), &headers, false, "ann", now());
        assert!(device.is_some());
        assert_eq!(recognise(&signer(), &headers, false, "bob", now()), None);
        // Another key (another installation) did not sign it.
        let other = Signer::from_key(b"another key, also 32 bytes long!");
        assert_eq!(recognise(&other, &headers, false, "ann", now()), None);
    }

    #[test]
    fn each_sign_in_gets_a_new_device() {
        let first = recognise(
            &signer(),
            &sent_back(&issue(&signer(), "ann", now(), false).expect("a cookie")),
            false,
            "ann",
            now(),
        );
        let second = recognise(
            &signer(),
            &sent_back(&issue(&signer(), "ann", now(), false).expect("a cookie")),
            false,
            "ann",
            now(),
        );
        assert_ne!(first, second);
    }

    #[test]
    fn an_expired_or_altered_cookie_is_not_recognised() {
        let headers = sent_back(&issue(&signer(), "ann", now(), false).expect("a cookie"));
        let later = now() + LIFETIME + Duration::seconds(1);
        assert_eq!(recognise(&signer(), &headers, false, "ann", later), None);
        let forged = signer().sign("login-csrf", "ann:00:1800000000");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE}={forged}")).expect("a header"),
        );
        assert_eq!(recognise(&signer(), &headers, false, "ann", now()), None);
    }

    #[test]
    fn the_cookie_is_long_lived_httponly_lax_and_secure_with_the_host_prefix_when_asked() {
        let plain = issue(&signer(), "ann", now(), false).expect("a cookie");
        let plain = plain.to_str().expect("text");
        assert!(plain.starts_with("batchboard_device="), "{plain}");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=31536000"] {
            assert!(plain.contains(attribute), "{attribute} in {plain}");
        }
        assert!(!plain.contains("Secure"), "{plain}");
        let secure = issue(&signer(), "ann", now(), true).expect("a cookie");
        let secure = secure.to_str().expect("text");
        assert!(secure.starts_with("__Host-batchboard_device="), "{secure}");
        assert!(secure.contains("Secure"), "{secure}");
        assert!(!secure.contains("Domain"), "{secure}");
        // Read back under the name it was set with only.
        let headers = sent_back(&issue(&signer(), "ann", now(), true).expect("a cookie"));
        assert!(recognise(&signer(), &headers, true, "ann", now()).is_some());
        assert_eq!(recognise(&signer(), &headers, false, "ann", now()), None);
    }
}
