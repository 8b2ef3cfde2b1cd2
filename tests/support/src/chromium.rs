//! Test fixture: headless Chromium rendering a page, for tests of what a browser shows (the
//! status page): [`dump_dom`] returns the DOM after the page's scripts ran, [`screenshot`]
//! writes a PNG, and a few string helpers ([`element_with_attr`], [`element_with_class`],
//! [`attr`], [`text`], [`count_tags`]) make assertions on the dumped HTML without a parser.
//!
//! Where Chromium is found: `$HMRT_CHROMIUM`, else `/usr/bin/chromium`. Missing, it panics:
//! a test whose real part cannot start must fail, not pass.
//!
//! Each call is one Chromium process with a fresh profile in a temporary directory, driven by
//! its own command-line switches (`--dump-dom`, `--screenshot`). "After scripts ran" comes
//! from `--virtual-time-budget`: after the load event Chromium runs the page on a virtual
//! clock, which stands still while a fetch is pending and jumps over idle time, so the page's
//! `fetch` and its timers up to [`VIRTUAL_TIME_BUDGET_MS`] have all happened when the DOM is
//! taken, without the test sleeping or polling; a run takes about a second of real time.
//!
//! Viewport: headless Chromium's window is never narrower than 500 px, so a page's scripts
//! see `innerWidth` ≥ 500 while they run; the screenshot itself is laid out at the requested
//! size. Chromium does not emulate a phone (no mobile `<meta name="viewport">` handling, no
//! touch): a narrow screenshot shows the CSS at that width, which is what a phone with a
//! correct viewport tag would show too.
//!
//! Failures panic with Chromium's stderr: this is test code.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::supervisord::send_signal;

/// How long one Chromium run may take before it is killed.
const DEADLINE: Duration = Duration::from_secs(60);

/// Virtual milliseconds a page runs after its load event before it is captured: the status
/// page's first fetch and render fit with room to spare (fetches do not use it up), and a
/// timer set for later than this never fires.
pub const VIRTUAL_TIME_BUDGET_MS: u32 = 5_000;

const SIGKILL: i32 = 9;

/// The Chromium executable (see the module docs).
pub fn chromium_path() -> PathBuf {
    let path = match std::env::var_os("HMRT_CHROMIUM") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from("/usr/bin/chromium"),
    };
    assert!(
        path.is_file(),
        "chromium not found at {} (run scripts/setup --tests in the workspace root to install it, or \
         set HMRT_CHROMIUM to a Chromium executable)",
        path.display()
    );
    path
}

/// The serialized DOM of `url` (doctype and `<html>…</html>`) once its scripts ran for
/// [`VIRTUAL_TIME_BUDGET_MS`] of virtual time after the load event, in a window of
/// `viewport` (width, height) CSS pixels. Panics if the page could not be loaded.
pub fn dump_dom(url: &str, viewport: (u32, u32)) -> String {
    let run = run(url, viewport, &["--dump-dom".to_owned()]);
    let dom = std::fs::read_to_string(run.dir.path().join("stdout"))
        .unwrap_or_else(|e| panic!("reading chromium's output for {url}: {e}"));
    // A page that does not load still exits 0, with nothing on stdout.
    if dom.trim().is_empty() || run.stderr.contains("Page load failed") {
        panic!("chromium could not load {url}; stderr:\n{}", run.stderr);
    }
    dom
}

/// Writes a PNG screenshot of `url` at `viewport` (width, height) CSS pixels to `out`, taken
/// when [`dump_dom`] would take the DOM. Panics if no PNG was written.
pub fn screenshot(url: &str, viewport: (u32, u32), out: &Path) {
    let dir = tempfile::tempdir().expect("temp dir for the screenshot");
    // Chromium picks the format from the extension and resolves relative paths against its
    // own working directory; a fixed absolute *.png path sidesteps both.
    let shot = dir.path().join("screenshot.png");
    let run = run(url, viewport, &[format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap_or_default();
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") || run.stderr.contains("Page load failed") {
        panic!(
            "chromium wrote no screenshot of {url}; stderr:\n{}",
            run.stderr
        );
    }
    std::fs::write(out, &png).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

/// A finished Chromium run: its temporary directory (profile, stdout) and its stderr.
struct Run {
    dir: tempfile::TempDir,
    stderr: String,
}

fn run(url: &str, (width, height): (u32, u32), extra: &[String]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir for chromium");
    // Files rather than pipes: a DOM larger than a pipe buffer must not block Chromium while
    // nobody reads, and no reader threads are needed.
    let stdout = File::create(dir.path().join("stdout")).expect("create stdout file");
    let stderr = File::create(dir.path().join("stderr")).expect("create stderr file");
    let mut cmd = Command::new(chromium_path());
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        // A container's /dev/shm is often too small for the renderer.
        "--disable-dev-shm-usage",
    ])
    .arg(format!(
        "--user-data-dir={}",
        dir.path().join("profile").display()
    ))
    .arg(format!("--window-size={width},{height}"))
    .arg(format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"))
    .args(extra)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(stdout)
    .stderr(stderr)
    // Its own process group, so the browser and every renderer and helper it forked can be
    // killed together.
    .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", chromium_path().display()));
    let pgid = child.id() as i32;

    // wait() in a thread and recv_timeout here: the deadline without polling.
    let (tx, rx) = mpsc::channel::<std::io::Result<ExitStatus>>();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx.recv_timeout(DEADLINE);
    // Whether it finished or not, nothing it started may outlive the call (a stray renderer
    // would keep the profile directory busy and eat the CPU later tests need).
    send_signal(-pgid, SIGKILL);
    let _ = waiter.join();
    let stderr = read_stderr(dir.path());
    match status {
        Ok(Ok(status)) if status.success() => Run { dir, stderr },
        Ok(Ok(status)) => panic!("chromium exited with {status} on {url}; stderr:\n{stderr}"),
        Ok(Err(e)) => panic!("waiting for chromium on {url}: {e}"),
        Err(_) => panic!(
            "chromium did not finish {url} within {} s (killed); stderr:\n{stderr}",
            DEADLINE.as_secs()
        ),
    }
}

fn read_stderr(dir: &Path) -> String {
    let all = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    // Without a D-Bus in the container Chromium logs a dozen identical complaints that would
    // bury the line that matters.
    all.lines()
        .filter(|l| !l.contains("dbus/"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- DOM helpers ----
//
// They work on HTML as Chromium serializes it (every non-void element closed, attribute
// values double-quoted with `&`, `"`, `<`, `>` escaped), and are lenient about hand-written
// HTML (single-quoted or unquoted values, any attribute order, upper-case names).

/// Elements that never have a closing tag.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Open,
    Close,
    /// A comment, doctype or processing instruction.
    Other,
}

#[derive(Clone, Copy, Debug)]
struct Tag<'a> {
    kind: Kind,
    name: &'a str,
    /// Byte offset of its `<`.
    start: usize,
    /// Byte offset just past its `>`.
    end: usize,
    self_closing: bool,
}

/// The tags of `html` in order. The content of `<script>` and `<style>` is skipped: it is
/// not markup, and the page's own script compares strings with `<`.
struct Tags<'a> {
    html: &'a str,
    pos: usize,
}

impl<'a> Iterator for Tags<'a> {
    type Item = Tag<'a>;

    fn next(&mut self) -> Option<Tag<'a>> {
        let bytes = self.html.as_bytes();
        loop {
            let start = self.pos + self.html.get(self.pos..)?.find('<')?;
            let rest = &bytes[start + 1..];
            let other_end = if rest.starts_with(b"!--") {
                Some(find_from(self.html, start + 4, "-->").map_or(bytes.len(), |i| i + 3))
            } else if rest.first().is_some_and(|&b| b == b'!' || b == b'?') {
                Some(find_from(self.html, start, ">").map_or(bytes.len(), |i| i + 1))
            } else {
                None
            };
            if let Some(end) = other_end {
                self.pos = end;
                let (kind, name, self_closing) = (Kind::Other, "", false);
                return Some(Tag {
                    kind,
                    name,
                    start,
                    end,
                    self_closing,
                });
            }
            let closing = rest.first() == Some(&b'/');
            let name_start = start + 1 + usize::from(closing);
            let name_len = bytes[name_start..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-' || **b == b':')
                .count();
            if name_len == 0 || !bytes[name_start].is_ascii_alphabetic() {
                // A '<' in text, such as "a < b".
                self.pos = start + 1;
                continue;
            }
            let name = &self.html[name_start..name_start + name_len];
            let end = tag_end(bytes, name_start + name_len);
            let self_closing = !closing && end >= 2 && bytes[end - 2] == b'/';
            self.pos = end;
            if !closing && !self_closing && is_raw_text(name) {
                // The content runs to the matching end tag, whatever it contains.
                self.pos = find_ci(self.html, end, &format!("</{name}")).unwrap_or(bytes.len());
            }
            let kind = if closing { Kind::Close } else { Kind::Open };
            return Some(Tag {
                kind,
                name,
                start,
                end,
                self_closing,
            });
        }
    }
}

fn tags(html: &str) -> Tags<'_> {
    Tags { html, pos: 0 }
}

fn is_raw_text(name: &str) -> bool {
    name.eq_ignore_ascii_case("script") || name.eq_ignore_ascii_case("style")
}

/// Offset just past the `>` that ends a tag whose attributes start at `from`, skipping
/// quoted values (which may contain `>` in hand-written HTML).
fn tag_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    let mut quote = None;
    while i < bytes.len() {
        match (quote, bytes[i]) {
            (None, b'"' | b'\'') => quote = Some(bytes[i]),
            (Some(q), b) if b == q => quote = None,
            (None, b'>') => return i + 1,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

fn find_from(html: &str, from: usize, needle: &str) -> Option<usize> {
    html.get(from..)?.find(needle).map(|i| from + i)
}

fn find_ci(html: &str, from: usize, needle: &str) -> Option<usize> {
    let n = needle.len();
    html.as_bytes()
        .get(from..)?
        .windows(n)
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
        .map(|i| from + i)
}

/// The whole element (opening tag to matching closing tag) that `open` starts.
fn outer<'a>(html: &'a str, open: Tag<'a>) -> &'a str {
    if open.self_closing || VOID.iter().any(|v| v.eq_ignore_ascii_case(open.name)) {
        return &html[open.start..open.end];
    }
    if is_raw_text(open.name) {
        let close = find_ci(html, open.end, &format!("</{}", open.name)).unwrap_or(html.len());
        return &html[open.start..tag_end(html.as_bytes(), close)];
    }
    let mut depth = 0usize;
    let inner = Tags {
        html,
        pos: open.end,
    };
    for tag in inner.filter(|t| t.name.eq_ignore_ascii_case(open.name)) {
        match tag.kind {
            Kind::Open if !tag.self_closing => depth += 1,
            Kind::Close if depth == 0 => return &html[open.start..tag.end],
            Kind::Close => depth -= 1,
            _ => {}
        }
    }
    // Unclosed (hand-written HTML): everything after it.
    &html[open.start..]
}

fn find_element(html: &str, mut pred: impl FnMut(&str) -> bool) -> Option<&str> {
    tags(html)
        .find(|t| t.kind == Kind::Open && pred(&html[t.start..t.end]))
        .map(|t| outer(html, t))
}

/// The first element of `dom` whose attribute `attr` equals `value` (after entity decoding),
/// as its outer HTML: `<article … data-task="web" …>…</article>`. Nested elements of the same
/// name are matched correctly.
pub fn element_with_attr<'a>(dom: &'a str, attr_name: &str, value: &str) -> Option<&'a str> {
    find_element(dom, |open| attr(open, attr_name).as_deref() == Some(value))
}

/// The first element of `dom` that has `class` among its classes, as its outer HTML. To look
/// inside one card, pass the card (from [`element_with_attr`]) as `dom`.
pub fn element_with_class<'a>(dom: &'a str, class: &str) -> Option<&'a str> {
    find_element(dom, |open| {
        attr(open, "class").is_some_and(|c| c.split_ascii_whitespace().any(|c| c == class))
    })
}

/// The value of attribute `name` on the opening tag `element_open_tag` starts with (the rest
/// of the element may follow), entity-decoded; `Some("")` for a bare attribute such as
/// `hidden`, `None` if it is absent.
pub fn attr(element_open_tag: &str, name: &str) -> Option<String> {
    let tag = element_open_tag;
    let open = tags(tag).find(|t| t.kind == Kind::Open)?;
    let bytes = tag.as_bytes();
    let is_space = |i: usize| bytes[i].is_ascii_whitespace();
    // Attributes lie between the name and the closing '>' (absent if the tag is cut short).
    let end = if bytes[open.end - 1] == b'>' {
        open.end - 1
    } else {
        open.end
    };
    let mut i = open.start + 1 + open.name.len();
    loop {
        while i < end && (is_space(i) || bytes[i] == b'/') {
            i += 1;
        }
        if i >= end {
            return None;
        }
        let key_start = i;
        while i < end && !is_space(i) && !matches!(bytes[i], b'=' | b'/') {
            i += 1;
        }
        let key = &tag[key_start..i];
        while i < end && is_space(i) {
            i += 1;
        }
        let mut value = "";
        if i < end && bytes[i] == b'=' {
            i += 1;
            while i < end && is_space(i) {
                i += 1;
            }
            if i < end && matches!(bytes[i], b'"' | b'\'') {
                let quote = bytes[i] as char;
                let start = i + 1;
                let close = tag[start..end].find(quote).map_or(end, |j| start + j);
                value = &tag[start..close];
                i = (close + 1).min(end);
            } else {
                let start = i;
                while i < end && !is_space(i) {
                    i += 1;
                }
                value = &tag[start..i];
            }
        }
        if !key.is_empty() && key.eq_ignore_ascii_case(name) {
            return Some(decode_entities(value));
        }
    }
}

/// The text of `html` (an element or a whole document) roughly as a reader sees it: tags,
/// comments, scripts and styles removed, entities decoded, whitespace runs collapsed to one
/// space, trimmed.
pub fn text(html: &str) -> String {
    let mut raw = String::new();
    let mut pos = 0;
    let mut in_raw_text = false;
    for tag in tags(html) {
        if !in_raw_text {
            raw.push_str(&html[pos..tag.start]);
        }
        // Tags separate words even where no whitespace does (<li>a</li><li>b</li>).
        raw.push(' ');
        in_raw_text = tag.kind == Kind::Open && !tag.self_closing && is_raw_text(tag.name);
        pos = tag.end;
    }
    if !in_raw_text {
        raw.push_str(&html[pos..]);
    }
    let decoded = decode_entities(&raw);
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How many `<name …>` opening tags `html` contains, e.g. `count_tags(list, "li")`.
pub fn count_tags(html: &str, name: &str) -> usize {
    tags(html)
        .filter(|t| t.kind == Kind::Open && t.name.eq_ignore_ascii_case(name))
        .count()
}

/// Decodes the character references Chromium's serializer emits (and numeric ones); anything
/// else is left as written.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // The longest reference decoded here, "&#x10FFFF;", is 10 bytes.
        let semi = rest.bytes().take(11).position(|b| b == b';');
        let decoded = semi.and_then(|semi| {
            let c = match &rest[1..semi] {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                num => num
                    .strip_prefix("#x")
                    .or_else(|| num.strip_prefix("#X"))
                    .map(|hex| u32::from_str_radix(hex, 16))
                    .or_else(|| num.strip_prefix('#').map(str::parse::<u32>))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<!DOCTYPE html>
<html><head><style>a > b { color: red }</style><script>if (a < b) { x = "<article data-task=\"web\">"; }</script></head>
<body data-loaded="true">
<!-- <article data-task="web">commented out</article> -->
<section id="summary"><span data-count-state="healthy" class="count">2</span><span class="count" data-count-state="failed">0</span></section>
<article class="task s-healthy" data-task="db" data-state="healthy" data-paused="false" data-held="false"><h2 class="name">db</h2></article>
<article data-held="true" data-task="web" class="task s-failed" data-state="failed" data-paused="true"><h2 class="name">web</h2>
<span class="state">failed</span><div class="spark"><div class="inner"><svg viewBox="0 0 10 10"><polyline points="0,1 2,3"></polyline></svg></div></div>
<p class="message">HTTP &lt;500&gt; &amp; more</p><ol class="actions"><li class="action">a</li><li class="action">b</li></ol></article>
<article data-task="&lt;script&gt;alert(1)&lt;/script&gt;" data-state="unhealthy"><p class="message">x</p></article>
<img src="a.png" alt="x > y" data-task="img"><br/>
</body></html>"#;

    #[test]
    fn finds_an_element_by_attribute_in_any_order_and_skips_scripts_and_comments() {
        let web = element_with_attr(DOC, "data-task", "web").expect("web");
        assert!(
            web.starts_with("<article data-held=\"true\" data-task=\"web\""),
            "{web}"
        );
        assert!(web.ends_with("</ol></article>"), "{web}");
        assert_eq!(attr(web, "data-state").as_deref(), Some("failed"));
        assert_eq!(attr(web, "data-paused").as_deref(), Some("true"));
        assert_eq!(attr(web, "DATA-HELD").as_deref(), Some("true"));
        assert_eq!(attr(web, "data-missing"), None);

        let db = element_with_attr(DOC, "data-task", "db").expect("db");
        assert_eq!(attr(db, "class").as_deref(), Some("task s-healthy"));
        assert_eq!(text(db), "db");
        assert_eq!(element_with_attr(DOC, "data-task", "nope"), None);
    }

    #[test]
    fn attribute_values_are_compared_and_returned_decoded() {
        let hostile =
            element_with_attr(DOC, "data-task", "<script>alert(1)</script>").expect("hostile card");
        assert_eq!(attr(hostile, "data-state").as_deref(), Some("unhealthy"));
        assert_eq!(
            attr(hostile, "data-task").as_deref(),
            Some("<script>alert(1)</script>")
        );
        let img = element_with_attr(DOC, "data-task", "img").expect("void element");
        assert!(img.starts_with("<img") && img.ends_with('>'), "{img}");
        assert_eq!(attr(img, "alt").as_deref(), Some("x > y"));
    }

    #[test]
    fn attr_handles_quotes_bare_attributes_and_spacing() {
        let tag = r#"<div hidden id = 'a b' data-x=plain data-y="q'uote" data-e="" title="&#60;&#x3E;&nbsp;&bogus; &">"#;
        assert_eq!(attr(tag, "hidden").as_deref(), Some(""));
        assert_eq!(attr(tag, "id").as_deref(), Some("a b"));
        assert_eq!(attr(tag, "data-x").as_deref(), Some("plain"));
        assert_eq!(attr(tag, "data-y").as_deref(), Some("q'uote"));
        assert_eq!(attr(tag, "data-e").as_deref(), Some(""));
        assert_eq!(attr(tag, "title").as_deref(), Some("<>\u{a0}&bogus; &"));
        assert_eq!(attr(tag, "plain"), None);
        assert_eq!(attr("<br/>", "x"), None);
        assert_eq!(attr("no tag here", "x"), None);
        assert_eq!(
            attr("<p title=\"unterminated", "title").as_deref(),
            Some("unterminated")
        );
    }

    #[test]
    fn classes_nesting_text_and_counts() {
        let web = element_with_attr(DOC, "data-task", "web").unwrap();
        assert_eq!(text(element_with_class(web, "state").unwrap()), "failed");
        assert_eq!(
            text(element_with_class(web, "message").unwrap()),
            "HTTP <500> & more"
        );
        // "action" is a class of the <li>s, not of the list: whole class names only.
        let actions = element_with_class(web, "actions").unwrap();
        assert!(actions.starts_with("<ol"), "{actions}");
        assert_eq!(count_tags(actions, "li"), 2);
        assert_eq!(text(actions), "a b");
        // The outer spark div ends at its own </div>, not the inner one's.
        let spark = element_with_class(web, "spark").unwrap();
        assert!(spark.ends_with("</svg></div></div>"), "{spark}");
        assert_eq!(count_tags(spark, "polyline"), 1);
        let healthy = element_with_attr(DOC, "data-count-state", "healthy").unwrap();
        assert_eq!(text(healthy), "2");
        // Neither the script's string nor the comment counts as an article.
        assert_eq!(count_tags(DOC, "article"), 3);
        assert!(!text(DOC).contains("commented out"));
        assert!(!text(DOC).contains("color"));
    }

    #[test]
    fn chromium_runs_the_page_scripts_before_the_dom_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("page.html");
        // The attribute is set from a timer 3 s after load: present only if virtual time ran
        // the page's timers, and the test does not take 3 real seconds.
        std::fs::write(
            &page,
            "<!doctype html><title>t</title><body><p id=w></p><script>
             setTimeout(() => {
               document.getElementById('w').textContent = 'width ' + innerWidth;
               document.body.setAttribute('data-loaded', 'true');
             }, 3000);
             </script></body>",
        )
        .unwrap();
        let url = format!("file://{}", page.display());
        let started = std::time::Instant::now();
        let dom = dump_dom(&url, (1024, 700));
        let took = started.elapsed();
        let body = tags(&dom)
            .find(|t| t.name == "body")
            .map(|t| &dom[t.start..t.end]);
        assert_eq!(
            body.and_then(|b| attr(b, "data-loaded")).as_deref(),
            Some("true"),
            "{dom}"
        );
        assert_eq!(
            text(element_with_attr(&dom, "id", "w").unwrap()),
            "width 1024"
        );
        eprintln!("dump_dom took {took:?}");

        let png = dir.path().join("shot.png");
        screenshot(&url, (390, 844), &png);
        let bytes = std::fs::read(&png).unwrap();
        // PNG header, then the IHDR chunk: width and height, big-endian, at bytes 16..24.
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        let dim = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
        assert_eq!((dim(16), dim(20)), (390, 844));
    }

    #[test]
    #[should_panic(expected = "could not load")]
    fn an_unreachable_page_fails_the_test() {
        let port = crate::supervisord::free_port();
        dump_dom(&format!("http://127.0.0.1:{port}/"), (800, 600));
    }
}
