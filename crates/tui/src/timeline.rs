//! Laying out a conversation: each message becomes lines (day separator, sender header,
//! wrapped body with its receipt mark), and the viewport is found by walking items from
//! an anchor. Every function here touches only the items that end up visible (or the
//! page being scrolled over), never the whole conversation: a 100,000-message timeline
//! costs the same per frame as a 10-message one.

use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use time::OffsetDateTime;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::state::{Anchor, Conv, Key, Mark, Msg, State};

/// Columns before a message body.
pub const INDENT: usize = 2;
/// Columns kept free at the right for the receipt mark.
pub const MARK_WIDTH: usize = 3;
/// Consecutive messages of one sender closer than this share one header.
const GROUP_GAP: time::Duration = time::Duration::minutes(5);

/// Wraps `text` to `width` columns: at spaces when possible, inside a word when it is
/// longer than a line. Newlines start new lines. Always returns at least one line.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut w = 0usize;
        // Byte index in `line` just after the last space, and the width before it.
        let mut brk: Option<(usize, usize)> = None;
        for c in para.chars() {
            let cw = c.width().unwrap_or(0);
            if w + cw > width && !line.is_empty() {
                match brk {
                    // A space that does not fit ends the line right here.
                    _ if c == ' ' => {
                        out.push(std::mem::take(&mut line).trim_end_matches(' ').to_string());
                        w = 0;
                    }
                    Some((at, bw)) if at < line.len() => {
                        let rest = line.split_off(at);
                        out.push(line.trim_end_matches(' ').to_string());
                        line = rest;
                        w -= bw;
                    }
                    _ => {
                        out.push(std::mem::take(&mut line));
                        w = 0;
                    }
                }
                brk = None;
                if c == ' ' && line.is_empty() {
                    continue;
                }
            }
            line.push(c);
            w += cw;
            if c == ' ' {
                brk = Some((line.len(), w));
            }
        }
        out.push(line);
    }
    out
}

fn local(state: &State, t: OffsetDateTime) -> OffsetDateTime {
    t.to_offset(state.utc_offset)
}

pub fn format_time(state: &State, t: OffsetDateTime) -> String {
    local(state, t)
        .format(&state.config.timestamp)
        .unwrap_or_else(|_| "??:??".into())
}

fn day_label(state: &State, t: OffsetDateTime) -> String {
    let d = local(state, t);
    format!("{}, {} {} {}", d.weekday(), d.day(), d.month(), d.year())
}

/// The color of a sender's name: a stable hash over the theme's palette.
pub fn name_style(state: &State, name: &str) -> Style {
    let t = &state.config.theme;
    let color = if name == state.me {
        t.own_name
    } else {
        let h = name
            .bytes()
            .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
        t.names[h as usize % t.names.len().max(1)]
    };
    Style::default().fg(color).add_modifier(Modifier::BOLD)
}

/// The rendered lines of one item, `width` columns wide.
pub fn item_lines(state: &State, conv: &Conv, key: Key, width: u16) -> Vec<Line<'static>> {
    let Some(m) = conv.get(key) else {
        return Vec::new();
    };
    let width = usize::from(width);
    let theme = &state.config.theme;
    let prev = conv.prev_key(key).and_then(|k| conv.get(k));
    let mut lines = Vec::new();
    if prev.is_none() && conv.reached_start && key == conv.first_key().unwrap_or(key) {
        lines.push(Line::styled(
            "— start of the conversation —",
            Style::default().fg(theme.dim),
        ));
    }
    let new_day =
        prev.is_none_or(|p| local(state, p.sent_at).date() != local(state, m.sent_at).date());
    if new_day {
        let label = format!(" {} ", day_label(state, m.sent_at));
        let lw = label.width();
        let left = width.saturating_sub(lw) / 2;
        let right = width.saturating_sub(lw + left);
        lines.push(Line::styled(
            format!("{}{label}{}", "─".repeat(left), "─".repeat(right)),
            Style::default().fg(theme.dim),
        ));
    }
    if m.system {
        let body_width = width.saturating_sub(INDENT + 2).max(1);
        for (i, text) in wrap(&m.text, body_width).into_iter().enumerate() {
            let lead = if i == 0 { "· " } else { "  " };
            lines.push(Line::styled(
                format!("{}{lead}{text}", " ".repeat(INDENT)),
                Style::default()
                    .fg(theme.dim)
                    .add_modifier(Modifier::ITALIC),
            ));
        }
        return lines;
    }
    let header = new_day
        || prev
            .is_none_or(|p| p.sender != m.sender || p.system || m.sent_at - p.sent_at > GROUP_GAP);
    if header {
        lines.push(Line::from(vec![
            Span::styled(m.sender.clone(), name_style(state, &m.sender)),
            Span::raw(" "),
            Span::styled(
                format_time(state, m.sent_at),
                Style::default().fg(theme.dim),
            ),
        ]));
    }
    let body_width = width.saturating_sub(INDENT + MARK_WIDTH).max(1);
    let body = wrap(&m.text, body_width);
    let mine = m.sender == state.me;
    let n = body.len();
    for (i, text) in body.into_iter().enumerate() {
        let mut spans = vec![Span::raw(" ".repeat(INDENT))];
        let tw = text.width();
        spans.push(Span::raw(text));
        if mine && i + 1 == n {
            let (mark, style) = match m.mark() {
                Mark::Pending => ("…", Style::default().fg(theme.dim)),
                Mark::Failed => (
                    "!",
                    Style::default()
                        .fg(theme.error)
                        .add_modifier(Modifier::BOLD),
                ),
                Mark::Sent => ("✓", Style::default().fg(theme.dim)),
                Mark::Delivered => ("✓✓", Style::default().fg(theme.dim)),
                Mark::Read => (
                    "✔✔",
                    Style::default().fg(theme.read).add_modifier(Modifier::BOLD),
                ),
            };
            let pad = width.saturating_sub(INDENT + tw + mark.width());
            spans.push(Span::raw(" ".repeat(pad)));
            spans.push(Span::styled(mark, style));
        }
        lines.push(Line::from(spans));
    }
    if let Some(err) = &m.failed {
        lines.push(Line::styled(
            format!("{}not sent: {err}", " ".repeat(INDENT)),
            Style::default().fg(theme.error),
        ));
    }
    lines
}

pub fn height(state: &State, conv: &Conv, key: Key, width: u16) -> usize {
    item_lines(state, conv, key, width).len()
}

/// The anchor of the top edge while following the newest message. The bool is true when
/// that top edge is the very first loaded line.
pub fn follow_top(state: &State, conv: &Conv, width: u16, rows: usize) -> (Option<Anchor>, bool) {
    let mut key = conv.last_key();
    let mut total = 0;
    while let Some(k) = key {
        let h = height(state, conv, k, width);
        total += h;
        if total >= rows {
            return (
                Some(Anchor {
                    key: k,
                    offset: total - rows,
                }),
                false,
            );
        }
        key = conv.prev_key(k);
    }
    (conv.first_key().map(|key| Anchor { key, offset: 0 }), true)
}

/// Scrolls up `n` lines. Returns the new anchor and whether the top was reached.
pub fn scroll_up(
    state: &State,
    conv: &Conv,
    width: u16,
    rows: usize,
    n: usize,
) -> (Option<Anchor>, bool) {
    let start = match conv.anchor {
        Some(a) => Some(a),
        None => follow_top(state, conv, width, rows).0,
    };
    let Some(mut a) = start else {
        return (None, true);
    };
    let mut need = n;
    loop {
        if a.offset >= need {
            a.offset -= need;
            break;
        }
        need -= a.offset;
        match conv.prev_key(a.key) {
            Some(p) => {
                a = Anchor {
                    key: p,
                    offset: height(state, conv, p, width),
                };
            }
            None => {
                a.offset = 0;
                return (Some(a), true);
            }
        }
    }
    let at_top = a.offset == 0 && conv.prev_key(a.key).is_none();
    // Scrolled up but everything still fits: nothing to scroll.
    if at_top && lines_from(state, conv, a, width, rows) < rows {
        return (None, true);
    }
    (Some(a), at_top)
}

/// How many lines there are from `a` to the end, counting at most `limit`.
fn lines_from(state: &State, conv: &Conv, a: Anchor, width: u16, limit: usize) -> usize {
    let mut total = height(state, conv, a.key, width).saturating_sub(a.offset);
    let mut key = conv.next_key(a.key);
    while let Some(k) = key {
        if total >= limit {
            break;
        }
        total += height(state, conv, k, width);
        key = conv.next_key(k);
    }
    total
}

/// Scrolls down `n` lines; `None` means back to following the newest message.
pub fn scroll_down(
    state: &State,
    conv: &Conv,
    width: u16,
    rows: usize,
    n: usize,
) -> Option<Anchor> {
    let mut a = conv.anchor?;
    a.offset += n;
    loop {
        let h = height(state, conv, a.key, width);
        if a.offset < h {
            break;
        }
        a.offset -= h;
        a.key = conv.next_key(a.key)?;
    }
    (lines_from(state, conv, a, width, rows) > rows).then_some(a)
}

/// The lines to draw, top to bottom (fewer than `rows` when the conversation is short:
/// the caller aligns them to the bottom).
pub fn visible(state: &State, conv: &Conv, width: u16, rows: usize) -> Vec<Line<'static>> {
    if let Some(a) = conv.anchor
        && conv.get(a.key).is_some()
    {
        let mut out: Vec<Line<'static>> = Vec::with_capacity(rows);
        let first = item_lines(state, conv, a.key, width);
        let skip = a.offset.min(first.len().saturating_sub(1));
        out.extend(first.into_iter().skip(skip));
        let mut key = conv.next_key(a.key);
        while out.len() < rows {
            let Some(k) = key else { break };
            out.extend(item_lines(state, conv, k, width));
            key = conv.next_key(k);
        }
        if out.len() >= rows {
            out.truncate(rows);
            return out;
        }
    }
    let mut chunks: Vec<Vec<Line<'static>>> = Vec::new();
    let mut total = 0;
    let mut key = conv.last_key();
    while let Some(k) = key {
        if total >= rows {
            break;
        }
        let lines = item_lines(state, conv, k, width);
        total += lines.len();
        chunks.push(lines);
        key = conv.prev_key(k);
    }
    let mut out: Vec<Line<'static>> = chunks.into_iter().rev().flatten().collect();
    if out.len() > rows {
        out.drain(..out.len() - rows);
    }
    out
}

/// Items above the anchor still loaded; fewer than this asks for an older page.
pub const PREFETCH_ITEMS: usize = 40;

/// True when the view is near the oldest loaded message and older ones may exist.
pub fn wants_older(conv: &Conv) -> bool {
    wants_older_at(conv, conv.anchor)
}

/// Like [`wants_older`] for the view at `anchor`.
pub fn wants_older_at(conv: &Conv, anchor: Option<Anchor>) -> bool {
    if conv.reached_start || conv.loading_older {
        return false;
    }
    match anchor {
        None => conv.messages.len() < PREFETCH_ITEMS,
        Some(a) => match a.key {
            Key::Seq(s) => conv.messages.range(..s).nth_back(PREFETCH_ITEMS).is_none(),
            Key::Pending(_) => conv.messages.len() < PREFETCH_ITEMS,
        },
    }
}

/// The text for a notification or a switcher preview: the first line, shortened.
pub fn preview(m: &Msg, max: usize) -> String {
    let first = m.text.lines().next().unwrap_or("");
    let mut out = String::new();
    let mut w = 0;
    for c in first.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw > max {
            out.push('…');
            break;
        }
        out.push(c);
        w += cw;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_spaces_and_inside_long_words() {
        assert_eq!(wrap("hello world foo", 11), ["hello world", "foo"]);
        assert_eq!(wrap("hello world foo", 8), ["hello", "world", "foo"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("a\n\nb", 10), ["a", "", "b"]);
        assert_eq!(wrap("", 10), [""]);
        // Wide characters take two columns each.
        assert_eq!(wrap("日本語のテキスト", 6), ["日本語", "のテキ", "スト"]);
        assert_eq!(wrap("emoji 😀😀😀", 8), ["emoji", "😀😀😀"]);
        for line in wrap("ab cd 😀😀 ef  gh日本 ijklmnop", 5) {
            assert!(line.width() <= 5, "{line:?}");
        }
    }
}
