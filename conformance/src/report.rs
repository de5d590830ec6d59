//! Reports: the terminal summary, `report.json`, `junit.xml` and a self-contained
//! `report.html`.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::case::{describe, Case};
use crate::runner::{CaseResult, GroupCase, ImplReport, Status};

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct Report {
    /// The cases, in order.
    pub cases: Vec<Case>,
    /// The non-vector cases (conversations, resources), in order; an implementation that did
    /// not run one has no result for it (shown as `—`).
    pub groups: Vec<GroupCase>,
    /// One entry per implementation.
    pub impls: Vec<ImplReport>,
}

/// Totals over every implementation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// pass + non-strict.
    pub passed: usize,
    /// fail + crash + timeout.
    pub failed: usize,
    /// skipped.
    pub skipped: usize,
    /// Failures of required cases.
    pub required_failed: usize,
}

impl Report {
    /// The totals.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for r in self.impls.iter().flat_map(|i| i.all()) {
            match r.status {
                s if s.is_pass() => t.passed += 1,
                Status::Skipped => t.skipped += 1,
                _ => {
                    t.failed += 1;
                    if r.tier == "required" {
                        t.required_failed += 1;
                    }
                }
            }
        }
        t
    }

    /// The terminal summary, ending with the line `N passed, N failed[, N skipped]`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for i in &self.impls {
            let _ = writeln!(
                s,
                "{:<28} {:>5} passed ({} non-strict), {:>4} failed, {:>3} skipped   {:>7.1} s   {}",
                i.name,
                i.count(Status::is_pass),
                i.count(|s| s == Status::NonStrict),
                i.count(Status::is_fail),
                i.count(|s| s == Status::Skipped),
                i.elapsed.as_secs_f64(),
                i.about
            );
            let fails: Vec<&CaseResult> = i.all().filter(|r| r.status.is_fail()).collect();
            for r in fails.iter().take(15) {
                let _ = writeln!(s, "    {:<8} {}: {}", r.status.name(), r.id, r.detail);
            }
            if fails.len() > 15 {
                let _ = writeln!(s, "    ... and {} more (see the report)", fails.len() - 15);
            }
        }
        let t = self.totals();
        let _ = write!(s, "{} passed, {} failed", t.passed, t.failed);
        if t.skipped > 0 {
            let _ = write!(s, ", {} skipped", t.skipped);
        }
        s.push('\n');
        s
    }

    /// `report.json`.
    pub fn to_json(&self) -> Value {
        let t = self.totals();
        json!({
            "totals": {"passed": t.passed, "failed": t.failed, "skipped": t.skipped,
                       "required_failed": t.required_failed},
            "cases": self.cases.iter().map(|c| json!({
                "id": c.id(), "spec": c.vector.spec, "tier": c.vector.tier,
                "profile": c.vector.profile, "description": c.vector.description,
                "expect": describe(&c.vector.expect), "stream_len": c.stream().len(),
            })).collect::<Vec<_>>(),
            "implementations": self.impls.iter().map(|i| json!({
                "name": i.name, "about": i.about, "seconds": i.elapsed.as_secs_f64(),
                "passed": i.count(Status::is_pass), "failed": i.count(Status::is_fail),
                "skipped": i.count(|s| s == Status::Skipped),
                "results": i.results.iter().map(result_json).collect::<Vec<_>>(),
                "group_results": i.groups.iter().map(result_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "groups": self.groups.iter().map(|g| json!({
                "id": g.id, "group": g.group(), "spec": g.spec, "tier": g.tier,
                "flags": g.flags, "description": g.description,
            })).collect::<Vec<_>>(),
        })
    }

    /// `junit.xml`: one test suite per implementation, one test case per vector.
    pub fn to_junit(&self) -> String {
        let t = self.totals();
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuites name=\"lhp-conformance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
            t.passed + t.failed + t.skipped,
            t.failed,
            t.skipped
        );
        for i in &self.impls {
            let _ = writeln!(
                x,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
                xml(&i.name),
                i.results.len() + i.groups.len(),
                i.count(Status::is_fail),
                i.count(|s| s == Status::Skipped),
                i.elapsed.as_secs_f64()
            );
            for r in i.all() {
                let _ = write!(
                    x,
                    "    <testcase classname=\"{}\" name=\"{}\"",
                    xml(&i.name),
                    xml(&r.id)
                );
                match r.status {
                    Status::Pass | Status::NonStrict => x.push_str("/>\n"),
                    Status::Skipped => {
                        let _ =
                            writeln!(x, "><skipped message=\"{}\"/></testcase>", xml(&r.detail));
                    }
                    s => {
                        let _ = writeln!(
                            x,
                            "><failure type=\"{}\" message=\"{}\">{}</failure></testcase>",
                            s.name(),
                            xml(&r.detail),
                            xml(&failure_text(r))
                        );
                    }
                }
            }
            x.push_str("  </testsuite>\n");
        }
        x.push_str("</testsuites>\n");
        x
    }

    /// `report.html`: self-contained.
    pub fn to_html(&self) -> String {
        let t = self.totals();
        let mut h = String::new();
        h.push_str(HTML_HEAD);
        let _ = writeln!(
            h,
            "<h1>LHP/1 conformance</h1><p class=sum>{} passed, {} failed, {} skipped \
             ({} required failures)</p>",
            t.passed, t.failed, t.skipped, t.required_failed
        );
        h.push_str("<table class=impls><tr><th>implementation</th><th>passed</th><th>failed</th><th>skipped</th><th>seconds</th><th>about</th></tr>\n");
        for i in &self.impls {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td></tr>",
                esc(&i.name),
                i.count(Status::is_pass),
                i.count(Status::is_fail),
                i.count(|s| s == Status::Skipped),
                i.elapsed.as_secs_f64(),
                esc(&i.about)
            );
        }
        h.push_str("</table>\n<p>Legend: <span class='c pass'>pass</span> <span class='c non-strict'>non-strict</span> <span class='c fail'>fail</span> <span class='c crash'>crash</span> <span class='c timeout'>timeout</span> <span class='c skipped'>skipped</span>. Click a row for details.</p>\n");
        h.push_str("<table class=matrix><tr><th>vector</th><th>§</th><th>tier</th>");
        for i in &self.impls {
            let _ = write!(h, "<th>{}</th>", esc(&i.name));
        }
        h.push_str("</tr>\n");
        for (n, case) in self.cases.iter().enumerate() {
            let results: Vec<Option<&CaseResult>> =
                self.impls.iter().map(|i| i.results.get(n)).collect();
            let _ = write!(
                h,
                "<tr class=row onclick=\"t('d{n}')\"><td class=id>{}</td><td>{}</td><td>{}</td>",
                esc(case.id()),
                esc(&case.vector.spec),
                esc(&case.vector.tier)
            );
            for r in &results {
                let s = r.map_or("skipped", |r| r.status.name());
                let _ = write!(h, "<td class='c {s}'>{s}</td>");
            }
            h.push_str("</tr>\n");
            let _ = write!(
                h,
                "<tr id=d{n} class=det><td colspan={}><p>{}</p><p>spec §{} · profile {} · \
                 {} octets{} · expected: {}</p><ul>",
                3 + self.impls.len(),
                esc(&case.vector.description),
                esc(&case.vector.spec),
                esc(&case.vector.profile),
                case.stream().len(),
                if case.skip() > 0 {
                    format!(" after {} skipped", case.skip())
                } else {
                    String::new()
                },
                esc(&describe(&case.vector.expect))
            );
            let mut marked: Option<&CaseResult> = None;
            for (i, r) in self.impls.iter().zip(&results) {
                if let Some(r) = r {
                    let _ = write!(
                        h,
                        "<li><b>{}</b>: <span class='c {}'>{}</span> {} ({} plans{}{})</li>",
                        esc(&i.name),
                        r.status.name(),
                        r.status.name(),
                        esc(&failure_text(r)),
                        r.plans,
                        if r.sampled {
                            ", cut points sampled"
                        } else {
                            ""
                        },
                        if r.underived > 0 {
                            format!(", {} truncations not derivable", r.underived)
                        } else {
                            String::new()
                        }
                    );
                    if marked.is_none() && r.failure.is_some() {
                        marked = Some(r);
                    }
                }
            }
            h.push_str("</ul>");
            h.push_str(&hex_dump(case, marked));
            h.push_str("</td></tr>\n");
        }
        h.push_str("</table>\n");
        h.push_str(&self.groups_html());
        h.push_str("</body></html>\n");
        h
    }

    /// The matrix of the non-vector groups (conversations, resources).
    fn groups_html(&self) -> String {
        let mut h = String::new();
        if self.groups.is_empty() {
            return h;
        }
        h.push_str(
            "<h2>Behaviour, application and resource groups</h2>\n<table class=matrix>\
             <tr><th>case</th><th>§</th><th>tier</th><th>flags</th>",
        );
        for i in &self.impls {
            let _ = write!(h, "<th>{}</th>", esc(&i.name));
        }
        h.push_str("</tr>\n");
        for (n, g) in self.groups.iter().enumerate() {
            let results: Vec<Option<&CaseResult>> =
                self.impls.iter().map(|i| i.group_result(&g.id)).collect();
            let _ = write!(
                h,
                "<tr class=row onclick=\"t('g{n}')\"><td class=id>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                esc(&g.id),
                esc(&g.spec),
                esc(&g.tier),
                esc(&g.flags.join(" "))
            );
            for r in &results {
                match r {
                    Some(r) => {
                        let s = r.status.name();
                        let _ = write!(h, "<td class='c {s}'>{s}</td>");
                    }
                    None => h.push_str("<td>—</td>"),
                }
            }
            let _ = write!(
                h,
                "</tr>\n<tr id=g{n} class=det><td colspan={}><p>{}</p><ul>",
                4 + self.impls.len(),
                esc(&g.description)
            );
            for (i, r) in self.impls.iter().zip(&results) {
                if let Some(r) = r {
                    let _ = write!(
                        h,
                        "<li><b>{}</b>: <span class='c {}'>{}</span> {}</li>",
                        esc(&i.name),
                        r.status.name(),
                        r.status.name(),
                        esc(&failure_text(r))
                    );
                }
            }
            h.push_str("</ul></td></tr>\n");
        }
        h.push_str("</table>\n");
        h
    }

    /// Writes `report.json`, `junit.xml` and `report.html` into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let files = [
            (
                dir.join("report.json"),
                serde_json::to_string_pretty(&self.to_json()).map_err(io::Error::other)?,
            ),
            (dir.join("junit.xml"), self.to_junit()),
            (dir.join("report.html"), self.to_html()),
        ];
        let mut out = Vec::new();
        for (path, text) in files {
            std::fs::write(&path, text)?;
            out.push(path);
        }
        Ok(out)
    }
}

fn result_json(r: &CaseResult) -> Value {
    json!({
        "id": r.id, "status": r.status.name(), "detail": r.detail, "plans": r.plans,
        "sampled": r.sampled, "underived_truncations": r.underived,
        "failure": r.failure.as_ref().map(|f| json!({
            "strategy": f.strategy.name(), "cuts": f.cuts, "truncate": f.truncate,
            "shrunk": f.shrunk, "expected": f.expected, "got": f.got, "reason": f.reason,
        })),
    })
}

fn failure_text(r: &CaseResult) -> String {
    match &r.failure {
        None => r.detail.clone(),
        Some(f) => format!(
            "{}; expected {}; got {}{}",
            r.detail,
            f.expected,
            if f.got.is_empty() {
                "no outcome"
            } else {
                &f.got
            },
            if f.shrunk {
                ""
            } else {
                " (shrinking stopped at its budget)"
            }
        ),
    }
}

/// Up to 4 KiB of the decoded stream (512 octets when nothing failed), 16 octets a line, with
/// the failing plan's cut points and truncation marked.
fn hex_dump(case: &Case, failed: Option<&CaseResult>) -> String {
    let stream = case.stream();
    let f = failed.and_then(|r| r.failure.as_ref());
    let limit = if f.is_some() { 4096 } else { 512 };
    let cuts: &[usize] = f.map_or(&[], |f| &f.cuts);
    let trunc = f.and_then(|f| f.truncate);
    let mut h = String::from("<pre class=hex>");
    if let Some(f) = f {
        let _ = writeln!(
            h,
            "failing split ({}): {}{}",
            f.strategy,
            if cuts.is_empty() {
                "whole stream".to_owned()
            } else {
                format!("cut at {cuts:?} (marked ▌)")
            },
            trunc
                .map(|t| format!(", stream ends after {t} octets (marked ✂)"))
                .unwrap_or_default()
        );
    }
    for (line, row) in stream.chunks(16).take(limit / 16).enumerate() {
        let base = line * 16;
        let _ = write!(h, "{:08x}  ", case.skip() as usize + base);
        for (i, b) in row.iter().enumerate() {
            let at = base + i;
            if trunc == Some(at) {
                h.push_str("<span class=cut>✂</span>");
            }
            if cuts.binary_search(&at).is_ok() {
                h.push_str("<span class=cut>▌</span>");
            } else {
                h.push(' ');
            }
            let _ = write!(h, "{b:02x}");
        }
        h.push_str("   ");
        for &b in row {
            h.push(if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            });
        }
        h.push('\n');
    }
    if stream.len() > limit {
        let _ = writeln!(h, "... {} more octets", stream.len() - limit);
    }
    h.push_str("</pre>");
    // ASCII columns may hold '<' or '&': escape the whole dump but keep our spans.
    escape_dump(&h)
}

fn escape_dump(h: &str) -> String {
    const OPEN: &str = "<span class=cut>";
    const CLOSE: &str = "</span>";
    let inner = h
        .strip_prefix("<pre class=hex>")
        .and_then(|s| s.strip_suffix("</pre>"))
        .unwrap_or(h);
    let marked = inner.replace(OPEN, "\u{1}").replace(CLOSE, "\u{2}");
    let escaped = esc(&marked).replace('\u{1}', OPEN).replace('\u{2}', CLOSE);
    format!("<pre class=hex>{escaped}</pre>")
}

/// HTML text escaping.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// XML attribute/text escaping (control characters other than tab/LF/CR dropped).
pub fn xml(s: &str) -> String {
    esc(s)
        .chars()
        .filter(|&c| c >= ' ' || c == '\t' || c == '\n' || c == '\r')
        .collect()
}

const HTML_HEAD: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LHP/1 conformance report</title>
<style>
body{font-family:system-ui,sans-serif;margin:1em 2em;color:#222}
table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left;vertical-align:top}
.matrix td.id{font-family:monospace}
tr.row{cursor:pointer} tr.row:hover{background:#f4f4ff}
tr.det{display:none} tr.det.open{display:table-row}
.c{font-weight:600;padding:0 4px}
.pass{background:#c8f0c8}.non-strict{background:#e8f0a0}.fail{background:#f5a3a3}
.crash{background:#d070d0;color:#fff}.timeout{background:#f0b060}.skipped{background:#ddd}
pre.hex{font-size:12px;background:#fafafa;border:1px solid #eee;padding:4px;overflow-x:auto}
.cut{color:#d00;font-weight:bold}
p.sum{font-size:18px;font-weight:600}
</style>
<script>function t(id){document.getElementById(id).classList.toggle('open')}</script>
</head><body>
"#;
