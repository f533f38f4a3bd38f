//! The visitor's consent for one request: the consent cookie's categories (or the
//! site's default), narrowed by Global Privacy Control (`Sec-GPC: 1`), which opts
//! the visitor out of the categories `[consent] gpc_opt_out` names.

use super::{Category, ConsentSet, Policy};

/// Whether a `Sec-GPC` header value signals an opt-out: exactly `1`, as the
/// Global Privacy Control specification defines it (any other value is no signal).
pub fn global_privacy_control(value: &[u8]) -> bool {
    value.trim_ascii() == b"1"
}

/// The categories Global Privacy Control opts out of when `[consent] gpc_opt_out`
/// is not written: the ones that sell or share a visitor's data or record them.
pub const GPC_OPT_OUT_DEFAULT: [Category; 4] =
    [Category::Advertising, Category::Marketing, Category::Analytics, Category::SessionReplay];

impl Policy {
    /// The consent a request carries: the consent cookie's categories (else the
    /// site's default), minus the `gpc_opt_out` categories when the visitor's
    /// browser sends Global Privacy Control (`gpc`). GPC wins over the cookie: a
    /// cookie granting `analytics` does not bring analytics back while GPC is on.
    pub fn consent_for<'a>(&self, cookie_headers: impl Iterator<Item = &'a str>, gpc: bool) -> ConsentSet {
        let consent = self.consent_from_cookie_header(cookie_headers);
        if gpc { consent.without(self.gpc_opt_out.iter().copied()) } else { consent }
    }

    /// The consent cookie's categories, or the default (Global Privacy Control not considered).
    pub fn consent_from_cookie_header<'a>(&self, cookie_headers: impl Iterator<Item = &'a str>) -> ConsentSet {
        for header in cookie_headers {
            for pair in header.split(';') {
                if let Some((name, value)) = pair.trim().split_once('=')
                    && name.trim() == self.consent_cookie
                {
                    let value =
                        percent_encoding::percent_decode_str(value.trim().trim_matches('"')).decode_utf8_lossy();
                    return ConsentSet::parse_list(&value);
                }
            }
        }
        self.consent_default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped rules: default `support` without a cookie, GPC opting out of the default four.
    fn shipped() -> Policy {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        crate::rules::load_dir(&dir).unwrap()
    }

    #[test]
    fn only_exactly_one_is_a_gpc_signal() {
        assert!(global_privacy_control(b"1"));
        assert!(global_privacy_control(b" 1 "));
        for no in [&b"0"[..], b"", b"true", b"11", b"1, 1"] {
            assert!(!global_privacy_control(no), "{no:?}");
        }
    }

    #[test]
    fn gpc_opts_out_of_advertising_marketing_analytics_and_session_replay_by_default() {
        let policy = shipped();
        assert_eq!(policy.gpc_opt_out, GPC_OPT_OUT_DEFAULT);
        let cookie = ["tw_consent=support,analytics,advertising,marketing,session_replay,performance"];
        let consent = policy.consent_for(cookie.into_iter(), true);
        assert_eq!(consent.to_string(), "essential,support,performance");
    }

    #[test]
    fn gpc_wins_over_a_cookie_granting_analytics() {
        let policy = shipped();
        let cookie = ["theme=dark; tw_consent=analytics"];
        assert!(policy.consent_for(cookie.into_iter(), false).grants(Category::Analytics));
        assert!(!policy.consent_for(cookie.into_iter(), true).grants(Category::Analytics));
    }

    #[test]
    fn gpc_leaves_the_default_consent_categories_it_does_not_name() {
        let policy = shipped();
        let consent = policy.consent_for(std::iter::empty(), true);
        assert_eq!(consent, policy.consent_default);
        assert!(consent.grants(Category::Support));
    }

    #[test]
    fn an_empty_gpc_opt_out_list_ignores_gpc() {
        let mut policy = shipped();
        policy.gpc_opt_out.clear();
        let cookie = ["tw_consent=analytics"];
        assert_eq!(policy.consent_for(cookie.into_iter(), true), policy.consent_for(cookie.into_iter(), false));
    }

    #[test]
    fn without_gpc_the_consent_is_the_cookies() {
        let policy = shipped();
        let cookie = ["tw_consent=advertising"];
        assert_eq!(
            policy.consent_for(cookie.into_iter(), false),
            policy.consent_from_cookie_header(cookie.into_iter())
        );
    }
}
