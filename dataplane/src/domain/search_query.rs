//! The message search's query language (issue 11) and the highlighted snippets of its results.
//!
//! Owns parsing the search query language and rendering highlighted snippets: what a query
//! may say ([`parse`] into a [`Query`], with a [`SyntaxError`] that points at the offending
//! character), which index matches which word ([`route`]: word search or the grams), how its
//! words reach PostgreSQL's `websearch_to_tsquery` without any of them being read as an
//! operator ([`websearch_text`]) or become `tsquery` phrases for the grams, and how a result's
//! text is cut and marked up as HTML ([`snippet`]). It is pure: no I/O, no storage, no async.
//!
//! It must not look anything up: which channel a name means, who may read what, is the
//! caller's. A [`ChannelRef::Name`] is only a well-formed name, a `from:` id only a well-formed
//! id; whether either exists or may be searched is decided by whoever runs the query.
//!
//! # The language
//!
//! Tokens are separated by Unicode whitespace.
//!
//! * `word`: every result contains it. Kept as typed, lowercased; the database's text parser
//!   normalizes it (nothing is dropped here).
//! * `"a phrase"`: its words, in order. Inside quotes everything is words (`"from:@x"` is the
//!   word `from:@x`). A closing quote ends the token: `"a b"c` is the phrase `a b` then the
//!   word `c`.
//! * `-word`, `-"a phrase"`: no result contains it.
//! * `from:@id` (or `from:id`), `in:#name`, `in:<channel id>`: several of one kind mean any of
//!   them.
//! * `before:YYYY-MM-DD`, `after:YYYY-MM-DD` (exclusive), `on:YYYY-MM-DD` (that day), in UTC;
//!   each at most once.
//! * `has:link`, `has:file`, `is:thread` (replies only).
//!
//! Operator keys and the values of `has:` and `is:` are ASCII case-insensitive. A token
//! `something:rest` whose key is not one of the above (`http://x.y`, `10:30`) is a word.
//!
//! # Where a word is matched
//!
//! [`route`] sends most words to PostgreSQL's word search (`tsv`: exact words and English
//! stems). That search cannot look inside a run of CJK characters, which its parser keeps as one
//! word, nor inside identifiers, paths and addresses (`10.1.2.33` is one lexeme). A word with
//! such a *segment* is matched against the grams instead (`grams`, migration 0013's
//! `search_grams`; ADR 0008, amendment of 2026-12-02). A segment is a maximal run of CJK
//! characters and ASCII letters and digits, where runs of letters and digits may be joined by
//! `-` `.` `_` `/` `:` `@`, holding a CJK character or a joiner:
//!
//! * a CJK run matches anywhere in the text's CJK runs (`東京` in `東京タワーに行きました`);
//! * runs of letters and digits match from the start of one of the text's (`user_id` in
//!   `fetch_user_id_v2`, `palaver-42` in `err-palaver-42x`, `10.1.2` in `10.1.2.33`; not
//!   `ser_id`), the last one as a prefix, whatever the joiners (`user_id` finds `user-id`);
//! * the rest of the word (`x` in `x(10.1.2)`) is words, matched by word search.
//!
//! A segment glued to other letters (`über-code`) leaves the whole word to word search, as do
//! words without a segment. In a phrase with such a segment, each word is a term of its own:
//! the order is not checked.

use chrono::NaiveDate;

/// Longest query accepted by default, in characters.
pub const DEFAULT_MAX_CHARS: usize = 1000;
/// Most terms (words, phrases, exclusions and filters together) accepted by default.
pub const DEFAULT_MAX_TERMS: usize = 32;
/// Default length of a [`snippet`], in characters of the text.
pub const DEFAULT_SNIPPET_CHARS: usize = 200;
/// How many characters of context a windowed [`snippet`] shows before its first match.
pub const SNIPPET_LEAD_CHARS: usize = 40;

/// The shapes `from:` and `in:` accept are the server's own (`auth::valid_user_id`,
/// `ids::valid_id`, `palaver_crds::validate_channel_name`); these are their limits, for the
/// error messages.
const MAX_USER_ID_CHARS: usize = 64;
const MAX_CHANNEL_ID_CHARS: usize = crate::ids::MAX_ID_LEN;
const MAX_CHANNEL_NAME_CHARS: usize = 80;

/// The size limits of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest query, in characters (default [`DEFAULT_MAX_CHARS`]).
    pub max_chars: usize,
    /// Most terms + exclusions + filters (default [`DEFAULT_MAX_TERMS`]).
    pub max_terms: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_chars: DEFAULT_MAX_CHARS, max_terms: DEFAULT_MAX_TERMS }
    }
}

/// A parsed search query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    /// Words and "phrases" every result must contain (a phrase is its words in order).
    pub terms: Vec<Term>,
    /// Words and phrases no result may contain (`-word`, `-"a phrase"`).
    pub excluded: Vec<Term>,
    /// `from:@id` (several: any of them).
    pub from: Vec<String>,
    /// `in:#name` or `in:<channel id>` (several: any of them).
    pub channels: Vec<ChannelRef>,
    /// Dates in UTC: `before:` and `after:` are exclusive, `on:` is that day.
    pub before: Option<NaiveDate>,
    pub after: Option<NaiveDate>,
    pub on: Option<NaiveDate>,
    pub has_link: bool,
    pub has_file: bool,
    /// `is:thread`: replies only.
    pub is_thread: bool,
}

/// A word or a phrase, lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    Word(String),
    /// Its words in order (never empty).
    Phrase(Vec<String>),
}

/// The channel an `in:` names: not resolved here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelRef {
    /// `in:#name`, lowercased.
    Name(String),
    /// `in:<channel id>`, as typed.
    Id(String),
}

/// Why a query was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {position})")]
pub struct SyntaxError {
    /// 0-based character (not byte) offset into q
    pub position: usize,
    pub message: String,
}

impl SyntaxError {
    fn new(position: usize, message: impl Into<String>) -> Self {
        Self { position, message: message.into() }
    }
}

impl Query {
    /// Every word of the terms (the words and the phrases' words), for highlighting; not the
    /// excluded ones.
    pub fn positive_words(&self) -> Vec<&str> {
        let mut words = Vec::new();
        for term in &self.terms {
            match term {
                Term::Word(w) => words.push(w.as_str()),
                Term::Phrase(ws) => words.extend(ws.iter().map(String::as_str)),
            }
        }
        words
    }

    fn has_filters(&self) -> bool {
        !self.from.is_empty()
            || !self.channels.is_empty()
            || self.before.is_some()
            || self.after.is_some()
            || self.on.is_some()
            || self.has_link
            || self.has_file
            || self.is_thread
    }
}

/// The operator keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    From,
    In,
    Before,
    After,
    On,
    Has,
    Is,
}

impl Key {
    fn parse(s: &str) -> Option<Self> {
        const KEYS: [(&str, Key); 7] = [
            ("from", Key::From),
            ("in", Key::In),
            ("before", Key::Before),
            ("after", Key::After),
            ("on", Key::On),
            ("has", Key::Has),
            ("is", Key::Is),
        ];
        KEYS.iter().find(|(name, _)| s.eq_ignore_ascii_case(name)).map(|&(_, k)| k)
    }

    fn name(self) -> &'static str {
        match self {
            Key::From => "from",
            Key::In => "in",
            Key::Before => "before",
            Key::After => "after",
            Key::On => "on",
            Key::Has => "has",
            Key::Is => "is",
        }
    }

    /// What an empty value is told.
    fn needs(self) -> String {
        match self {
            Key::From => "from: needs a user, e.g. from:@alice".into(),
            Key::In => "in: needs a channel, e.g. in:#general".into(),
            Key::Before | Key::After | Key::On => format!("{}: needs a date, e.g. {}:2024-01-31", self.name(), self.name()),
            Key::Has => "has: needs link or file, e.g. has:link".into(),
            Key::Is => "is: needs thread, i.e. is:thread".into(),
        }
    }
}

/// If `token` is `key:value` with a known key: the key and the value's offset in characters.
fn operator(token: &[char]) -> Option<(Key, usize)> {
    let colon = token.iter().position(|&c| c == ':')?;
    let key: String = token[..colon].iter().collect();
    Key::parse(&key).map(|k| (k, colon + 1))
}

/// `YYYY-MM-DD`, exactly (ten ASCII characters), and a real calendar day.
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape = b.len() == 10 && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    if !shape {
        return None;
    }
    let year = s[0..4].parse().ok()?;
    let month = s[5..7].parse().ok()?;
    let day = s[8..10].parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// Applies the operator `key` with `value` (starting at character `at` of the query; the
/// token starts at `token_at`) to `query`.
fn apply(query: &mut Query, key: Key, value: &str, at: usize, token_at: usize) -> Result<(), SyntaxError> {
    if value.is_empty() {
        return Err(SyntaxError::new(at, key.needs()));
    }
    match key {
        Key::From => {
            let id = value.strip_prefix('@').unwrap_or(value);
            if id.is_empty() {
                return Err(SyntaxError::new(at, key.needs()));
            }
            if !crate::auth::valid_user_id(id) {
                return Err(SyntaxError::new(
                    at,
                    format!("from: takes a user id: 1 to {MAX_USER_ID_CHARS} of A-Z, a-z, 0-9, '-', '_', '.', '@'"),
                ));
            }
            query.from.push(id.to_owned());
        }
        Key::In => {
            if let Some(name) = value.strip_prefix('#') {
                let name = name.to_lowercase();
                if palaver_crds::validate_channel_name(&name).is_err() {
                    return Err(SyntaxError::new(
                        at,
                        format!("in: takes a channel name: # and 1 to {MAX_CHANNEL_NAME_CHARS} of a-z, 0-9, '-', '_'"),
                    ));
                }
                query.channels.push(ChannelRef::Name(name));
            } else {
                if !crate::ids::valid_id(value) {
                    return Err(SyntaxError::new(
                        at,
                        format!("in: takes #name or a channel id: 1 to {MAX_CHANNEL_ID_CHARS} of A-Z, a-z, 0-9, '-', '_'"),
                    ));
                }
                query.channels.push(ChannelRef::Id(value.to_owned()));
            }
        }
        Key::Before | Key::After | Key::On => {
            let date = parse_date(value).ok_or_else(|| SyntaxError::new(at, format!("{}: dates are YYYY-MM-DD", key.name())))?;
            let slot = match key {
                Key::Before => &mut query.before,
                Key::After => &mut query.after,
                _ => &mut query.on,
            };
            if slot.is_some() {
                return Err(SyntaxError::new(token_at, format!("{}: given twice", key.name())));
            }
            *slot = Some(date);
        }
        Key::Has => {
            if value.eq_ignore_ascii_case("link") {
                query.has_link = true;
            } else if value.eq_ignore_ascii_case("file") {
                query.has_file = true;
            } else {
                return Err(SyntaxError::new(at, "has: takes link or file"));
            }
        }
        Key::Is => {
            if value.eq_ignore_ascii_case("thread") {
                query.is_thread = true;
            } else {
                return Err(SyntaxError::new(at, "is: takes thread"));
            }
        }
    }
    Ok(())
}

/// Parses a search query (see the module's documentation for the language).
pub fn parse(q: &str, limits: &Limits) -> Result<Query, SyntaxError> {
    let chars: Vec<char> = q.chars().collect();
    if chars.len() > limits.max_chars {
        return Err(SyntaxError::new(limits.max_chars, format!("the query is longer than {} characters", limits.max_chars)));
    }
    let mut query = Query::default();
    let mut count = 0;
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let token_at = i;
        let excluded = chars[i] == '-';
        if excluded {
            i += 1;
            if i == chars.len() || chars[i].is_whitespace() {
                return Err(SyntaxError::new(token_at, "nothing to exclude"));
            }
        }
        count += 1;
        if count > limits.max_terms {
            return Err(SyntaxError::new(token_at, format!("more than {} terms", limits.max_terms)));
        }
        if chars[i] == '"' {
            let open = i;
            let close = chars[open + 1..]
                .iter()
                .position(|&c| c == '"')
                .map(|p| open + 1 + p)
                .ok_or_else(|| SyntaxError::new(open, "unterminated quote"))?;
            let inside: String = chars[open + 1..close].iter().collect();
            let words: Vec<String> = inside.split_whitespace().map(str::to_lowercase).collect();
            if words.is_empty() {
                return Err(SyntaxError::new(open, "empty phrase"));
            }
            i = close + 1;
            let term = Term::Phrase(words);
            if excluded {
                query.excluded.push(term)
            } else {
                query.terms.push(term)
            }
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() {
            i += 1;
        }
        let token = &chars[start..i];
        if let Some((key, value_offset)) = operator(token) {
            if excluded {
                return Err(SyntaxError::new(token_at, "operators cannot be excluded"));
            }
            let value: String = token[value_offset..].iter().collect();
            apply(&mut query, key, &value, start + value_offset, token_at)?;
            continue;
        }
        let word = token.iter().collect::<String>().to_lowercase();
        if excluded {
            query.excluded.push(Term::Word(word));
        } else {
            query.terms.push(Term::Word(word));
        }
    }
    if query.terms.is_empty() && !query.has_filters() {
        return Err(if query.excluded.is_empty() {
            SyntaxError::new(0, "empty query")
        } else {
            SyntaxError::new(0, "a search needs at least one word or filter besides exclusions")
        });
    }
    Ok(query)
}

/// Renders terms as the text of PostgreSQL's `websearch_to_tsquery`, every term quoted so that
/// no user word is read as an operator (`or`, `-`): a word `foo` is `"foo"`, a phrase `"a b c"`.
/// A `"` inside a word is removed (it cannot be quoted); a word left empty is left out, and a
/// term left without words too. Terms are joined with `joiner`: `" "` for all of them (AND),
/// `" or "` for any.
pub fn websearch_text(terms: &[Term], joiner: &str) -> String {
    let unquote = |w: &str| w.replace('"', "");
    let mut parts = Vec::with_capacity(terms.len());
    for term in terms {
        let words: Vec<String> = match term {
            Term::Word(w) => vec![unquote(w)],
            Term::Phrase(ws) => ws.iter().map(|w| unquote(w)).collect(),
        };
        let words: Vec<&str> = words.iter().map(String::as_str).filter(|w| !w.trim().is_empty()).collect();
        if !words.is_empty() {
            parts.push(format!("\"{}\"", words.join(" ")));
        }
    }
    parts.join(joiner)
}

/// Characters of the CJK blocks (Hangul Jamo, CJK symbols 々〆〇, Hiragana, Katakana, Hangul
/// compatibility Jamo, Katakana extensions, CJK ideographs with extension A and the supplementary
/// planes' B and later, compatibility ideographs, Hangul syllables, halfwidth Katakana). The
/// same code point ranges as migration 0013's `search_grams`.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF | 0x3005..=0x3007 | 0x3040..=0x30FF | 0x3130..=0x318F | 0x31F0..=0x31FF
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFF66..=0xFF9F
        | 0x20000..=0x2FA1F)
}

/// What joins the runs of letters and digits of an identifier, a path or an address.
fn is_joiner(c: char) -> bool {
    matches!(c, '-' | '.' | '_' | '/' | ':' | '@')
}

/// A run of a segment: CJK characters, or ASCII letters and digits.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Run {
    Cjk(Vec<char>),
    Ascii(String),
}

/// The segment starting at `w[i]` (a CJK character or an ASCII letter or digit): where it ends,
/// its runs, and whether the grams keep it (it has a CJK character or a joiner). Greedy, like
/// `search_grams`' regular expression: joiners belong to it only between letters and digits.
fn segment_at(w: &[char], mut i: usize) -> (usize, Vec<Run>, bool) {
    let alnum = |j: usize| j < w.len() && w[j].is_ascii_alphanumeric();
    let mut runs = Vec::new();
    let mut joined = false;
    loop {
        let start = i;
        if i < w.len() && is_cjk(w[i]) {
            while i < w.len() && is_cjk(w[i]) {
                i += 1;
            }
            runs.push(Run::Cjk(w[start..i].to_vec()));
        } else if alnum(i) {
            loop {
                let run = i;
                while alnum(i) {
                    i += 1;
                }
                runs.push(Run::Ascii(w[run..i].iter().collect()));
                let mut k = i;
                while k < w.len() && is_joiner(w[k]) {
                    k += 1;
                }
                if k == i || !alnum(k) {
                    break;
                }
                joined = true;
                i = k;
            }
        } else {
            break;
        }
    }
    let kept = joined || runs.iter().any(|r| matches!(r, Run::Cjk(_)));
    (i, runs, kept)
}

/// A segment as a `tsquery` phrase of `search_grams`' lexemes, which it appends to `lexemes`:
/// a run of letters and digits is itself, a CJK run its bigrams (and, unless it ends the
/// segment, its last character: the text's run ends there too), a single CJK character is
/// itself; the last lexeme is a prefix (`user_id` finds `user_ids`, `京` every `京…`).
///
/// The lexemes hold only ASCII letters and digits and CJK characters, so quoting them needs no
/// escapes.
fn segment_query(runs: &[Run], lexemes: &mut Vec<String>) -> String {
    let mut items: Vec<String> = Vec::new();
    for (k, run) in runs.iter().enumerate() {
        let last = k + 1 == runs.len();
        match run {
            Run::Ascii(s) => items.push(s.clone()),
            Run::Cjk(cs) if cs.len() == 1 => items.push(cs[0].to_string()),
            Run::Cjk(cs) => {
                items.extend(cs.windows(2).map(|p| p.iter().collect::<String>()));
                if !last {
                    items.push(cs[cs.len() - 1].to_string());
                }
            }
        }
    }
    let n = items.len();
    let phrase: Vec<String> =
        items.iter().enumerate().map(|(k, l)| if k + 1 == n { format!("'{l}':*") } else { format!("'{l}'") }).collect();
    lexemes.extend(items);
    phrase.join(" <-> ")
}

/// How `word` is matched in the grams: its kept segments' runs, and the rest of it as words.
/// `None`: it has no such segment, or one glued to other letters; word search matches it whole.
fn grams_of(word: &str) -> Option<(Vec<Vec<Run>>, Vec<String>)> {
    let w: Vec<char> = word.chars().collect();
    let mut segments = Vec::new();
    let mut rest = String::new();
    let mut i = 0;
    while i < w.len() {
        if !(is_cjk(w[i]) || w[i].is_ascii_alphanumeric()) {
            rest.push(w[i]);
            i += 1;
            continue;
        }
        let (end, runs, kept) = segment_at(&w, i);
        if kept {
            if (i > 0 && w[i - 1].is_alphanumeric()) || (end < w.len() && w[end].is_alphanumeric()) {
                return None;
            }
            segments.push(runs);
            rest.push(' ');
        } else {
            rest.extend(&w[i..end]);
        }
        i = end;
    }
    if segments.is_empty() {
        return None;
    }
    let words = rest.split(|c: char| !c.is_alphanumeric()).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    Some((segments, words))
}

/// Terms split by the index that matches them (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Routed {
    /// For word search ([`websearch_text`]).
    pub words: Vec<Term>,
    /// For the grams: one `tsquery` per segment, every lexeme quoted.
    pub grams: Vec<String>,
    /// The lexemes of `grams`, for choosing the plan of rare terms.
    pub lexemes: Vec<String>,
}

impl Routed {
    /// The grams' queries as one `tsquery`, joined with `op` (`&`: all of them, `|`: any).
    pub fn grams_query(&self, op: &str) -> Option<String> {
        (!self.grams.is_empty()).then(|| self.grams.iter().map(|g| format!("({g})")).collect::<Vec<_>>().join(&format!(" {op} ")))
    }

    fn add(&mut self, segments: Vec<Vec<Run>>, words: Vec<String>) {
        for runs in segments {
            let q = segment_query(&runs, &mut self.lexemes);
            self.grams.push(q);
        }
        self.words.extend(words.into_iter().map(Term::Word));
    }
}

/// Splits terms between word search and the grams (see the module's documentation).
pub fn route(terms: &[Term]) -> Routed {
    let mut out = Routed::default();
    for term in terms {
        match term {
            Term::Word(w) => match grams_of(w) {
                Some((segments, words)) => out.add(segments, words),
                None => out.words.push(term.clone()),
            },
            Term::Phrase(ws) => {
                let split: Vec<_> = ws.iter().map(|w| grams_of(w)).collect();
                if split.iter().all(Option::is_none) {
                    out.words.push(term.clone());
                    continue;
                }
                for (w, s) in ws.iter().zip(split) {
                    match s {
                        Some((segments, words)) => out.add(segments, words),
                        None => out.words.push(Term::Word(w.clone())),
                    }
                }
            }
        }
    }
    out
}

/// A character as compared case-insensitively: its lowercase, with the final sigma as sigma
/// (text and words are lowercased one character at a time, which never yields `ς`).
fn fold(c: char) -> impl Iterator<Item = char> {
    c.to_lowercase().map(|l| if l == 'ς' { 'σ' } else { l })
}

/// How many characters of `text` from `at` match `word` (already folded), if they all do.
fn match_len(text: &[char], at: usize, word: &[char]) -> Option<usize> {
    let mut k = 0;
    let mut j = at;
    while k < word.len() {
        let c = *text.get(j)?;
        for l in fold(c) {
            if word.get(k) != Some(&l) {
                return None;
            }
            k += 1;
        }
        j += 1;
    }
    Some(j - at)
}

fn escape_into(out: &mut String, chars: &[char]) {
    for &c in chars {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// A result's text as HTML: escaped, each occurrence of one of `words` marked, and cut to
/// about `max_chars` characters.
///
/// A word matches case-insensitively where it starts at a word boundary (the text's start,
/// after a character that is not alphanumeric, or anywhere for a CJK character: CJK text is
/// searched inside its runs), also as the prefix of a longer word (`run` in `running`: only
/// `run` is marked); at one place the longest match wins; matches do not
/// overlap. A text longer than `max_chars` shows `max_chars` characters of it, from
/// [`SNIPPET_LEAD_CHARS`] before the first match (or its start), with `…` where it is cut.
pub fn snippet(text: &str, words: &[&str], max_chars: usize) -> String {
    if max_chars == 0 {
        return String::new();
    }
    let chars: Vec<char> = text.chars().collect();
    let words: Vec<Vec<char>> = words.iter().map(|w| w.chars().flat_map(fold).collect::<Vec<char>>()).filter(|w| !w.is_empty()).collect();

    // Matches as (start, end) in characters, on the whole text (a window's first character
    // still has the text's previous one to tell a boundary).
    let mut matches = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !chars[i - 1].is_alphanumeric() || is_cjk(chars[i]);
        let best = if boundary { words.iter().filter_map(|w| match_len(&chars, i, w)).max() } else { None };
        match best {
            Some(n) => {
                matches.push((i, i + n));
                i += n;
            }
            None => i += 1,
        }
    }

    let (start, end) = if chars.len() <= max_chars {
        (0, chars.len())
    } else {
        let first = matches.first().map_or(0, |&(s, _)| s);
        let start = first.saturating_sub(SNIPPET_LEAD_CHARS).min(chars.len() - max_chars);
        (start, start + max_chars)
    };

    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for &(s, e) in &matches {
        if e <= start {
            continue;
        }
        if s >= end {
            break;
        }
        let (s, e) = (s.max(start), e.min(end));
        escape_into(&mut out, &chars[at..s]);
        out.push_str("<mark>");
        escape_into(&mut out, &chars[s..e]);
        out.push_str("</mark>");
        at = e;
    }
    escape_into(&mut out, &chars[at..end]);
    if end < chars.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Result<Query, SyntaxError> {
        parse(q, &Limits::default())
    }

    fn ok(q: &str) -> Query {
        p(q).unwrap_or_else(|e| panic!("{q:?}: {e}"))
    }

    /// The error's position and message.
    fn err(q: &str) -> (usize, String) {
        match p(q) {
            Ok(query) => panic!("{q:?} parsed: {query:?}"),
            Err(e) => (e.position, e.message),
        }
    }

    fn word(w: &str) -> Term {
        Term::Word(w.into())
    }

    fn phrase(ws: &[&str]) -> Term {
        Term::Phrase(ws.iter().map(|w| w.to_string()).collect())
    }

    fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, d)
    }

    // --- parse: words and phrases ---

    #[test]
    fn limits_default() {
        assert_eq!(Limits::default(), Limits { max_chars: 1000, max_terms: 32 });
    }

    #[test]
    fn words_are_lowercased_and_kept_as_typed() {
        let q = ok("Hello  WORLD\tfoo,bar! Ünïcode ΣΟΦΊΑ");
        assert_eq!(q.terms, vec![word("hello"), word("world"), word("foo,bar!"), word("ünïcode"), word("σοφία")]);
        assert_eq!(q.excluded, vec![]);
        assert!(!q.has_filters());
    }

    #[test]
    fn unicode_whitespace_separates() {
        let q = ok("a\u{3000}b\u{a0}c\nd");
        assert_eq!(q.terms, vec![word("a"), word("b"), word("c"), word("d")]);
    }

    #[test]
    fn phrases() {
        let q = ok(r#"x "Deploy  Failed again" "one""#);
        assert_eq!(q.terms, vec![word("x"), phrase(&["deploy", "failed", "again"]), phrase(&["one"])]);
        // Inside quotes everything is words, operators too.
        assert_eq!(ok(r#""from:@x in:#y""#).terms, vec![phrase(&["from:@x", "in:#y"])]);
        // A closing quote ends the token.
        assert_eq!(ok(r#""a b"c"#).terms, vec![phrase(&["a", "b"]), word("c")]);
        // A quote inside a word is part of it.
        assert_eq!(ok(r#"it"s"#).terms, vec![word("it\"s")]);
    }

    #[test]
    fn phrase_errors() {
        assert_eq!(err(r#"a "b c"#), (2, "unterminated quote".into()));
        assert_eq!(err(r#"ab -"b c"#), (4, "unterminated quote".into()));
        assert_eq!(err(r#"a """#), (2, "empty phrase".into()));
        assert_eq!(err(r#"a "   ""#), (2, "empty phrase".into()));
    }

    #[test]
    fn exclusions() {
        let q = ok(r#"deploy -Staging -"dry run" -a-b"#);
        assert_eq!(q.terms, vec![word("deploy")]);
        assert_eq!(q.excluded, vec![word("staging"), phrase(&["dry", "run"]), word("a-b")]);
        // A hyphen inside a word is the word's.
        assert_eq!(ok("e-mail").terms, vec![word("e-mail")]);
    }

    #[test]
    fn exclusion_errors() {
        assert_eq!(err("a -"), (2, "nothing to exclude".into()));
        assert_eq!(err("a - b"), (2, "nothing to exclude".into()));
        assert_eq!(err("a -from:@x"), (2, "operators cannot be excluded".into()));
        assert_eq!(err("a -HAS:link"), (2, "operators cannot be excluded".into()));
        // Not an operator: an ordinary excluded word.
        assert_eq!(ok("a -foo:bar").excluded, vec![word("foo:bar")]);
    }

    #[test]
    fn empty_queries() {
        assert_eq!(err(""), (0, "empty query".into()));
        assert_eq!(err(" \t\n\u{3000}"), (0, "empty query".into()));
        let only_excluded = (0, "a search needs at least one word or filter besides exclusions".to_string());
        assert_eq!(err("-foo"), only_excluded);
        assert_eq!(err(r#"-foo -"a b""#), only_excluded);
        // A filter alone, or with exclusions, is a search.
        assert!(ok("has:link").has_link);
        assert_eq!(ok("-foo in:#ops").excluded, vec![word("foo")]);
    }

    // --- parse: operators ---

    #[test]
    fn unknown_keys_are_words() {
        let q = ok("http://x.y 10:30 foo:bar :x x: FROM");
        assert_eq!(q.terms, vec![word("http://x.y"), word("10:30"), word("foo:bar"), word(":x"), word("x:"), word("from")]);
        assert!(!q.has_filters());
    }

    #[test]
    fn from() {
        let q = ok("from:@alice FROM:bob.smith@example.com From:@U_1-x");
        assert_eq!(q.from, vec!["alice", "bob.smith@example.com", "U_1-x"]);
        assert!(q.terms.is_empty());
        assert_eq!(ok(&format!("from:@{}", "a".repeat(64))).from, vec!["a".repeat(64)]);
    }

    #[test]
    fn from_errors() {
        assert_eq!(err("x from:"), (7, "from: needs a user, e.g. from:@alice".into()));
        assert_eq!(err("x from:@"), (7, "from: needs a user, e.g. from:@alice".into()));
        let bad = "from: takes a user id: 1 to 64 of A-Z, a-z, 0-9, '-', '_', '.', '@'".to_string();
        assert_eq!(err("from:@al!ce"), (5, bad.clone()));
        assert_eq!(err("from:@ålice"), (5, bad.clone()));
        assert_eq!(err(&format!("from:@{}", "a".repeat(65))), (5, bad));
    }

    #[test]
    fn channels() {
        let q = ok("in:#General IN:c_0123456789abcdef in:#dev-ops_2");
        assert_eq!(
            q.channels,
            vec![ChannelRef::Name("general".into()), ChannelRef::Id("c_0123456789abcdef".into()), ChannelRef::Name("dev-ops_2".into()),]
        );
        assert_eq!(ok(&format!("in:#{}", "a".repeat(80))).channels, vec![ChannelRef::Name("a".repeat(80))]);
    }

    #[test]
    fn channel_errors() {
        assert_eq!(err("in:"), (3, "in: needs a channel, e.g. in:#general".into()));
        let bad_name = "in: takes a channel name: # and 1 to 80 of a-z, 0-9, '-', '_'".to_string();
        assert_eq!(err("x in:#"), (5, bad_name.clone()));
        assert_eq!(err("in:#gén"), (3, bad_name.clone()));
        assert_eq!(err("in:#a.b"), (3, bad_name.clone()));
        assert_eq!(err(&format!("in:#{}", "a".repeat(81))), (3, bad_name));
        let bad_id = "in: takes #name or a channel id: 1 to 100 of A-Z, a-z, 0-9, '-', '_'".to_string();
        assert_eq!(err("in:c.1"), (3, bad_id.clone()));
        assert_eq!(err(r#"in:"general""#), (3, bad_id.clone()));
        assert_eq!(err(&format!("in:{}", "c".repeat(101))), (3, bad_id));
    }

    #[test]
    fn dates() {
        let q = ok("before:2024-03-01 after:2023-12-31 on:2024-02-29");
        assert_eq!(q.before, date(2024, 3, 1));
        assert_eq!(q.after, date(2023, 12, 31));
        assert_eq!(q.on, date(2024, 2, 29));
        assert_eq!(ok("BEFORE:2024-01-01").before, date(2024, 1, 1));
    }

    #[test]
    fn date_errors() {
        assert_eq!(err("x before:"), (9, "before: needs a date, e.g. before:2024-01-31".into()));
        assert_eq!(err("on:2023-02-29"), (3, "on: dates are YYYY-MM-DD".into()));
        assert_eq!(err("after:2024-13-01"), (6, "after: dates are YYYY-MM-DD".into()));
        assert_eq!(err("on:2024-1-01"), (3, "on: dates are YYYY-MM-DD".into()));
        assert_eq!(err("on:+2024-01-01"), (3, "on: dates are YYYY-MM-DD".into()));
        assert_eq!(err("on:2024/01/01"), (3, "on: dates are YYYY-MM-DD".into()));
        assert_eq!(err("on:yesterday"), (3, "on: dates are YYYY-MM-DD".into()));
        assert_eq!(err("on:２０２４-01-01"), (3, "on: dates are YYYY-MM-DD".into()));
        assert_eq!(err("before:2024-01-01 x before:2024-02-01"), (20, "before: given twice".into()));
        assert_eq!(err("on:2024-01-01 ON:2024-01-01"), (14, "on: given twice".into()));
    }

    #[test]
    fn has_and_is() {
        let q = ok("has:LINK Has:file is:Thread");
        assert!(q.has_link && q.has_file && q.is_thread);
        let q = ok("has:file");
        assert!(!q.has_link && q.has_file && !q.is_thread);
        assert_eq!(err("has:"), (4, "has: needs link or file, e.g. has:link".into()));
        assert_eq!(err("x has:image"), (6, "has: takes link or file".into()));
        assert_eq!(err("is:"), (3, "is: needs thread, i.e. is:thread".into()));
        assert_eq!(err("is:reply"), (3, "is: takes thread".into()));
    }

    #[test]
    fn a_full_query() {
        let q = ok(r#"Deploy "rolled back" -staging from:@alice in:#ops in:c_1 after:2024-01-01 has:link is:thread"#);
        assert_eq!(
            q,
            Query {
                terms: vec![word("deploy"), phrase(&["rolled", "back"])],
                excluded: vec![word("staging")],
                from: vec!["alice".into()],
                channels: vec![ChannelRef::Name("ops".into()), ChannelRef::Id("c_1".into())],
                before: None,
                after: date(2024, 1, 1),
                on: None,
                has_link: true,
                has_file: false,
                is_thread: true,
            }
        );
    }

    #[test]
    fn positions_are_characters_not_bytes() {
        // "ü" and "日本" are multi-byte: the positions count characters.
        assert_eq!(err("über 日本 from:"), (13, "from: needs a user, e.g. from:@alice".into()));
        assert_eq!(err("日本 \"x"), (3, "unterminated quote".into()));
    }

    #[test]
    fn error_display() {
        let e = p("a -").unwrap_err();
        assert_eq!(e.to_string(), "nothing to exclude (at character 2)");
    }

    // --- parse: limits ---

    #[test]
    fn max_chars() {
        let limits = Limits { max_chars: 10, max_terms: 32 };
        assert!(parse("0123456789", &limits).is_ok());
        // Characters, not bytes: ten two-byte characters fit.
        assert!(parse("éééééééééé", &limits).is_ok());
        let e = parse("0123456789a", &limits).unwrap_err();
        assert_eq!((e.position, e.message.as_str()), (10, "the query is longer than 10 characters"));
        let e = parse(&"a".repeat(1001), &Limits::default()).unwrap_err();
        assert_eq!((e.position, e.message.as_str()), (1000, "the query is longer than 1000 characters"));
    }

    #[test]
    fn max_terms() {
        let limits = Limits { max_chars: 1000, max_terms: 3 };
        assert!(parse(r#"a -b "c d""#, &limits).is_ok());
        assert!(parse("a has:link in:#x", &limits).is_ok());
        // Terms, exclusions and filters all count; the error is at the first one too many.
        let e = parse("a -b has:link in:#x", &limits).unwrap_err();
        assert_eq!((e.position, e.message.as_str()), (14, "more than 3 terms"));
        let e = parse("a b c  -d", &limits).unwrap_err();
        assert_eq!((e.position, e.message.as_str()), (7, "more than 3 terms"));
        let e = parse(r#"a b c "d e""#, &limits).unwrap_err();
        assert_eq!(e.position, 6);
        let many = vec!["w"; 33].join(" ");
        assert_eq!(p(&many).unwrap_err().message, "more than 32 terms");
        assert!(p(&vec!["w"; 32].join(" ")).is_ok());
    }

    // --- positive_words ---

    #[test]
    fn positive_words() {
        let q = ok(r#"deploy "rolled back" -staging from:@alice"#);
        assert_eq!(q.positive_words(), vec!["deploy", "rolled", "back"]);
        assert!(ok("has:link -x").positive_words().is_empty());
    }

    // --- websearch_text ---

    #[test]
    fn websearch_quotes_every_term() {
        let terms = vec![word("foo"), phrase(&["a", "b", "c"])];
        assert_eq!(websearch_text(&terms, " "), r#""foo" "a b c""#);
        assert_eq!(websearch_text(&terms, " or "), r#""foo" or "a b c""#);
        assert_eq!(websearch_text(&[], " "), "");
    }

    #[test]
    fn websearch_operators_are_harmless() {
        // `or` and `-x` as words stay words: quoted.
        let q = ok(r#"cats or dogs "-x" x-y"#);
        assert_eq!(websearch_text(&q.terms, " "), r#""cats" "or" "dogs" "-x" "x-y""#);
        // Quotes inside words are removed, so a word cannot close its quote early.
        let terms = vec![word(r#"it"s"#), word(r#"a" or "b"#), phrase(&[r#"x""#, "y"])];
        assert_eq!(websearch_text(&terms, " "), r#""its" "a or b" "x y""#);
        // A word of quotes only is left out, and so is a term left without words.
        let terms = vec![word(r#""""#), word("z"), phrase(&[r#"""#])];
        assert_eq!(websearch_text(&terms, " or "), r#""z""#);
        // Nothing is left outside quotes.
        let out = websearch_text(&ok(r#"-a or "b -c" d"e"#).excluded, " ");
        assert_eq!(out, r#""a""#);
    }

    // --- route ---

    /// `(words for word search, grams queries)` of `q`'s terms.
    fn routed(q: &str) -> (Vec<Term>, Vec<String>) {
        let r = route(&ok(q).terms);
        (r.words, r.grams)
    }

    #[test]
    fn plain_words_and_phrases_stay_with_word_search() {
        let (words, grams) = routed(r#"deploy "rolled back" über-code foo,bar! 10 x- .net v2 it's"#);
        assert_eq!(
            words,
            vec![
                word("deploy"),
                phrase(&["rolled", "back"]),
                // Glued to a letter outside ASCII: the whole word is word search's.
                word("über-code"),
                word("foo,bar!"),
                word("10"),
                word("x-"),
                word(".net"),
                word("v2"),
                word("it's"),
            ]
        );
        assert!(grams.is_empty(), "{grams:?}");
    }

    #[test]
    fn identifiers_paths_and_addresses_go_to_the_grams() {
        let (words, grams) = routed("user_id palaver-42 10.1.2 /var/log app.log bob@example.com 10:30 https://example.com/a");
        assert!(words.is_empty(), "{words:?}");
        assert_eq!(
            grams,
            vec![
                "'user' <-> 'id':*",
                "'palaver' <-> '42':*",
                "'10' <-> '1' <-> '2':*",
                "'var' <-> 'log':*",
                "'app' <-> 'log':*",
                "'bob' <-> 'example' <-> 'com':*",
                "'10' <-> '30':*",
                "'https' <-> 'example' <-> 'com' <-> 'a':*",
            ]
        );
        // Joiners are separators, however many: `a--b` is `a-b`.
        assert_eq!(routed("a--b").1, vec!["'a' <-> 'b':*"]);
    }

    #[test]
    fn cjk_goes_to_the_grams_as_bigrams() {
        let (words, grams) = routed("東京 京 東京タワー 数据库 서울역");
        assert!(words.is_empty(), "{words:?}");
        assert_eq!(
            grams,
            vec!["'東京':*", "'京':*", "'東京' <-> '京タ' <-> 'タワ' <-> 'ワー':*", "'数据' <-> '据库':*", "'서울' <-> '울역':*"]
        );
        // A quoted CJK sentence is one word: all its bigrams in order.
        assert_eq!(routed(r#""今日は晴れ""#).1, vec!["'今日' <-> '日は' <-> 'は晴' <-> '晴れ':*"]);
    }

    #[test]
    fn cjk_next_to_letters_and_digits_is_one_segment() {
        // The text's run ends where letters start: its last character is a lexeme.
        assert_eq!(routed("東京2024").1, vec!["'東京' <-> '京' <-> '2024':*"]);
        assert_eq!(routed("v2東京").1, vec!["'v2' <-> '東京':*"]);
        assert_eq!(routed("京x").1, vec!["'京' <-> 'x':*"]);
    }

    #[test]
    fn the_rest_of_a_word_is_words() {
        let (words, grams) = routed("deploy(10.1.2.3) 東京、大阪 error:palaver-42!");
        assert_eq!(grams, vec!["'10' <-> '1' <-> '2' <-> '3':*", "'東京':*", "'大阪':*", "'error' <-> 'palaver' <-> '42':*"]);
        assert_eq!(words, vec![word("deploy")]);
    }

    #[test]
    fn phrases_with_segments_are_their_words() {
        let (words, grams) = routed(r#""restart 10.1.2.3 now" "東京 タワー""#);
        assert_eq!(words, vec![word("restart"), word("now")]);
        assert_eq!(grams, vec!["'10' <-> '1' <-> '2' <-> '3':*", "'東京':*", "'タワ' <-> 'ワー':*"]);
    }

    #[test]
    fn exclusions_route_the_same_way() {
        let q = ok("deploy -10.1.2 -staging -東京");
        let r = route(&q.excluded);
        assert_eq!(r.words, vec![word("staging")]);
        assert_eq!(r.grams_query("|").as_deref(), Some("('10' <-> '1' <-> '2':*) | ('東京':*)"));
        assert_eq!(route(&q.terms).grams_query("&"), None);
    }

    #[test]
    fn lexemes_are_quotable_without_escapes() {
        let r = route(&ok(r"a'b-c it's_x 東京'x 東京2024 q\-z").terms);
        for l in &r.lexemes {
            assert!(l.chars().all(|c| c.is_ascii_alphanumeric() || is_cjk(c)), "{l:?}");
        }
        assert_eq!(r.lexemes, vec!["b", "c", "s", "x", "東京", "東京", "京", "2024"]);
        assert_eq!(r.words, vec![word("a"), word("it"), word("x"), word(r"q\-z")]);
    }

    #[test]
    fn cjk_ranges() {
        for c in ['東', 'あ', 'タ', 'ー', '々', '한', 'ｱ', '𠀋', 'ᄀ'] {
            assert!(is_cjk(c), "{c}");
        }
        for c in ['a', 'é', '。', '、', '！', 'Ａ', ' '] {
            assert!(!is_cjk(c), "{c}");
        }
    }

    // --- snippet ---

    #[test]
    fn snippet_escapes_everything() {
        let s = snippet(r#"<script>alert("x & y's")</script> run"#, &["script", "run"], 200);
        assert_eq!(s, "&lt;<mark>script</mark>&gt;alert(&quot;x &amp; y&#39;s&quot;)&lt;/<mark>script</mark>&gt; <mark>run</mark>");
        // Matching is on the text, not its escapes: "amp" or "lt" never match inside one.
        assert_eq!(snippet("a & b < c", &["amp", "lt", "quot"], 200), "a &amp; b &lt; c");
        // A word with markup characters is escaped inside its mark.
        assert_eq!(snippet("see <b>", &["<b>"], 200), "see <mark>&lt;b&gt;</mark>");
        assert_eq!(snippet("a &b", &["&b"], 200), "a <mark>&amp;b</mark>");
    }

    #[test]
    fn snippet_case_insensitive_and_prefixes() {
        assert_eq!(snippet("Running RUN run", &["run"], 200), "<mark>Run</mark>ning <mark>RUN</mark> <mark>run</mark>");
        // Only at a word's start.
        assert_eq!(snippet("rerun outrun run-time", &["run"], 200), "rerun outrun <mark>run</mark>-time");
        assert_eq!(snippet("RUN", &["Run"], 200), "<mark>RUN</mark>");
    }

    #[test]
    fn snippet_longest_first_no_overlap() {
        assert_eq!(snippet("deployment", &["deploy", "deployment"], 200), "<mark>deployment</mark>");
        assert_eq!(snippet("deployment", &["deployment", "deploy"], 200), "<mark>deployment</mark>");
        assert_eq!(snippet("deploy ment", &["deploy", "deploy ment"], 200), "<mark>deploy ment</mark>");
        // After a match, the next starts only at a boundary.
        assert_eq!(snippet("aaa", &["a"], 200), "<mark>a</mark>aa");
        assert_eq!(snippet("x", &["", "y"], 200), "x");
        assert_eq!(snippet("x", &[], 200), "x");
    }

    #[test]
    fn snippet_unicode() {
        assert_eq!(snippet("ÜNÏCODE and ünïcode", &["ünïcode"], 200), "<mark>ÜNÏCODE</mark> and <mark>ünïcode</mark>");
        assert_eq!(snippet("Ünïcodes", &["ÜNÏ"], 200), "<mark>Ünï</mark>codes");
        // CJK: anywhere in a run, as the grams match it.
        assert_eq!(snippet("日本語のテキスト 日本", &["日本"], 200), "<mark>日本</mark>語のテキスト <mark>日本</mark>");
        assert_eq!(snippet("東京タワーに行きました", &["タワー"], 200), "東京<mark>タワー</mark>に行きました");
        assert_eq!(snippet("我们的数据库服务器", &["数据"], 200), "我们的<mark>数据</mark>库服务器");
        // Identifiers: from the start of a part.
        assert_eq!(snippet("fetch_user_id_v2 failed", &["user_id"], 200), "fetch_<mark>user_id</mark>_v2 failed");
        assert_eq!(snippet("host 10.1.2.33 down", &["10.1.2"], 200), "host <mark>10.1.2</mark>.33 down");
        assert_eq!(snippet("err-palaver-42x", &["palaver-42"], 200), "err-<mark>palaver-42</mark>x");
        // Final sigma matches sigma.
        assert_eq!(snippet("ΟΔΟΣ", &["οδος"], 200), "<mark>ΟΔΟΣ</mark>");
        // A character whose lowercase is two characters (İ → i̇) matches as a whole or not at all.
        assert_eq!(snippet("İstanbul", &["i\u{307}stanbul"], 200), "<mark>İstanbul</mark>");
        assert_eq!(snippet("İstanbul", &["istanbul"], 200), "İstanbul");
        // Emoji and combining marks pass through.
        assert_eq!(snippet("🎉 party", &["party"], 200), "🎉 <mark>party</mark>");
    }

    #[test]
    fn snippet_short_text_whole() {
        let text = "a".repeat(200);
        assert_eq!(snippet(&text, &["zzz"], 200), text);
        assert_eq!(snippet("", &["x"], 200), "");
        assert_eq!(snippet("abc", &["b"], 0), "");
    }

    #[test]
    fn snippet_no_match_is_the_start() {
        let text = "é".repeat(300);
        let s = snippet(&text, &["nope"], 200);
        assert_eq!(s, format!("{}…", "é".repeat(200)));
    }

    #[test]
    fn snippet_window_around_first_match() {
        // 100 filler words of 5 characters ("w000 ".."w099 "), then the match.
        let filler: String = (0..100).map(|i| format!("w{i:03} ")).collect();
        let text = format!("{filler}needle {}", "tail ".repeat(100));
        let s = snippet(&text, &["needle"], 200);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        // 40 characters of context before the match: the last 8 filler words.
        let expected_start = format!("…{}<mark>needle</mark>", &filler[500 - 40..]);
        assert!(s.starts_with(&expected_start), "{s}");
        // 200 characters of the text between the ellipses, plus the tags.
        let shown = s.trim_start_matches('…').trim_end_matches('…').replace("<mark>", "").replace("</mark>", "");
        assert_eq!(shown.chars().count(), 200);
    }

    #[test]
    fn snippet_window_near_the_start_and_end() {
        // A match within the first 40 characters: the window starts at the text's start.
        let text = format!("abc needle {}", "x".repeat(300));
        let s = snippet(&text, &["needle"], 200);
        assert!(s.starts_with("abc <mark>needle</mark> x"), "{s}");
        assert!(s.ends_with("x…"));
        // A match near the end: the window is still full size, ending at the text's end.
        let text = format!("{} needle end", "x".repeat(300));
        let s = snippet(&text, &["needle"], 50);
        assert_eq!(s, format!("…{} <mark>needle</mark> end", "x".repeat(39)));
    }

    #[test]
    fn snippet_window_counts_characters() {
        // Multi-byte characters everywhere: no char is split, the count is in characters.
        let text = format!("{} ünïcode {}", "日".repeat(100), "本".repeat(100));
        let s = snippet(&text, &["ünïcode"], 60);
        assert_eq!(s, format!("…{} <mark>ünïcode</mark> {}…", "日".repeat(39), "本".repeat(12)));
        // 日 is alphanumeric: no boundary before ü, no match, so the window is the start.
        let text = format!("{}ünïcode{}", "日".repeat(100), "本".repeat(100));
        assert_eq!(snippet(&text, &["ünïcode"], 20), format!("{}…", "日".repeat(20)));
    }

    #[test]
    fn snippet_match_cut_by_the_window() {
        // A later match crossing the window's end is marked up to the cut.
        let text = format!("a {} needle", "b".repeat(4));
        // 13 characters: "a bbbb needle"; window of 10 with the match "a" at 0.
        let s = snippet(&text, &["a", "needle"], 10);
        assert_eq!(s, "<mark>a</mark> bbbb <mark>nee</mark>…");
    }
}
