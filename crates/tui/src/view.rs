//! Rendering: a pure function of `&State` (`impl Widget for &State`), plus where the
//! terminal cursor goes. No I/O, no clock: what is drawn depends on the state alone.

use natter_protocol::{ConversationKind, PresenceState};
use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};
use ratatui_image::Image;
use unicode_width::UnicodeWidthStr;

use crate::keys::Action;
use crate::layout::{INPUT_MAX_ROWS, PROMPT_WIDTH, areas, input_rows};
use crate::preview::Slot;
use crate::state::{Conv, Link, Overlay, State};
use crate::timeline;
use crate::update::COMMANDS;

impl Widget for &State {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let a = areas(self, area);
        if let Some(sb) = a.sidebar {
            render_sidebar(self, sb, buf);
        }
        render_header(self, a.header, buf);
        render_timeline(self, a.timeline, buf);
        render_input(self, a.rule, a.input, buf);
        render_status(self, a.status, buf);
        match &self.overlay {
            Some(Overlay::Help { scroll }) => render_help(self, area, *scroll, buf),
            Some(Overlay::Switcher(_)) => render_switcher(self, area, buf),
            Some(Overlay::Info { title, lines }) => render_info(self, area, title, lines, buf),
            None => {}
        }
    }
}

/// Where the terminal cursor belongs: in the input, or in the switcher's query.
pub fn cursor_position(state: &State, area: Rect) -> Option<Position> {
    match &state.overlay {
        Some(Overlay::Switcher(sw)) => {
            let r = switcher_rect(area);
            let w = sw.query.text()[..sw.query.cursor()].width() as u16;
            Some(Position::new(
                (r.x + 3 + w).min(r.right().saturating_sub(2)),
                r.y + 1,
            ))
        }
        Some(_) => None,
        None if state.files.is_some() => None,
        None => {
            let a = areas(state, area);
            let w = usize::from(a.input.width.saturating_sub(PROMPT_WIDTH));
            let (rows, (row, col)) = input_rows(state.input.text(), state.input.cursor(), w);
            let first = first_input_row(rows.len(), row, usize::from(a.input.height));
            let y = a.input.y + (row - first) as u16;
            Some(Position::new(a.input.x + PROMPT_WIDTH + col as u16, y))
        }
    }
}

/// The first input row shown, so that the cursor's row is visible.
fn first_input_row(total: usize, cursor_row: usize, height: usize) -> usize {
    let height = height.clamp(1, INPUT_MAX_ROWS);
    if total <= height {
        0
    } else {
        cursor_row.saturating_sub(height - 1).min(total - height)
    }
}

fn presence_dot(state: &State, user: &str) -> Option<Span<'static>> {
    let t = &state.config.theme;
    state.presence.get(user).map(|p| match p {
        PresenceState::Online => Span::styled("●", Style::default().fg(t.online)),
        PresenceState::Away => Span::styled("◐", Style::default().fg(t.away)),
        PresenceState::Offline => Span::styled("○", Style::default().fg(t.dim)),
    })
}

fn sidebar_entry(state: &State, c: &Conv, width: u16) -> Line<'static> {
    let t = &state.config.theme;
    let selected = state.selected == Some(c.id);
    let mut base = Style::default();
    if c.muted {
        base = base.fg(t.dim);
    } else if c.unread > 0 {
        base = base.fg(t.unread).add_modifier(Modifier::BOLD);
    }
    let lead = match c.kind {
        ConversationKind::Group => Span::styled("#", Style::default().fg(t.dim)),
        ConversationKind::Direct => c
            .peer
            .as_deref()
            .and_then(|p| presence_dot(state, p))
            .unwrap_or_else(|| Span::styled("@", Style::default().fg(t.dim))),
    };
    let name = match c.kind {
        ConversationKind::Group => c.target.clone(),
        ConversationKind::Direct => c.peer.clone().unwrap_or_else(|| c.target.clone()),
    };
    let badge = if c.mentions > 0 {
        Span::styled(
            format!("@{}", c.mentions),
            Style::default().fg(t.mention).add_modifier(Modifier::BOLD),
        )
    } else if c.unread > 0 {
        Span::styled(
            c.unread.min(999).to_string(),
            if c.muted {
                Style::default().fg(t.dim)
            } else {
                Style::default().fg(t.accent).add_modifier(Modifier::BOLD)
            },
        )
    } else {
        Span::raw("")
    };
    // " #" + name + " " + badge + " ", within `width`.
    let room = usize::from(width).saturating_sub(4 + badge.width());
    let name = truncate(&name, room);
    let pad = usize::from(width).saturating_sub(3 + name.width() + badge.width() + 1);
    let mut line = Line::from(vec![
        // Seen without colors too (NO_COLOR terminals, screen readers).
        Span::styled(
            if selected { "›" } else { " " },
            Style::default().fg(t.accent),
        ),
        lead,
        Span::raw(" "),
        Span::styled(name, base),
        Span::raw(" ".repeat(pad)),
        badge,
        Span::raw(" "),
    ]);
    if selected {
        line = line.style(Style::default().bg(t.selected_bg));
    }
    line
}

fn truncate(s: &str, max: usize) -> String {
    if s.width() <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if w + cw + 1 > max {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

fn render_sidebar(state: &State, area: Rect, buf: &mut Buffer) {
    let t = &state.config.theme;
    let inner = Rect {
        width: area.width.saturating_sub(1),
        ..area
    };
    // The border between the sidebar and the timeline.
    for y in area.top()..area.bottom() {
        buf.set_string(area.right() - 1, y, "│", Style::default().fg(t.dim));
    }
    let mut lines: Vec<(Line<'static>, bool)> = Vec::new();
    let me_dot = if state.away {
        Span::styled("◐", Style::default().fg(t.away))
    } else if state.link == Link::Online {
        Span::styled("●", Style::default().fg(t.online))
    } else {
        Span::styled("○", Style::default().fg(t.dim))
    };
    lines.push((
        Line::from(vec![
            Span::raw(" "),
            me_dot,
            Span::raw(" "),
            Span::styled(
                truncate(&state.me, usize::from(inner.width).saturating_sub(4)),
                Style::default().add_modifier(Modifier::BOLD),
            ),
        ]),
        false,
    ));
    for (kind, label) in [
        (ConversationKind::Group, "Groups"),
        (ConversationKind::Direct, "Direct"),
    ] {
        let convs: Vec<&Conv> = state.convs.iter().filter(|c| c.kind == kind).collect();
        if convs.is_empty() {
            continue;
        }
        lines.push((Line::raw(""), false));
        lines.push((
            Line::styled(format!(" {label}"), Style::default().fg(t.dim)),
            false,
        ));
        for c in convs {
            lines.push((
                sidebar_entry(state, c, inner.width),
                state.selected == Some(c.id),
            ));
        }
    }
    if state.convs.is_empty() {
        lines.push((Line::raw(""), false));
        for l in ["Nothing yet:", "/msg @user", "or Ctrl-K"] {
            lines.push((
                Line::styled(format!(" {l}"), Style::default().fg(t.dim)),
                false,
            ));
        }
    }
    let h = usize::from(inner.height);
    let sel = lines.iter().position(|(_, s)| *s).unwrap_or(0);
    let first = if lines.len() <= h || sel < h {
        0
    } else {
        (sel + 1 - h).min(lines.len() - h)
    };
    for (i, (line, _)) in lines.into_iter().skip(first).take(h).enumerate() {
        let y = inner.y + i as u16;
        if let Some(bg) = line.style.bg {
            buf.set_style(
                Rect::new(inner.x, y, inner.width, 1),
                Style::default().bg(bg),
            );
        }
        buf.set_line(inner.x, y, &line, inner.width);
    }
}

fn render_header(state: &State, area: Rect, buf: &mut Buffer) {
    let t = &state.config.theme;
    buf.set_style(area, Style::default().bg(t.status_bg));
    let Some(c) = state.current() else {
        buf.set_string(
            area.x + 1,
            area.y,
            "natter",
            Style::default().bg(t.status_bg),
        );
        return;
    };
    let mut spans = vec![Span::styled(
        format!(" {}", c.title()),
        Style::default().add_modifier(Modifier::BOLD),
    )];
    let dim = Style::default().fg(t.dim);
    match c.kind {
        ConversationKind::Group => {
            spans.push(Span::styled(format!(" · {} members", c.member_count), dim));
        }
        ConversationKind::Direct => {
            if let Some(p) = c.peer.as_deref().and_then(|p| state.presence.get(p)) {
                spans.push(Span::styled(" · ", dim));
                spans
                    .push(presence_dot(state, c.peer.as_deref().unwrap_or("")).unwrap_or_default());
                spans.push(Span::styled(format!(" {}", p.as_str()), dim));
            }
        }
    }
    if c.muted {
        spans.push(Span::styled(" · muted", dim));
    }
    if c.anchor.is_some() {
        spans.push(Span::styled(" · scrolled (Esc: newest)", dim));
    }
    if c.loading_older {
        spans.push(Span::styled(" · loading…", dim));
    }
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);
}

fn render_timeline(state: &State, area: Rect, buf: &mut Buffer) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let t = &state.config.theme;
    let area = Rect {
        x: area.x + 1,
        width: area.width.saturating_sub(1),
        ..area
    };
    let Some(c) = state.current() else {
        let hint = [
            "Welcome to natter.",
            "",
            "Ctrl-K finds a conversation, /msg @user starts one,",
            "/group create NAME @user makes a group. F1 or ? for help.",
        ];
        for (i, l) in hint.iter().enumerate() {
            if i as u16 >= area.height {
                break;
            }
            buf.set_string(area.x, area.y + i as u16, *l, Style::default().fg(t.dim));
        }
        return;
    };
    let rows = usize::from(area.height);
    let view = timeline::visible_layout(state, c, area.width, rows);
    let mut lines = view.lines;
    let mut shift = 0;
    if lines.len() < rows && c.anchor.is_none() {
        let top = if c.reached_start {
            ""
        } else if c.loading_older || (c.messages.is_empty() && c.last_seq > 0) {
            "loading…"
        } else {
            ""
        };
        if !top.is_empty() {
            lines.insert(0, Line::styled(top, Style::default().fg(t.dim)));
            shift = 1;
        }
    }
    let y0 = area.y + (rows.saturating_sub(lines.len())) as u16;
    for (i, line) in lines.iter().enumerate() {
        buf.set_line(area.x, y0 + i as u16, line, area.width);
    }
    for shown in &view.previews {
        render_preview(state, area, y0, shift, shown, buf);
    }
}

/// Draws one preview over its box, when the box is wholly on screen and the image is
/// ready (images cannot be cut in every protocol: a box partly scrolled off shows a
/// note instead).
fn render_preview(
    state: &State,
    area: Rect,
    y0: u16,
    shift: isize,
    shown: &timeline::Shown,
    buf: &mut Buffer,
) {
    let p = &shown.placement;
    let top = shown.row + shift;
    let bottom = top + p.rows as isize;
    let visible_rows = (area.bottom() - y0) as isize;
    if bottom <= 0 || top >= visible_rows {
        return;
    }
    let Some(Slot::Ready(img)) = state.previews.get(&p.id) else {
        return;
    };
    let x = area.x + p.col;
    if x + p.cols > area.right() {
        return;
    }
    if top < 0 || bottom > visible_rows {
        let y = y0 + top.max(0) as u16;
        buf.set_stringn(
            x,
            y,
            "[image: scroll to see it]",
            usize::from(area.right().saturating_sub(x)),
            Style::default().fg(state.config.theme.dim),
        );
        return;
    }
    let rect = Rect::new(x, y0 + top as u16, p.cols, p.rows);
    Image::new(&img.0).render(rect, buf);
}

fn render_input(state: &State, rule: Rect, area: Rect, buf: &mut Buffer) {
    let t = &state.config.theme;
    if rule.height > 0 {
        buf.set_string(
            rule.x,
            rule.y,
            "─".repeat(usize::from(rule.width)),
            Style::default().fg(t.dim),
        );
    }
    let w = usize::from(area.width.saturating_sub(PROMPT_WIDTH));
    if let Some(sel) = &state.files {
        let km = &state.config.keymap;
        let key = |a: Action| {
            km.keys_for(a)
                .first()
                .cloned()
                .unwrap_or_else(|| "-".into())
        };
        let hint = format!(
            "files {}/{}: ↑↓ choose · {} save · {}/Enter open · Esc back",
            sel.index + 1,
            sel.items.len(),
            key(Action::SaveFile),
            key(Action::OpenFile),
        );
        buf.set_string(area.x, area.y, "▸ ", Style::default().fg(t.accent));
        buf.set_stringn(
            area.x + PROMPT_WIDTH,
            area.y,
            hint,
            w,
            Style::default().fg(t.accent),
        );
        return;
    }
    let (rows, (row, _)) = input_rows(state.input.text(), state.input.cursor(), w);
    let first = first_input_row(rows.len(), row, usize::from(area.height));
    if state.input.is_empty() {
        let hint = match state.current() {
            Some(c) => format!(
                "message {}  (Enter send · Alt-Enter newline · F1 help)",
                c.title()
            ),
            None => "type /msg @user, or press Ctrl-K".to_string(),
        };
        buf.set_string(area.x, area.y, "› ", Style::default().fg(t.accent));
        buf.set_stringn(
            area.x + PROMPT_WIDTH,
            area.y,
            hint,
            w,
            Style::default().fg(t.dim),
        );
        return;
    }
    for (i, text) in rows
        .iter()
        .skip(first)
        .take(usize::from(area.height))
        .enumerate()
    {
        let y = area.y + i as u16;
        let prompt = if first + i == 0 { "› " } else { "  " };
        buf.set_string(area.x, y, prompt, Style::default().fg(t.accent));
        buf.set_stringn(area.x + PROMPT_WIDTH, y, text, w, Style::default());
    }
}

fn typing_line(state: &State) -> Option<String> {
    let c = state.current()?;
    let names: Vec<&str> = c.typing.iter().map(|t| t.user.as_str()).collect();
    match names.as_slice() {
        [] => None,
        [a] => Some(format!("{a} is typing…")),
        [a, b] => Some(format!("{a} and {b} are typing…")),
        [a, rest @ ..] => Some(format!("{a} and {} others are typing…", rest.len())),
    }
}

fn render_status(state: &State, area: Rect, buf: &mut Buffer) {
    let t = &state.config.theme;
    let bg = Style::default().bg(t.status_bg);
    buf.set_style(area, bg);
    let queued = state.queued();
    let mut spans = match &state.link {
        Link::Online => vec![Span::styled(" ● online", Style::default().fg(t.online))],
        Link::Connecting => vec![Span::styled(" ◌ connecting…", Style::default().fg(t.away))],
        Link::Offline { retry_in, .. } => vec![Span::styled(
            format!(" ○ offline · retrying in {}s", retry_in.as_secs().max(1)),
            Style::default().fg(t.error),
        )],
        Link::Error(e) => vec![Span::styled(
            format!(" ✗ {e}"),
            Style::default().fg(t.error).add_modifier(Modifier::BOLD),
        )],
    };
    if queued > 0 {
        spans.push(Span::styled(
            format!(" · {queued} queued"),
            Style::default().fg(t.away),
        ));
    }
    if let Some(first) = state.transfers.first() {
        let mut text = format!("  {}", first.label());
        if state.transfers.len() > 1 {
            text.push_str(&format!(" (+{} more)", state.transfers.len() - 1));
        }
        spans.push(Span::styled(text, Style::default().fg(t.accent)));
    }
    if let Some(n) = &state.notice {
        let style = if n.error {
            Style::default().fg(t.error).add_modifier(Modifier::BOLD)
        } else {
            Style::default().fg(t.accent)
        };
        spans.push(Span::raw("  "));
        spans.push(Span::styled(n.text.clone(), style));
    } else if let Some(typing) = typing_line(state) {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(
            typing,
            Style::default().fg(t.accent).add_modifier(Modifier::ITALIC),
        ));
    }
    let help = " F1 help ";
    let left = Line::from(spans);
    let room = area.width.saturating_sub(help.len() as u16);
    buf.set_line(area.x, area.y, &left, room);
    if left.width() + help.len() < usize::from(area.width) {
        buf.set_string(
            area.right() - help.len() as u16,
            area.y,
            help,
            Style::default().fg(t.dim),
        );
    }
}

fn popup(area: Rect, width: u16, height: u16) -> Rect {
    let w = width
        .min(area.width.saturating_sub(2))
        .max(10.min(area.width));
    let h = height
        .min(area.height.saturating_sub(2))
        .max(3.min(area.height));
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn block(state: &State, title: &str) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(state.config.theme.accent))
        .title(Span::styled(
            format!(" {title} "),
            Style::default().add_modifier(Modifier::BOLD),
        ))
}

/// The help screen's lines (keys from the live keymap, so rebinding shows here).
pub fn help_lines(state: &State) -> Vec<Line<'static>> {
    let t = &state.config.theme;
    let key_style = Style::default().fg(t.accent);
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut jumps = false;
    for action in Action::all() {
        if let Action::Jump(_) = action {
            if !jumps {
                jumps = true;
                rows.push(("Alt-1..9".into(), "conversation N of the sidebar".into()));
            }
            continue;
        }
        let keys = state.config.keymap.keys_for(action);
        if !keys.is_empty() {
            rows.push((keys.join(", "), action.describe()));
        }
    }
    rows.push(("wheel".into(), "scroll the timeline".into()));
    let col = rows
        .iter()
        .map(|(k, _)| k.width())
        .max()
        .unwrap_or(0)
        .min(18)
        + 2;
    let mut out = vec![Line::styled(
        "Keys",
        Style::default().add_modifier(Modifier::BOLD),
    )];
    for (keys, what) in rows {
        let pad = col.saturating_sub(keys.width()).max(1);
        out.push(Line::from(vec![
            Span::styled(format!("  {keys}{}", " ".repeat(pad)), key_style),
            Span::raw(what),
        ]));
    }
    out.push(Line::raw(""));
    out.push(Line::styled(
        "Commands",
        Style::default().add_modifier(Modifier::BOLD),
    ));
    for (cmd, what) in COMMANDS {
        out.push(Line::from(vec![
            Span::styled(format!("  {cmd:<10}"), key_style),
            Span::raw(*what),
        ]));
    }
    out.push(Line::raw(""));
    out.push(Line::styled(
        "Receipts: … pending  ✓ sent  ✓✓ delivered  ✔✔ read  ! not sent",
        Style::default().fg(t.dim),
    ));
    out.push(Line::styled(
        format!(
            "Files: /file PATH [text] sends one; image previews {} ({})",
            if state.previews.enabled { "on" } else { "off" },
            state.previews.protocol
        ),
        Style::default().fg(t.dim),
    ));
    out.push(Line::styled(
        "Settings: tui.toml in the config directory (see docs/TUI.md)",
        Style::default().fg(t.dim),
    ));
    out
}

fn render_help(state: &State, area: Rect, scroll: usize, buf: &mut Buffer) {
    let r = popup(area, 78, area.height.saturating_sub(2));
    Clear.render(r, buf);
    let lines = help_lines(state);
    let inner_h = usize::from(r.height.saturating_sub(2));
    let scroll = scroll.min(lines.len().saturating_sub(inner_h));
    Paragraph::new(lines)
        .scroll((scroll as u16, 0))
        .block(block(state, "Help · Esc closes · ↑↓ scroll"))
        .render(r, buf);
}

fn switcher_rect(area: Rect) -> Rect {
    popup(area, 50, 14)
}

fn render_switcher(state: &State, area: Rect, buf: &mut Buffer) {
    let Some(Overlay::Switcher(sw)) = &state.overlay else {
        return;
    };
    let t = &state.config.theme;
    let r = switcher_rect(area);
    Clear.render(r, buf);
    block(state, "Switch to… (Enter · Esc)").render(r, buf);
    let inner = Rect {
        x: r.x + 1,
        y: r.y + 1,
        width: r.width.saturating_sub(2),
        height: r.height.saturating_sub(2),
    };
    if inner.height == 0 {
        return;
    }
    buf.set_string(inner.x, inner.y, "› ", Style::default().fg(t.accent));
    buf.set_stringn(
        inner.x + 2,
        inner.y,
        sw.query.text(),
        usize::from(inner.width.saturating_sub(2)),
        Style::default(),
    );
    let rows = usize::from(inner.height.saturating_sub(1));
    let first = sw.selected.saturating_sub(rows.saturating_sub(1));
    if sw.matches.is_empty() && inner.height > 1 {
        buf.set_string(inner.x, inner.y + 1, "no match", Style::default().fg(t.dim));
    }
    for (i, e) in sw.matches.iter().enumerate().skip(first).take(rows) {
        let y = inner.y + 1 + (i - first) as u16;
        let style = if i == sw.selected {
            Style::default()
                .bg(t.selected_bg)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        buf.set_style(Rect::new(inner.x, y, inner.width, 1), style);
        let mut label = e.label.clone();
        if matches!(e.target, crate::state::SwitchTarget::User(_)) {
            label.push_str("  (new)");
        }
        buf.set_stringn(
            inner.x + 1,
            y,
            label,
            usize::from(inner.width.saturating_sub(6)),
            style,
        );
        if e.unread > 0 {
            let n = e.unread.min(999).to_string();
            buf.set_string(
                inner.right().saturating_sub(n.len() as u16 + 1),
                y,
                n,
                style.fg(t.accent),
            );
        }
    }
}

fn render_info(state: &State, area: Rect, title: &str, lines: &[String], buf: &mut Buffer) {
    let h = (lines.len() as u16).saturating_add(2);
    let w = lines
        .iter()
        .map(|l| l.width())
        .max()
        .unwrap_or(0)
        .max(title.width() + 4) as u16
        + 4;
    let r = popup(area, w.max(30), h);
    Clear.render(r, buf);
    let body: Vec<Line> = lines.iter().map(|l| Line::raw(format!(" {l}"))).collect();
    Paragraph::new(body)
        .block(block(state, title))
        .render(r, buf);
}
