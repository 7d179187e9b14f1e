//! Text that devices (or gateways) sent, made safe to show people: control characters and the invisible
//! formatting characters that reorder or hide text (bidirectional overrides such as U+202E, zero-width
//! characters) are written as visible escapes (`\u{202e}`), so a fault detail cannot disguise itself or what
//! follows it on a page or in a terminal.

/// Whether `c` would act on the text around it instead of being seen.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// `text` with every hidden character written as its escape; line breaks and tabs stay (a note may have lines,
/// and HTML shows them as spaces unless asked to keep them).
pub fn visible(text: &str) -> String {
    let hidden = |c: char| is_hidden(c) && !matches!(c, '\n' | '\t');
    if !text.chars().any(hidden) {
        return text.to_owned();
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_zero_widths_and_controls_are_shown_as_escapes() {
        assert_eq!(visible("JAM \u{202E}txt.exe"), "JAM \\u{202e}txt.exe");
        assert_eq!(visible("a\u{200B}b\u{7}c\nd"), "a\\u{200b}b\\u{7}c\nd");
        assert_eq!(visible("x\r\u{1b}[31m"), "x\\u{d}\\u{1b}[31m");
        assert_eq!(visible("Halle Süd – Tür 3"), "Halle Süd – Tür 3");
    }
}
