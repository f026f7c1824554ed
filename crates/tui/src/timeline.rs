//! Laying out a conversation: each message becomes lines (day separator, sender header,
//! wrapped body with its receipt mark), and the viewport is found by walking items from
//! an anchor. Every function here touches only the items that end up visible (or the
//! page being scrolled over), never the whole conversation: a 100,000-message timeline
//! costs the same per frame as a 10-message one.

use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use time::OffsetDateTime;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::files::Att;
use crate::preview::{Slot, preview_box};
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

/// Where a preview box is within an item's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The first of its rows, counted in the item's lines.
    pub line: usize,
    /// The column of its left edge within the timeline.
    pub col: u16,
    pub id: String,
    pub cols: u16,
    pub rows: u16,
}

/// One item laid out: its lines and where image previews go over them.
#[derive(Debug, Clone, Default)]
pub struct ItemLayout {
    pub lines: Vec<Line<'static>>,
    pub previews: Vec<Placement>,
}

/// The rendered lines of one item, `width` columns wide.
pub fn item_lines(state: &State, conv: &Conv, key: Key, width: u16) -> Vec<Line<'static>> {
    item_layout(state, conv, key, width).lines
}

/// Cuts `s` to at most `max` columns, ending with `…` when it was longer.
pub fn truncate_to(s: &str, max: usize) -> String {
    if s.width() <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw + 1 > max {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

/// The line of one attachment: `📎 build.log  2.1 MB  text/plain`, fitted to `room`
/// columns (the name is shortened first, then the type and the size are left out).
fn file_spans(state: &State, att: &Att, room: usize, selected: bool) -> Vec<Span<'static>> {
    let theme = &state.config.theme;
    let base = if selected {
        Style::default()
            .bg(theme.selected_bg)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    let dim = base.fg(theme.dim);
    let icon = "📎 ";
    let size = att.size_label();
    let mut extras: Vec<String> = [size, att.mime.clone()]
        .into_iter()
        .filter(|e| !e.is_empty())
        .collect();
    let extras_width = |e: &[String]| e.iter().map(|x| 2 + x.width()).sum::<usize>();
    // Keep at least a few columns of the name before dropping the details.
    while !extras.is_empty()
        && icon.width() + 8.min(att.name.width()) + extras_width(&extras) > room
    {
        extras.pop();
    }
    let name_room = room
        .saturating_sub(icon.width() + extras_width(&extras))
        .max(1);
    let mut spans = vec![
        Span::styled(icon, base),
        Span::styled(truncate_to(&att.name, name_room), base),
    ];
    for e in extras {
        spans.push(Span::styled(format!("  {e}"), dim));
    }
    spans
}

/// Lays out one item, `width` columns wide.
pub fn item_layout(state: &State, conv: &Conv, key: Key, width: u16) -> ItemLayout {
    let Some(m) = conv.get(key) else {
        return ItemLayout::default();
    };
    let width = usize::from(width);
    let theme = &state.config.theme;
    let prev = conv.prev_key(key).and_then(|k| conv.get(k));
    let mut lines = Vec::new();
    let mut previews = Vec::new();
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
        return ItemLayout { lines, previews };
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
    // A message that is only files shows only its files.
    let text_lines = if m.attachments.is_empty() || !m.text.trim().is_empty() {
        wrap(&m.text, body_width)
    } else {
        Vec::new()
    };
    let mut mark_line = None;
    for text in text_lines {
        mark_line = Some(lines.len());
        lines.push(Line::from(vec![
            Span::raw(" ".repeat(INDENT)),
            Span::raw(text),
        ]));
    }
    if !m.attachments.is_empty() {
        let selected = state
            .files
            .as_ref()
            .and_then(|f| f.current())
            .filter(|(k, _)| *k == key)
            .map(|(_, i)| i);
        for (i, att) in m.attachments.iter().enumerate() {
            let sel = selected == Some(i);
            let lead = if sel {
                Span::styled(
                    format!("{:<INDENT$}", "▸"),
                    Style::default().fg(theme.accent),
                )
            } else {
                Span::raw(" ".repeat(INDENT))
            };
            let mut spans = vec![lead];
            spans.extend(file_spans(state, att, body_width, sel));
            mark_line = Some(lines.len());
            lines.push(Line::from(spans));
            if !state.previews.enabled {
                continue;
            }
            let Some((cols, rows)) = preview_box(
                att,
                state.previews.cell,
                body_width.min(usize::from(u16::MAX)) as u16,
            ) else {
                continue;
            };
            let note = match state.previews.get(&att.id) {
                Some(Slot::Ready(_)) => "",
                Some(Slot::Failed) => "(no preview)",
                _ => "loading preview…",
            };
            previews.push(Placement {
                line: lines.len(),
                col: INDENT as u16,
                id: att.id.clone(),
                cols,
                rows,
            });
            for r in 0..rows {
                let text = if r == 0 { note } else { "" };
                lines.push(Line::styled(
                    format!("{}{text}", " ".repeat(INDENT)),
                    Style::default().fg(theme.dim),
                ));
            }
        }
    }
    if m.sender == state.me
        && let Some(at) = mark_line
    {
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
        let line = &mut lines[at];
        let pad = width.saturating_sub(line.width() + mark.width());
        line.spans.push(Span::raw(" ".repeat(pad)));
        line.spans.push(Span::styled(mark, style));
    }
    if let Some(err) = &m.failed {
        lines.push(Line::styled(
            format!("{}not sent: {err}", " ".repeat(INDENT)),
            Style::default().fg(theme.error),
        ));
    }
    ItemLayout { lines, previews }
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
    visible_layout(state, conv, width, rows).lines
}

/// A preview box on screen: `row` is its first row counted from the first drawn line
/// (negative when its top is scrolled off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub row: isize,
    pub placement: Placement,
}

/// What [`visible`] draws, with the previews' boxes.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub lines: Vec<Line<'static>>,
    pub previews: Vec<Shown>,
    /// The items drawn, top to bottom.
    pub keys: Vec<Key>,
}

fn place(previews: &mut Vec<Shown>, item: &ItemLayout, first_row: isize) {
    for p in &item.previews {
        previews.push(Shown {
            row: first_row + p.line as isize,
            placement: p.clone(),
        });
    }
}

/// Lays out what is visible: lines, preview boxes and the items they come from.
pub fn visible_layout(state: &State, conv: &Conv, width: u16, rows: usize) -> View {
    if let Some(a) = conv.anchor
        && conv.get(a.key).is_some()
    {
        let mut view = View {
            lines: Vec::with_capacity(rows),
            ..View::default()
        };
        let first = item_layout(state, conv, a.key, width);
        let skip = a.offset.min(first.lines.len().saturating_sub(1));
        place(&mut view.previews, &first, -(skip as isize));
        view.keys.push(a.key);
        view.lines.extend(first.lines.into_iter().skip(skip));
        let mut key = conv.next_key(a.key);
        while view.lines.len() < rows {
            let Some(k) = key else { break };
            let item = item_layout(state, conv, k, width);
            place(&mut view.previews, &item, view.lines.len() as isize);
            view.keys.push(k);
            view.lines.extend(item.lines);
            key = conv.next_key(k);
        }
        if view.lines.len() >= rows {
            view.lines.truncate(rows);
            return view;
        }
    }
    let mut chunks: Vec<(Key, ItemLayout)> = Vec::new();
    let mut total = 0;
    let mut key = conv.last_key();
    while let Some(k) = key {
        if total >= rows {
            break;
        }
        let item = item_layout(state, conv, k, width);
        total += item.lines.len();
        chunks.push((k, item));
        key = conv.prev_key(k);
    }
    let cut = total.saturating_sub(rows) as isize;
    let mut view = View {
        lines: Vec::with_capacity(total.min(rows)),
        ..View::default()
    };
    let mut at: isize = 0;
    for (k, item) in chunks.into_iter().rev() {
        place(&mut view.previews, &item, at - cut);
        at += item.lines.len() as isize;
        view.keys.push(k);
        view.lines.extend(item.lines);
    }
    if view.lines.len() > rows {
        view.lines.drain(..view.lines.len() - rows);
    }
    view
}

/// The anchor that brings item `key` into view: unchanged when the item is already
/// wholly on screen, else with the item at the top (or following the newest message
/// when the item is in the last screenful).
pub fn reveal(state: &State, conv: &Conv, key: Key, width: u16, rows: usize) -> Option<Anchor> {
    let view = visible_layout(state, conv, width, rows);
    let h = height(state, conv, key, width);
    if let Some(i) = view.keys.iter().position(|k| *k == key) {
        // Lines before it on screen (the first item may be partly scrolled off).
        let first_skip = conv.anchor.map_or(0, |a| {
            if Some(&a.key) == view.keys.first() {
                a.offset
            } else {
                0
            }
        });
        let before: usize = view.keys[..i]
            .iter()
            .map(|k| height(state, conv, *k, width))
            .sum::<usize>();
        let top = before as isize - first_skip as isize;
        let follow_cut = if conv.anchor.is_none() {
            let total: usize = view
                .keys
                .iter()
                .map(|k| height(state, conv, *k, width))
                .sum();
            total.saturating_sub(rows) as isize
        } else {
            0
        };
        let top = top - follow_cut;
        if top >= 0 && top as usize + h <= rows {
            return conv.anchor;
        }
    }
    let a = Anchor { key, offset: 0 };
    (lines_from(state, conv, a, width, rows + 1) > rows).then_some(a)
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
    let files;
    let mut first = m.text.lines().next().unwrap_or("");
    if first.trim().is_empty() && !m.attachments.is_empty() {
        files = match m.attachments.as_slice() {
            [a] if a.size.is_some() => format!("sent {} ({})", a.name, a.size_label()),
            [a] => format!("sent {}", a.name),
            many => format!("sent {} files", many.len()),
        };
        first = &files;
    }
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
