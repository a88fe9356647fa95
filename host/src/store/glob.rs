//! Redis-style glob patterns for `map-scan`: `*`, `?`, `[abc]`, `[^a-z]` (or
//! `[!a-z]`), `\` escapes. They work on characters, not bytes, so `?` matches
//! one emoji. Parsed once (a malformed pattern is an error, never a panic),
//! then matched without recursion in O(pattern × text).

use super::error::{Result, StateError};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Star,
    Any,
    Char(char),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Vec<Token>);

impl Glob {
    /// Parse a pattern. Unclosed `[` or a trailing `\` is `invalid-argument`.
    pub fn new(pattern: &str) -> Result<Glob> {
        let p: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        let bad =
            |why: &str| StateError::invalid(format!("malformed glob pattern {pattern:?}: {why}"));
        while i < p.len() {
            match p[i] {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::Any);
                    i += 1;
                }
                '\\' => {
                    let c = *p
                        .get(i + 1)
                        .ok_or_else(|| bad("it ends with a lone '\\'"))?;
                    tokens.push(Token::Char(c));
                    i += 2;
                }
                '[' => {
                    i += 1;
                    let negated = matches!(p.get(i), Some('^' | '!'));
                    if negated {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    loop {
                        let c = *p.get(i).ok_or_else(|| bad("a '[' is never closed"))?;
                        if c == ']' {
                            i += 1;
                            break;
                        }
                        let lo = if c == '\\' {
                            i += 1;
                            *p.get(i).ok_or_else(|| bad("it ends with a lone '\\'"))?
                        } else {
                            c
                        };
                        i += 1;
                        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&n| n != ']') {
                            let mut hi = p[i + 1];
                            i += 2;
                            if hi == '\\' {
                                hi = *p.get(i).ok_or_else(|| bad("it ends with a lone '\\'"))?;
                                i += 1;
                            }
                            ranges.push((lo.min(hi), lo.max(hi)));
                        } else {
                            ranges.push((lo, lo));
                        }
                    }
                    tokens.push(Token::Class { negated, ranges });
                }
                c => {
                    tokens.push(Token::Char(c));
                    i += 1;
                }
            }
        }
        Ok(Glob(tokens))
    }

    /// Does the whole of `text` match? (Invalid UTF-8 never matches.)
    pub fn matches(&self, text: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(text) else {
            return false;
        };
        let text: Vec<char> = text.chars().collect();
        let toks = &self.0;
        let (mut t, mut s) = (0usize, 0usize);
        // Where to resume after the last `*`: (token after the star, text position).
        let mut resume: Option<(usize, usize)> = None;
        while s < text.len() {
            if t < toks.len() {
                let ok = match &toks[t] {
                    Token::Star => {
                        resume = Some((t + 1, s));
                        t += 1;
                        continue;
                    }
                    Token::Any => true,
                    Token::Char(c) => *c == text[s],
                    Token::Class { negated, ranges } => {
                        let hit = ranges
                            .iter()
                            .any(|&(lo, hi)| lo <= text[s] && text[s] <= hi);
                        hit != *negated
                    }
                };
                if ok {
                    t += 1;
                    s += 1;
                    continue;
                }
            }
            match resume {
                Some((rt, rs)) => {
                    t = rt;
                    s = rs + 1;
                    resume = Some((rt, rs + 1));
                }
                None => return false,
            }
        }
        toks[t..].iter().all(|tok| *tok == Token::Star)
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).unwrap().matches(s.as_bytes())
    }

    #[test]
    fn redis_glob_cases() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("*a*b", "xxbxxa"));
        assert!(m("user:*:name", "user:42:name"));
        assert!(m("[\\]]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("h[!e]llo", "hallo"));
        assert!(m("?", "🦀"));
        assert!(m("[🦀-🦁]x", "🦀x"));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        assert!(Glob::new("abc[").is_err());
        assert!(Glob::new("abc\\").is_err());
        assert!(Glob::new("[a-").is_err());
    }

    #[test]
    fn many_stars_do_not_blow_up() {
        let p = "*a".repeat(50) + "b";
        let s = "a".repeat(5000);
        assert!(!m(&p, &s));
    }
}
