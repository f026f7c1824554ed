//! Where each part of the screen goes, from the terminal size and the input's height.
//! Shared by rendering and by `update` (scrolling needs the timeline's size).

use ratatui::layout::Rect;
use unicode_width::UnicodeWidthChar;

use crate::state::State;

/// The most rows the input grows to before it scrolls.
pub const INPUT_MAX_ROWS: usize = 6;
/// The prompt before the input (`› `).
pub const PROMPT_WIDTH: u16 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub sidebar: Option<Rect>,
    pub header: Rect,
    pub timeline: Rect,
    /// The separator row above the input.
    pub rule: Rect,
    pub input: Rect,
    pub status: Rect,
}

/// Hard-wraps the input to `width` columns. Returns the rows and the cursor's
/// (row, column).
pub fn input_rows(text: &str, cursor: usize, width: usize) -> (Vec<String>, (usize, usize)) {
    let width = width.max(1);
    let mut rows = vec![String::new()];
    let mut col = 0usize;
    let mut pos = (0, 0);
    for (i, c) in text.char_indices() {
        if i == cursor {
            pos = (rows.len() - 1, col);
        }
        if c == '\n' {
            rows.push(String::new());
            col = 0;
            continue;
        }
        let cw = c.width().unwrap_or(0);
        if col + cw > width {
            rows.push(String::new());
            col = 0;
            if i == cursor {
                pos = (rows.len() - 1, 0);
            }
        }
        if let Some(r) = rows.last_mut() {
            r.push(c);
        }
        col += cw;
    }
    if cursor >= text.len() {
        if col >= width {
            rows.push(String::new());
            col = 0;
        }
        pos = (rows.len() - 1, col);
    }
    (rows, pos)
}

pub fn sidebar_width(cols: u16) -> u16 {
    if cols < 60 {
        0
    } else {
        (cols / 5).clamp(16, 28)
    }
}

pub fn areas(state: &State, full: Rect) -> Areas {
    let status = Rect {
        y: full.y + full.height.saturating_sub(1),
        height: full.height.min(1),
        ..full
    };
    let body_h = full.height.saturating_sub(1);
    let sw = sidebar_width(full.width);
    let sidebar = (sw > 0).then_some(Rect {
        x: full.x,
        y: full.y,
        width: sw,
        height: body_h,
    });
    let main = Rect {
        x: full.x + sw,
        y: full.y,
        width: full.width.saturating_sub(sw),
        height: body_h,
    };
    let input_w = usize::from(main.width.saturating_sub(PROMPT_WIDTH));
    let (rows, _) = input_rows(state.input.text(), state.input.cursor(), input_w);
    let input_h = (rows.len().clamp(1, INPUT_MAX_ROWS) as u16).min(main.height.saturating_sub(3));
    let header = Rect {
        height: main.height.min(1),
        ..main
    };
    let input = Rect {
        y: main.y + main.height.saturating_sub(input_h),
        height: input_h,
        ..main
    };
    let rule = Rect {
        y: input.y.saturating_sub(1).max(main.y),
        height: u16::from(main.height > input_h + 1),
        ..main
    };
    let tl_y = header.y + header.height;
    let timeline = Rect {
        y: tl_y,
        height: rule.y.saturating_sub(tl_y),
        ..main
    };
    Areas {
        sidebar,
        header,
        timeline,
        rule,
        input,
        status,
    }
}

/// The timeline's (width, rows) for the state's terminal size.
pub fn timeline_size(state: &State) -> (u16, usize) {
    let full = Rect::new(0, 0, state.size.0, state.size.1);
    let a = areas(state, full);
    (a.timeline.width, usize::from(a.timeline.height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_rows_wrap_and_place_the_cursor() {
        assert_eq!(input_rows("", 0, 10), (vec![String::new()], (0, 0)));
        assert_eq!(
            input_rows("abcdef", 6, 4),
            (vec!["abcd".into(), "ef".into()], (1, 2))
        );
        assert_eq!(
            input_rows("abcd", 4, 4),
            (vec!["abcd".into(), String::new()], (1, 0))
        );
        assert_eq!(
            input_rows("ab\ncd", 3, 10),
            (vec!["ab".into(), "cd".into()], (1, 0))
        );
        assert_eq!(input_rows("日本語", 3, 4).0, ["日本", "語"]);
    }
}
