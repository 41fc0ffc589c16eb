//! When the text model may speak, and how far markup alone may push it.
//!
//! The model was trained on mail bodies: HTML spam against mostly plain-text ham. On the web
//! that makes it overconfident about things it never saw, so the classifier applies three
//! abstentions and one cap (figures from 5-fold out-of-fold margins on the training split,
//! 1329 spam / 2909 ham; see models/README.md):
//!
//! 1. **Media type**: only the types it was trained on (HTML, XHTML, plain text, mail) are
//!    scored; JSON, XML, CSS, scripts get no finding.
//! 2. **Binary junk**: more than [`MAX_JUNK`] of the characters are C0 controls, DEL or U+FFFD
//!    (bytes that are not text in the charset they were read in). Random bytes read as
//!    windows-1252 are ~10.5% such characters; no training document exceeds 2.6% (ESC is
//!    not counted: ISO-2022-JP text is full of it).
//! 3. **Too little text**: the visible text has fewer than [`MIN_WORDS`] words of two or more
//!    letters. Stock error pages have 3–8; the shortest ham has 5; 20 of 1329 spam bodies
//!    (10 image-only) are below 10.
//! 4. **Markup cap**: when the visible text differs from the raw text (HTML), positive points
//!    are capped at `max(points of the visible text, 0) + MARKUP_ALLOWANCE · spam_threshold`.
//!    Markup-heavy pages with ordinary visible text (CDN and proxy error pages, product pages)
//!    then stay below the spam threshold: markup alone can make a page `suspect`, not `spam`.

use crate::scan::Document;

/// Fewest words (of two or more letters) in the visible text for the model to score.
pub const MIN_WORDS: usize = 10;

/// Largest fraction of control or replacement characters the model still reads as text.
pub const MAX_JUNK: f64 = 0.05;

/// How much of the spam threshold markup may add beyond what the visible text earns.
pub const MARKUP_ALLOWANCE: f64 = 0.5;

/// Why the model says nothing about a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abstain {
    /// Not a media type the model was trained on.
    MediaType,
    /// Mostly control or replacement characters: binary bytes read as text.
    Junk,
    /// Too few words in the visible text to judge.
    TooShort,
}

/// True for the media types of the training corpus (mail bodies: HTML and plain text).
pub fn trained_media_type(media_type: &str) -> bool {
    matches!(
        media_type,
        "text/html" | "application/xhtml+xml" | "text/plain" | "message/rfc822"
    )
}

/// True for a character that does not occur in text: a C0 control other than whitespace and
/// ESC (ISO-2022 shifts), DEL, or U+FFFD (an undecodable byte).
fn is_junk(c: char) -> bool {
    (c < ' ' && !c.is_whitespace() && c != '\u{1b}') || c == '\u{7f}' || c == '\u{fffd}'
}

/// The fraction of junk characters among the first `max_bytes` bytes of `text`.
pub fn junk_fraction(text: &str, max_bytes: usize) -> f64 {
    let (mut junk, mut total) = (0usize, 0usize);
    for (at, c) in text.char_indices() {
        if at >= max_bytes {
            break;
        }
        total += 1;
        junk += usize::from(is_junk(c));
    }
    if total == 0 {
        0.0
    } else {
        junk as f64 / total as f64
    }
}

/// Words of two or more letters in `text`, counting no further than `limit`.
pub fn letter_words(text: &str, limit: usize) -> usize {
    super::features::words(text)
        .filter(|w| w.chars().filter(|c| c.is_alphabetic()).nth(1).is_some())
        .take(limit)
        .count()
}

/// Why the model must not score `doc`, if it must not; `max_bytes` is the model's window.
pub fn abstain(doc: &Document, max_bytes: usize) -> Option<Abstain> {
    if !trained_media_type(&doc.media_type) {
        return Some(Abstain::MediaType);
    }
    if junk_fraction(&doc.raw_text, max_bytes) > MAX_JUNK {
        return Some(Abstain::Junk);
    }
    if letter_words(&doc.text, MIN_WORDS) < MIN_WORDS {
        return Some(Abstain::TooShort);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(media_type: &str, raw: &str, text: &str) -> Document {
        Document {
            media_type: media_type.to_string(),
            raw_text: raw.to_string(),
            text: text.to_string(),
            ..Document::default()
        }
    }

    const TEN: &str = "one two three four five six seven eight nine ten";

    #[test]
    fn only_trained_media_types_are_scored() {
        for t in [
            "text/html",
            "application/xhtml+xml",
            "text/plain",
            "message/rfc822",
        ] {
            assert_eq!(abstain(&doc(t, TEN, TEN), 1 << 17), None, "{t}");
        }
        for t in [
            "application/json",
            "text/css",
            "text/javascript",
            "application/xml",
        ] {
            assert_eq!(
                abstain(&doc(t, TEN, TEN), 1 << 17),
                Some(Abstain::MediaType),
                "{t}"
            );
        }
    }

    #[test]
    fn words_need_two_letters_and_counting_stops_at_the_limit() {
        assert_eq!(
            letter_words("a 1 22 x9 ab 403 Forbidden nginx/1.22.1", 100),
            3
        );
        assert_eq!(letter_words(TEN, 4), 4);
        let nine = "one two three four five six seven eight nine";
        assert_eq!(
            abstain(&doc("text/plain", nine, nine), 1 << 17),
            Some(Abstain::TooShort)
        );
        // Markup words do not count: only the visible text does.
        let raw = format!("<html><head><title>x</title></head><body>{nine}</body></html>");
        assert_eq!(
            abstain(&doc("text/html", &raw, nine), 1 << 17),
            Some(Abstain::TooShort)
        );
    }

    #[test]
    fn control_and_replacement_characters_are_junk_but_esc_and_whitespace_are_not() {
        assert_eq!(junk_fraction("", 100), 0.0);
        assert_eq!(junk_fraction("ab\u{0}\u{fffd}", 100), 0.5);
        assert_eq!(junk_fraction("a\tb\r\n\u{c}\u{1b}$B", 100), 0.0);
        // Only the window counts.
        assert_eq!(junk_fraction("abcd\u{0}\u{0}\u{0}\u{0}", 4), 0.0);
        let junky = format!("{TEN}{}", "\u{1}".repeat(10));
        assert_eq!(
            abstain(&doc("text/plain", &junky, &junky), 1 << 17),
            Some(Abstain::Junk)
        );
    }
}
