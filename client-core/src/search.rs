//! Full-text search text and queries, for Latin and Chinese alike.
//!
//! SQLite's `unicode61` tokenizer splits on spaces and punctuation, which Chinese does not
//! use: "上海华联超市" would be one token and a search for "华联" would miss it. So before
//! indexing, every Han (and kana) character becomes a token of its own; a query's run of Han
//! characters becomes a phrase of single-character tokens, which matches exactly where the
//! characters are adjacent — substring search for Chinese, prefix search for other words.

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0x20000..=0x2FA1F) // extensions B–F, supplement
}

/// The text to index: CJK characters separated by spaces.
pub(crate) fn index_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_cjk(c) {
            out.push(' ');
            out.push(c);
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// An FTS5 query for what the user typed, or `None` if there is nothing to search for.
///
/// Every term must match (AND). A Latin word matches as a prefix (`shang` finds
/// "Shanghai"); a run of Han characters matches as a phrase (`华联` finds "上海华联超市").
pub(crate) fn fts_query(input: &str) -> Option<String> {
    let mut terms: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut han: Vec<char> = Vec::new();
    let flush_word = |word: &mut String, terms: &mut Vec<String>| {
        if !word.is_empty() {
            terms.push(format!("\"{word}\"*"));
            word.clear();
        }
    };
    let flush_han = |han: &mut Vec<char>, terms: &mut Vec<String>| {
        if !han.is_empty() {
            let phrase: Vec<String> = han.iter().map(|c| c.to_string()).collect();
            terms.push(format!("\"{}\"", phrase.join(" ")));
            han.clear();
        }
    };
    for c in input.chars() {
        if is_cjk(c) {
            flush_word(&mut word, &mut terms);
            han.push(c);
        } else if c.is_alphanumeric() {
            flush_han(&mut han, &mut terms);
            word.push(c);
        } else {
            flush_word(&mut word, &mut terms);
            flush_han(&mut han, &mut terms);
        }
    }
    flush_word(&mut word, &mut terms);
    flush_han(&mut han, &mut terms);
    (!terms.is_empty()).then(|| terms.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn han_characters_become_tokens() {
        assert_eq!(
            index_text("上海A店").split_whitespace().collect::<Vec<_>>(),
            vec!["上", "海", "A", "店"]
        );
    }

    #[test]
    fn queries_mix_prefixes_and_phrases() {
        assert_eq!(fts_query("华联").as_deref(), Some("\"华 联\""));
        assert_eq!(
            fts_query("shang hua").as_deref(),
            Some("\"shang\"* \"hua\"*")
        );
        assert_eq!(
            fts_query("Café 北京").as_deref(),
            Some("\"Café\"* \"北 京\"")
        );
        assert_eq!(fts_query(" \"*() ").as_deref(), None);
        assert_eq!(fts_query("o'brien").as_deref(), Some("\"o\"* \"brien\"*"));
    }
}
