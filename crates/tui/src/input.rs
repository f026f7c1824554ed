//! The message input: a multi-line buffer with a cursor and readline editing, plus the
//! input history. Pure data; the keymap decides which method a key calls.

use unicode_width::UnicodeWidthChar;

/// Text being typed. `cursor` is a byte offset on a char boundary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Editor {
    text: String,
    cursor: usize,
    /// The last text removed by a kill command, for yank.
    killed: String,
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Editor {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn set(&mut self, text: impl Into<String>) {
        self.text = text.into();
        self.cursor = self.text.len();
    }

    /// Empties the input and returns what it held.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    pub fn insert(&mut self, c: char) {
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    pub fn insert_str(&mut self, s: &str) {
        self.text.insert_str(self.cursor, s);
        self.cursor += s.len();
    }

    /// Replaces the byte range `start..end` with `s` and puts the cursor after it.
    pub fn replace_range(&mut self, start: usize, end: usize, s: &str) {
        self.text.replace_range(start..end, s);
        self.cursor = start + s.len();
    }

    fn prev_boundary(&self, i: usize) -> usize {
        self.text[..i]
            .char_indices()
            .next_back()
            .map(|(j, _)| j)
            .unwrap_or(0)
    }

    fn next_boundary(&self, i: usize) -> usize {
        self.text[i..]
            .chars()
            .next()
            .map(|c| i + c.len_utf8())
            .unwrap_or(i)
    }

    pub fn left(&mut self) {
        self.cursor = self.prev_boundary(self.cursor);
    }

    pub fn right(&mut self) {
        self.cursor = self.next_boundary(self.cursor);
    }

    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            let start = self.prev_boundary(self.cursor);
            self.text.replace_range(start..self.cursor, "");
            self.cursor = start;
        }
    }

    pub fn delete(&mut self) {
        if self.cursor < self.text.len() {
            let end = self.next_boundary(self.cursor);
            self.text.replace_range(self.cursor..end, "");
        }
    }

    fn line_start_of(&self, i: usize) -> usize {
        self.text[..i].rfind('\n').map(|j| j + 1).unwrap_or(0)
    }

    fn line_end_of(&self, i: usize) -> usize {
        self.text[i..]
            .find('\n')
            .map(|j| i + j)
            .unwrap_or(self.text.len())
    }

    pub fn line_start(&mut self) {
        self.cursor = self.line_start_of(self.cursor);
    }

    pub fn line_end(&mut self) {
        self.cursor = self.line_end_of(self.cursor);
    }

    pub fn at_end(&self) -> bool {
        self.cursor == self.text.len()
    }

    /// Readline's backward-word (M-b): to the start of the previous word.
    pub fn word_back(&mut self) {
        let before = &self.text[..self.cursor];
        let mut idx = self.cursor;
        let mut seen_word = false;
        for (i, c) in before.char_indices().rev() {
            if is_word(c) {
                seen_word = true;
                idx = i;
            } else if seen_word {
                break;
            } else {
                idx = i;
            }
        }
        self.cursor = if seen_word { idx } else { 0 };
    }

    /// Readline's forward-word (M-f): to the end of the next word.
    pub fn word_forward(&mut self) {
        let mut seen_word = false;
        let mut idx = self.text.len();
        for (i, c) in self.text[self.cursor..].char_indices() {
            if is_word(c) {
                seen_word = true;
            } else if seen_word {
                idx = self.cursor + i;
                break;
            }
        }
        self.cursor = idx;
    }

    fn kill(&mut self, start: usize, end: usize) {
        if start < end {
            self.killed = self.text[start..end].to_string();
            self.text.replace_range(start..end, "");
            self.cursor = start;
        }
    }

    /// C-w (unix-word-rubout): back to the previous whitespace.
    pub fn kill_word_back(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end_matches([' ', '\t']);
        let start = trimmed
            .rfind(char::is_whitespace)
            .map(|i| i + trimmed[i..].chars().next().map_or(1, char::len_utf8))
            .unwrap_or(0);
        self.kill(start, self.cursor);
    }

    /// C-u (unix-line-discard): to the start of the line.
    pub fn kill_to_start(&mut self) {
        let start = self.line_start_of(self.cursor);
        self.kill(start, self.cursor);
    }

    /// Kill to the end of the line.
    pub fn kill_to_end(&mut self) {
        let end = self.line_end_of(self.cursor);
        self.kill(self.cursor, end);
    }

    pub fn yank(&mut self) {
        let k = self.killed.clone();
        self.insert_str(&k);
    }

    /// True when the cursor is on the first line.
    pub fn on_first_line(&self) -> bool {
        !self.text[..self.cursor].contains('\n')
    }

    pub fn on_last_line(&self) -> bool {
        !self.text[self.cursor..].contains('\n')
    }

    fn column(&self) -> usize {
        let start = self.line_start_of(self.cursor);
        self.text[start..self.cursor]
            .chars()
            .map(|c| c.width().unwrap_or(0))
            .sum()
    }

    fn to_column(&self, line_start: usize, col: usize) -> usize {
        let end = self.line_end_of(line_start);
        let mut w = 0;
        for (i, c) in self.text[line_start..end].char_indices() {
            if w >= col {
                return line_start + i;
            }
            w += c.width().unwrap_or(0);
        }
        end
    }

    pub fn line_up(&mut self) {
        let start = self.line_start_of(self.cursor);
        if start == 0 {
            return;
        }
        let col = self.column();
        let prev_start = self.line_start_of(start - 1);
        self.cursor = self.to_column(prev_start, col);
    }

    pub fn line_down(&mut self) {
        let end = self.line_end_of(self.cursor);
        if end == self.text.len() {
            return;
        }
        let col = self.column();
        self.cursor = self.to_column(end + 1, col);
    }

    /// The word before the cursor (no whitespace) and its start offset.
    pub fn word_before_cursor(&self) -> (usize, &str) {
        let before = &self.text[..self.cursor];
        let start = before
            .rfind(char::is_whitespace)
            .map(|i| i + before[i..].chars().next().map_or(1, char::len_utf8))
            .unwrap_or(0);
        (start, &before[start..])
    }
}

/// Past inputs, newest last, navigated with Up/Down. What was being typed when browsing
/// began is kept and comes back at the bottom.
#[derive(Debug, Clone, Default)]
pub struct History {
    entries: Vec<String>,
    /// Position while browsing (`None`: not browsing).
    pos: Option<usize>,
    draft: String,
}

const HISTORY_MAX: usize = 500;

impl History {
    pub fn push(&mut self, s: &str) {
        self.pos = None;
        if s.trim().is_empty() || self.entries.last().is_some_and(|l| l == s) {
            return;
        }
        self.entries.push(s.to_string());
        if self.entries.len() > HISTORY_MAX {
            self.entries.remove(0);
        }
    }

    pub fn reset(&mut self) {
        self.pos = None;
    }

    /// The previous entry, given what is typed now.
    pub fn older(&mut self, current: &str) -> Option<String> {
        let pos = match self.pos {
            None => {
                if self.entries.is_empty() {
                    return None;
                }
                self.draft = current.to_string();
                self.entries.len() - 1
            }
            Some(0) => return None,
            Some(p) => p - 1,
        };
        self.pos = Some(pos);
        Some(self.entries[pos].clone())
    }

    pub fn newer(&mut self) -> Option<String> {
        let p = self.pos?;
        if p + 1 < self.entries.len() {
            self.pos = Some(p + 1);
            Some(self.entries[p + 1].clone())
        } else {
            self.pos = None;
            Some(std::mem::take(&mut self.draft))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ed(text: &str, cursor: usize) -> Editor {
        Editor {
            text: text.into(),
            cursor,
            killed: String::new(),
        }
    }

    #[test]
    fn readline_motions() {
        let mut e = ed("hello big world", 15);
        e.word_back();
        assert_eq!(e.cursor(), 10);
        e.word_back();
        assert_eq!(e.cursor(), 6);
        e.word_forward();
        assert_eq!(e.cursor(), 9);
        e.line_start();
        assert_eq!(e.cursor(), 0);
        e.line_end();
        assert_eq!(e.cursor(), 15);
        e.kill_word_back();
        assert_eq!(e.text(), "hello big ");
        e.kill_word_back();
        assert_eq!(e.text(), "hello ");
        e.yank();
        assert_eq!(e.text(), "hello big ");
        e.kill_to_start();
        assert_eq!(e.text(), "");
    }

    #[test]
    fn multiline_and_wide_chars() {
        let mut e = Editor::default();
        for c in "日本語 ok".chars() {
            e.insert(c);
        }
        e.insert('\n');
        e.insert_str("second");
        e.line_start();
        assert_eq!(&e.text()[e.cursor()..], "second");
        e.line_up();
        assert_eq!(e.cursor(), 0);
        e.right();
        assert_eq!(e.cursor(), "日".len());
        e.backspace();
        assert_eq!(e.text(), "本語 ok\nsecond");
        e.line_end();
        e.kill_to_end();
        e.line_down();
        assert!(e.on_last_line());
        e.kill_to_start();
        assert_eq!(e.text(), "本語 ok\n");
        e.delete();
        assert_eq!(e.text(), "本語 ok\n");
        e.yank();
        assert_eq!(e.text(), "本語 ok\nsecond");
    }

    #[test]
    fn history_browses_and_restores_the_draft() {
        let mut h = History::default();
        h.push("one");
        h.push("two");
        h.push("two");
        assert_eq!(h.older("draft").as_deref(), Some("two"));
        assert_eq!(h.older("two").as_deref(), Some("one"));
        assert_eq!(h.older("one"), None);
        assert_eq!(h.newer().as_deref(), Some("two"));
        assert_eq!(h.newer().as_deref(), Some("draft"));
        assert_eq!(h.newer(), None);
    }
}
