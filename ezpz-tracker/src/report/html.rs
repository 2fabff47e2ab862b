//! `report.html`: `report.md` as one self-contained page — its images inlined as data URIs,
//! so the single file copied back from a cluster opens with a double-click.

use std::path::Path;

use base64::Engine;
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

const STYLE: &str = "\
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1280px;\
margin:2em auto;padding:0 1.5em;color:#1f2328;line-height:1.5}\
h1{border-bottom:1px solid #d1d9e0;padding-bottom:.3em}\
h2{border-bottom:1px solid #d1d9e0;padding-bottom:.2em;margin-top:2em}\
table{border-collapse:collapse;margin:1em 0;font-size:.92em}\
th,td{border:1px solid #d1d9e0;padding:4px 10px}tr:nth-child(2n){background:#f6f8fa}\
code{background:#eff1f3;border-radius:4px;padding:.1em .35em;font-size:.9em}\
pre{background:#f6f8fa;padding:1em;overflow:auto;border-radius:6px}pre code{background:none}\
img{max-width:100%;height:auto;display:block;margin:.5em 0}\
img.broken{border:2px dashed #d62728;min-height:2em}\
details{margin:1em 0}summary{cursor:pointer;font-weight:600}";

/// Marks images that did not load (and counts the rest on the page's root element, as
/// `data-images="loaded/total"`), so a broken page says so.
const SCRIPT: &str = "window.addEventListener('load',function(){var im=document.images,ok=0;\
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0){ok++}else{\
im[i].classList.add('broken')}}\
document.documentElement.setAttribute('data-images',ok+'/'+im.length)});";

/// `%20` and friends back to characters (the report percent-encodes link targets).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A PNG inside `outdir` as a data URI; `None` for anything else (left as a link).
fn data_uri(outdir: &Path, target: &str) -> Option<String> {
    let rel = percent_decode(target);
    let rel_path = Path::new(&rel);
    if rel_path.is_absolute()
        || rel_path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        || !rel.to_ascii_lowercase().ends_with(".png")
    {
        return None;
    }
    let bytes = std::fs::read(outdir.join(rel_path)).ok()?;
    Some(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// Minimal HTML escaping for the page title.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page for `markdown`, with the PNGs it shows from `outdir` inlined.
pub(crate) fn render(markdown: &str, outdir: &Path) -> String {
    let title = markdown
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# "))
        .unwrap_or("Run report");
    let parser = Parser::new_ext(markdown, Options::ENABLE_TABLES).map(|event| match event {
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let dest_url = data_uri(outdir, &dest_url).map_or(dest_url, CowStr::from);
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            })
        }
        other => other,
    });
    let mut body = String::with_capacity(markdown.len() * 2);
    pulldown_cmark::html::push_html(&mut body, parser);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\
         <script>{SCRIPT}</script>\n</body>\n</html>\n",
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_inside_the_run_are_inlined_and_tables_rendered() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("plots")).unwrap();
        std::fs::write(dir.path().join("plots/a b.png"), b"\x89PNG").unwrap();
        let md = "# Run report: x<y\n\n![a](plots/a%20b.png)\n\n![gone](plots/none.png)\n\n\
                  ![up](../secret.png)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n\
                  <details><summary>All</summary>\n\nhidden\n\n</details>\n";
        let html = render(md, dir.path());
        assert!(html.contains("<title>Run report: x&lt;y</title>"), "{html}");
        assert!(
            html.contains("src=\"data:image/png;base64,iVBORw==\""),
            "{html}"
        );
        assert!(html.contains("src=\"plots/none.png\""));
        assert!(html.contains("src=\"../secret.png\""));
        assert!(html.contains("<table>") && html.contains("<td>2</td>"));
        assert!(html.contains("<details><summary>All</summary>"));
    }
}
