//! Inline image previews: which graphics protocol the terminal speaks ([`detect`]), the
//! size of a preview box ([`preview_box`]), turning the server's PNG thumbnail into
//! something ratatui can draw ([`encode`], run off the UI thread), and the bounded cache
//! of what was fetched ([`Previews`]).
//!
//! The box of a preview depends only on the attachment's metadata (its pixel size) and
//! the terminal's cell size, never on whether the thumbnail arrived: the timeline's
//! layout (and so scrolling) does not jump when an image comes in.

use std::fmt;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::layout::Size;
use ratatui_image::picker::cap_parser::{Parser, QueryStdioOptions, Response};
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::Protocol;
use ratatui_image::{FontSize, Resize};

use crate::files::Att;

/// The tallest a preview gets, in rows.
pub const PREVIEW_MAX_ROWS: u16 = 8;
/// The widest a preview gets, in columns (less when the timeline is narrower).
pub const PREVIEW_MAX_COLS: u16 = 40;
/// Below this many columns for the box, no preview is shown.
const PREVIEW_MIN_COLS: u16 = 8;
/// Decoded and encoded previews kept in memory.
pub const CACHE_SIZE: usize = 32;
/// The server's thumbnails fit in this many pixels each way.
const THUMBNAIL_MAX_PX: u32 = 256;
/// A cell's size in pixels when the terminal does not say (a common 1:2 font).
pub const DEFAULT_CELL: (u16, u16) = (10, 20);
/// How long the terminal has to answer the graphics query.
const QUERY_TIMEOUT: Duration = Duration::from_millis(1000);

/// Which graphics protocol to draw previews with (`image_protocol` in `tui.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageProtocol {
    /// Ask the terminal: kitty, then sixel, then iTerm2 (from the environment), else
    /// half blocks.
    Auto,
    Kitty,
    Sixel,
    Iterm2,
    /// Unicode half blocks with colors: works everywhere, coarse.
    Halfblocks,
}

impl ImageProtocol {
    pub fn parse(s: &str) -> Option<ImageProtocol> {
        Some(match s {
            "auto" => ImageProtocol::Auto,
            "kitty" => ImageProtocol::Kitty,
            "sixel" => ImageProtocol::Sixel,
            "iterm2" => ImageProtocol::Iterm2,
            "halfblocks" => ImageProtocol::Halfblocks,
            _ => return None,
        })
    }
}

/// A thumbnail ready to draw at its box size. Cheap to clone.
#[derive(Clone)]
pub struct PreviewImage(pub Arc<Protocol>);

impl fmt::Debug for PreviewImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.size();
        write!(f, "PreviewImage({}x{})", s.width, s.height)
    }
}

/// Where one preview stands.
#[derive(Debug, Clone)]
pub enum Slot {
    /// Asked for; the box shows a placeholder.
    Loading,
    Ready(PreviewImage),
    /// No preview (the thumbnail could not be fetched or decoded): not asked again.
    Failed,
}

/// The previews of the session: on or off, the cell size they are laid out with, and a
/// cache of at most [`CACHE_SIZE`] entries, least recently wanted evicted first.
#[derive(Debug, Clone)]
pub struct Previews {
    pub enabled: bool,
    /// A cell's (width, height) in pixels.
    pub cell: (u16, u16),
    /// The protocol in use, for the help screen.
    pub protocol: &'static str,
    /// Oldest first.
    entries: Vec<(String, Slot)>,
}

impl Previews {
    pub fn new(enabled: bool) -> Previews {
        Previews {
            enabled,
            cell: DEFAULT_CELL,
            protocol: "halfblocks",
            entries: Vec::new(),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Slot> {
        self.entries.iter().find(|(k, _)| k == id).map(|(_, s)| s)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Marks `id` as wanted now. Returns true when it is not there yet (and so must be
    /// fetched): it is then recorded as loading.
    pub fn want(&mut self, id: &str) -> bool {
        match self.entries.iter().position(|(k, _)| k == id) {
            Some(i) => {
                let e = self.entries.remove(i);
                self.entries.push(e);
                false
            }
            None => {
                self.put(id, Slot::Loading);
                true
            }
        }
    }

    pub fn put(&mut self, id: &str, slot: Slot) {
        self.entries.retain(|(k, _)| k != id);
        self.entries.push((id.to_string(), slot));
        if self.entries.len() > CACHE_SIZE {
            let excess = self.entries.len() - CACHE_SIZE;
            self.entries.drain(..excess);
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// The box (columns, rows) of the preview of `att` in a timeline `width` columns wide,
/// for cells of `cell` pixels: the thumbnail's size in cells, shrunk to fit
/// [`PREVIEW_MAX_COLS`] x [`PREVIEW_MAX_ROWS`] (keeping its proportions). `None` when
/// the attachment has no thumbnail or the timeline is too narrow.
pub fn preview_box(att: &Att, cell: (u16, u16), max_cols: u16) -> Option<(u16, u16)> {
    if !att.thumbnail {
        return None;
    }
    let max_cols = max_cols.min(PREVIEW_MAX_COLS);
    if max_cols < PREVIEW_MIN_COLS {
        return None;
    }
    let (w, h) = match (att.width, att.height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
        _ => (THUMBNAIL_MAX_PX, THUMBNAIL_MAX_PX),
    };
    // The thumbnail: the image scaled down to fit 256x256.
    let scale = (f64::from(THUMBNAIL_MAX_PX) / f64::from(w.max(h))).min(1.0);
    let (tw, th) = (
        (f64::from(w) * scale).max(1.0),
        (f64::from(h) * scale).max(1.0),
    );
    let (cw, ch) = (f64::from(cell.0.max(1)), f64::from(cell.1.max(1)));
    let fit = (f64::from(max_cols) * cw / tw)
        .min(f64::from(PREVIEW_MAX_ROWS) * ch / th)
        .min(1.0);
    let cols = ((tw * fit / cw).ceil() as u16).clamp(1, max_cols);
    let rows = ((th * fit / ch).ceil() as u16).clamp(1, PREVIEW_MAX_ROWS);
    Some((cols, rows))
}

/// Decodes a PNG thumbnail (with bounded decode limits: it came from the network) and
/// encodes it for `picker`'s protocol to fit `cols` x `rows` cells. CPU work: run it
/// on a blocking thread.
pub fn encode(png: &[u8], picker: &Picker, cols: u16, rows: u16) -> Result<PreviewImage, String> {
    let mut reader =
        image::ImageReader::with_format(std::io::Cursor::new(png), image::ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(4 * THUMBNAIL_MAX_PX);
    limits.max_image_height = Some(4 * THUMBNAIL_MAX_PX);
    limits.max_alloc = Some(16 * 1024 * 1024);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| format!("cannot decode the preview: {e}"))?;
    let protocol = picker
        .new_protocol(img, Size::new(cols, rows), Resize::Fit(None))
        .map_err(|e| format!("cannot draw the preview: {e}"))?;
    Ok(PreviewImage(Arc::new(protocol)))
}

/// The name of a protocol, for the help screen and the log.
pub fn protocol_name(p: ProtocolType) -> &'static str {
    match p {
        ProtocolType::Halfblocks => "halfblocks",
        ProtocolType::Sixel => "sixel",
        ProtocolType::Kitty => "kitty",
        ProtocolType::Iterm2 => "iterm2",
    }
}

/// A picker that draws with half blocks, for tests, benchmarks and terminals that do not
/// answer.
pub fn halfblocks() -> Picker {
    picker_for(
        ProtocolType::Halfblocks,
        FontSize::new(DEFAULT_CELL.0, DEFAULT_CELL.1),
    )
}

#[allow(deprecated)]
fn picker_for(p: ProtocolType, font: FontSize) -> Picker {
    // `from_fontsize` is the one constructor that takes a measured cell size; the
    // query it was deprecated in favour of is done here, with a reader that can stop.
    let mut picker = Picker::from_fontsize(font);
    picker.set_protocol_type(p);
    picker
}

/// Works out how to draw images on this terminal. Call it in raw mode on the alternate
/// screen, before anything else reads the terminal's input. `answers`: the terminal just
/// answered a query (crossterm's keyboard-enhancement probe); a terminal that did not is
/// not asked again and gets half blocks. With `ImageProtocol::Auto` the terminal is
/// asked for kitty graphics, sixel (device attributes), its cell size, and a status
/// report that every terminal answers, with a deadline; input is read with `poll`, so
/// nothing is left reading the terminal afterwards. The query is never wrapped for tmux
/// passthrough (tmux answers it itself, so it cannot hang on a detached session).
pub fn detect(setting: ImageProtocol, answers: bool) -> Picker {
    let fallback_font = || {
        crossterm::terminal::window_size()
            .ok()
            .filter(|w| w.width > 0 && w.height > 0 && w.columns > 0 && w.rows > 0)
            .map(|w| FontSize::new(w.width / w.columns, w.height / w.rows))
    };
    let forced = match setting {
        ImageProtocol::Auto => None,
        ImageProtocol::Kitty => Some(ProtocolType::Kitty),
        ImageProtocol::Sixel => Some(ProtocolType::Sixel),
        ImageProtocol::Iterm2 => Some(ProtocolType::Iterm2),
        ImageProtocol::Halfblocks => Some(ProtocolType::Halfblocks),
    };
    if let Some(p) = forced {
        let font = if p == ProtocolType::Halfblocks || !answers {
            fallback_font()
        } else {
            query(QUERY_TIMEOUT)
                .and_then(|r| r.font)
                .or_else(fallback_font)
        };
        return picker_for(
            p,
            font.unwrap_or(FontSize::new(DEFAULT_CELL.0, DEFAULT_CELL.1)),
        );
    }
    if !answers {
        return halfblocks();
    }
    let found = query(QUERY_TIMEOUT).unwrap_or_default();
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    // WezTerm and Konsole answer for kitty and sixel but draw iTerm2 images better.
    let prefer_iterm2 = !env("WEZTERM_EXECUTABLE").is_empty() || !env("KONSOLE_VERSION").is_empty();
    let term_program = env("TERM_PROGRAM");
    let iterm2 = prefer_iterm2
        || [
            "iTerm",
            "WezTerm",
            "mintty",
            "vscode",
            "Tabby",
            "Hyper",
            "rio",
            "Bobcat",
            "WarpTerminal",
        ]
        .iter()
        .any(|t| term_program.contains(t))
        || env("LC_TERMINAL").contains("iTerm");
    let protocol = if found.kitty && !prefer_iterm2 {
        ProtocolType::Kitty
    } else if found.sixel && !prefer_iterm2 {
        ProtocolType::Sixel
    } else if iterm2 {
        ProtocolType::Iterm2
    } else {
        ProtocolType::Halfblocks
    };
    match found.font.or_else(fallback_font) {
        Some(font) => picker_for(protocol, font),
        // Pixels cannot be placed without knowing a cell's size.
        None => halfblocks(),
    }
}

#[derive(Debug, Default)]
struct Found {
    kitty: bool,
    sixel: bool,
    font: Option<FontSize>,
}

/// Writes the query and reads the answers until the status report, at most `timeout`.
fn query(timeout: Duration) -> Option<Found> {
    let q = Parser::query(false, QueryStdioOptions::default());
    let mut out = std::io::stdout();
    out.write_all(q.as_bytes()).ok()?;
    out.flush().ok()?;
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let deadline = Instant::now() + timeout;
    let mut parser = Parser::new();
    let mut found = Found::default();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::debug!("the terminal did not answer the graphics query in time");
            return None;
        }
        let ts = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
        }
        let mut buf = [0u8; 256];
        let n = match rustix::io::read(fd, &mut buf) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
            Err(_) => return None,
        };
        for b in &buf[..n] {
            for r in parser.push(char::from(*b)) {
                match r {
                    Response::Status => return Some(found),
                    Response::Kitty => found.kitty = true,
                    Response::Sixel => found.sixel = true,
                    Response::CellSize(Some((w, h))) if w > 0 && h > 0 => {
                        found.font = Some(FontSize::new(w, h));
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(w: Option<u32>, h: Option<u32>) -> Att {
        Att {
            id: "a".into(),
            name: "x.png".into(),
            size: Some(1),
            mime: "image/png".into(),
            width: w,
            height: h,
            thumbnail: true,
        }
    }

    #[test]
    fn boxes_keep_proportions_within_bounds() {
        let cell = DEFAULT_CELL;
        // A wide screenshot: limited by the columns.
        assert_eq!(
            preview_box(&att(Some(1920), Some(1080)), cell, 100),
            Some((26, 8))
        );
        assert_eq!(
            preview_box(&att(Some(4000), Some(500)), cell, 100),
            Some((26, 2))
        );
        assert_eq!(
            preview_box(&att(Some(4000), Some(500)), cell, 20),
            Some((20, 2))
        );
        // A tall one: limited by the rows.
        assert_eq!(
            preview_box(&att(Some(300), Some(3000)), cell, 100),
            Some((2, 8))
        );
        // A tiny icon stays tiny.
        assert_eq!(
            preview_box(&att(Some(16), Some(16)), cell, 100),
            Some((2, 1))
        );
        // Unknown size: a square.
        assert_eq!(preview_box(&att(None, None), cell, 100), Some((16, 8)));
        // Too narrow, or nothing to preview.
        assert_eq!(preview_box(&att(Some(10), Some(10)), cell, 5), None);
        let mut no = att(Some(10), Some(10));
        no.thumbnail = false;
        assert_eq!(preview_box(&no, cell, 100), None);
        for w in [1u32, 7, 99, 256, 257, 5000] {
            for h in [1u32, 3, 256, 1000, 9000] {
                for cols in [8u16, 13, 40, 200] {
                    let (c, r) = preview_box(&att(Some(w), Some(h)), (7, 15), cols).unwrap();
                    assert!(c >= 1 && c <= cols.min(PREVIEW_MAX_COLS), "{w}x{h} {cols}");
                    assert!((1..=PREVIEW_MAX_ROWS).contains(&r), "{w}x{h}");
                }
            }
        }
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_what_was_wanted_last() {
        let mut p = Previews::new(true);
        assert!(p.want("a"));
        assert!(!p.want("a"), "asked once");
        for i in 0..CACHE_SIZE {
            p.put(&format!("i{i}"), Slot::Failed);
            p.want("a");
        }
        assert_eq!(p.len(), CACHE_SIZE);
        assert!(p.get("a").is_some(), "wanted last, kept");
        assert!(p.get("i0").is_none(), "least recently wanted, evicted");
    }

    #[test]
    fn a_thumbnail_becomes_half_blocks_that_fit_the_box() {
        let mut png = Vec::new();
        let img = image::RgbImage::from_fn(64, 32, |x, _| image::Rgb([(x * 4) as u8, 0, 200]));
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let a = att(Some(64), Some(32));
        let (cols, rows) = preview_box(&a, DEFAULT_CELL, 80).unwrap();
        let p = encode(&png, &halfblocks(), cols, rows).unwrap();
        let size = p.0.size();
        assert!(
            size.width <= cols && size.height <= rows,
            "{size:?} in {cols}x{rows}"
        );
        assert!(encode(b"not a png", &halfblocks(), cols, rows).is_err());
    }
}
