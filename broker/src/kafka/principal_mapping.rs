//! Kafka's `ssl.principal.mapping.rules`: how a client certificate's
//! subject (`CN=alice,OU=apps,O=corp`) becomes a principal (`alice`).
//!
//! The rules are tried in order; the first whose pattern matches the whole
//! subject rewrites it with its replacement (`$1` names a group), then
//! lower- or upper-cases it (`/L`, `/U`); `DEFAULT` keeps the subject as
//! it is. A subject no rule matches is refused, as Kafka refuses it:
//! `RULE:^CN=([^,]+),OU=apps,O=corp$/$1/L,DEFAULT`.

use regex::Regex;

/// One rule.
#[derive(Debug, Clone)]
enum Rule {
    /// The subject, unchanged.
    Default,
    /// A rewrite of the subjects `whole` matches.
    Rewrite {
        whole: Regex,
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// The rules of a listener.
#[derive(Debug, Clone)]
pub struct PrincipalMapping {
    rules: Vec<Rule>,
}

impl Default for PrincipalMapping {
    /// `DEFAULT`: the subject is the principal.
    fn default() -> Self {
        PrincipalMapping {
            rules: vec![Rule::Default],
        }
    }
}

impl PrincipalMapping {
    /// The rules of `text`, Kafka's syntax, or what is wrong with them.
    pub fn parse(text: &str) -> Result<PrincipalMapping, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim_start_matches([' ', ',', '\n', '\t']);
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)
                    .ok_or_else(|| format!("rule {rest:?} is not RULE:pattern/replacement/[LU]"))?;
                let (replacement, after) = until_slash(after)
                    .ok_or_else(|| format!("rule {rest:?} is not RULE:pattern/replacement/[LU]"))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let compile =
                    |p: &str| Regex::new(p).map_err(|e| format!("rule pattern {pattern:?}: {e}"));
                rules.push(Rule::Rewrite {
                    whole: compile(&format!("^(?:{pattern})$"))?,
                    pattern: compile(&pattern)?,
                    replacement: replacement.replace("\\/", "/"),
                    case,
                });
                rest = after;
            } else {
                return Err(format!(
                    "{rest:?} is neither DEFAULT nor RULE:pattern/replacement/[LU]"
                ));
            }
            let next = rest.trim_start_matches([' ', '\n', '\t']);
            rest = match next.strip_prefix(',') {
                Some(after) => after.trim_start_matches([' ', '\n', '\t']),
                None if next.is_empty() => next,
                None => return Err(format!("{next:?}: rules are separated by commas")),
            };
        }
        if rules.is_empty() {
            return Err("no rules (DEFAULT keeps the subject)".into());
        }
        Ok(PrincipalMapping { rules })
    }

    /// The principal of a certificate with `subject`, or None when no
    /// rule applies to it (the connection is refused).
    pub fn principal(&self, subject: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(subject.to_string()),
            Rule::Rewrite {
                whole,
                pattern,
                replacement,
                case,
            } => {
                if !whole.is_match(subject) {
                    return None;
                }
                let name = pattern.replace(subject, replacement.as_str()).into_owned();
                Some(match case {
                    Case::Keep => name,
                    Case::Lower => name.to_lowercase(),
                    Case::Upper => name.to_uppercase(),
                })
            }
        })
    }
}

/// The text up to the first `/` not escaped as `\/`, and what follows it.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if text[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Some((out, &text[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_rule_that_matches_the_whole_subject_decides() {
        let m = PrincipalMapping::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=([^,]+),O=(.*)$/$1@$2/L,DEFAULT",
        )
        .unwrap();
        assert_eq!(
            m.principal("CN=kafka-etl,OU=ServiceUsers,O=corp")
                .as_deref(),
            Some("kafka-etl")
        );
        assert_eq!(
            m.principal("CN=Alice,O=Corp").as_deref(),
            Some("alice@corp")
        );
        assert_eq!(
            m.principal("OU=x,CN=bob").as_deref(),
            Some("OU=x,CN=bob"),
            "DEFAULT keeps it"
        );
    }

    #[test]
    fn a_subject_no_rule_matches_has_no_principal() {
        let m = PrincipalMapping::parse("RULE:^CN=([^,]+),O=floe$/$1/U").unwrap();
        assert_eq!(m.principal("CN=alice,O=floe").as_deref(), Some("ALICE"));
        assert_eq!(
            m.principal("CN=alice,O=floe,C=x"),
            None,
            "a partial match is no match"
        );
        assert_eq!(m.principal("CN=alice,O=other"), None);
        assert_eq!(
            PrincipalMapping::default().principal("CN=a").as_deref(),
            Some("CN=a")
        );
    }

    #[test]
    fn slashes_escape_and_commas_inside_patterns_stay() {
        let m = PrincipalMapping::parse(r"RULE:^CN=([^,]+),OU=a\/b$/svc\/$1/").unwrap();
        assert_eq!(m.principal("CN=x,OU=a/b").as_deref(), Some("svc/x"));
    }

    #[test]
    fn bad_rules_are_named() {
        for bad in [
            "",
            "RULE:^CN=(.*)$",
            "RULE:^CN=(.*$/$1/",
            "SOMETHING",
            "DEFAULT DEFAULT",
        ] {
            assert!(PrincipalMapping::parse(bad).is_err(), "{bad:?}");
        }
    }
}
