//! Vendor categories and the visitor's consent, as closed sets so they can be
//! metric labels.

use std::fmt;

/// What a vendor does; consent is granted per category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Essential,
    Support,
    Analytics,
    Advertising,
    SessionReplay,
    TagManager,
    Marketing,
    Cdp,
    Performance,
    Social,
}

impl Category {
    pub const ALL: [Category; 10] = [
        Category::Essential,
        Category::Support,
        Category::Analytics,
        Category::Advertising,
        Category::SessionReplay,
        Category::TagManager,
        Category::Marketing,
        Category::Cdp,
        Category::Performance,
        Category::Social,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Essential => "essential",
            Category::Support => "support",
            Category::Analytics => "analytics",
            Category::Advertising => "advertising",
            Category::SessionReplay => "session_replay",
            Category::TagManager => "tag_manager",
            Category::Marketing => "marketing",
            Category::Cdp => "cdp",
            Category::Performance => "performance",
            Category::Social => "social",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The categories a visitor has granted. `essential` is always granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConsentSet(u16);

impl ConsentSet {
    pub fn essential_only() -> Self {
        ConsentSet(Category::Essential.bit())
    }

    pub fn from_categories(cats: impl IntoIterator<Item = Category>) -> Self {
        let mut set = Self::essential_only();
        for c in cats {
            set.0 |= c.bit();
        }
        set
    }

    /// Parses a comma/space/`|`-separated list (the consent cookie value); unknown
    /// names are ignored, never an error, since the cookie is visitor-controlled.
    pub fn parse_list(value: &str) -> Self {
        Self::from_categories(
            value.split([',', ' ', '|', '+']).filter_map(|s| Category::parse(s.trim().to_ascii_lowercase().as_str())),
        )
    }

    /// This set without `cats`; `essential` stays granted.
    pub fn without(self, cats: impl IntoIterator<Item = Category>) -> Self {
        let mut set = self;
        for c in cats {
            set.0 &= !c.bit();
        }
        set.0 |= Category::Essential.bit();
        set
    }

    pub fn grants(self, c: Category) -> bool {
        self.0 & c.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Category> {
        Category::ALL.into_iter().filter(move |c| self.grants(*c))
    }
}

impl fmt::Display for ConsentSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Category::as_str).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn essential_is_always_granted() {
        assert!(ConsentSet::parse_list("").grants(Category::Essential));
        assert!(ConsentSet::parse_list("garbage").grants(Category::Essential));
    }

    #[test]
    fn cookie_list_is_lenient_about_separators_and_case() {
        let c = ConsentSet::parse_list("Support, analytics|bogus");
        assert!(c.grants(Category::Support));
        assert!(c.grants(Category::Analytics));
        assert!(!c.grants(Category::Advertising));
        assert_eq!(c.to_string(), "essential,support,analytics");
    }

    #[test]
    fn without_removes_categories_but_never_essential() {
        let c = ConsentSet::parse_list("support,analytics,advertising");
        let c = c.without([Category::Analytics, Category::Essential]);
        assert_eq!(c.to_string(), "essential,support,advertising");
    }
}
