//! Titles over syzkaller's report corpus (tests/data/README.md).

use std::fs;
use std::path::Path;

struct Case {
    name: String,
    titles: Vec<String>,
    log: Vec<u8>,
}

fn cases(dir: &str) -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir);
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = fs::read(&path).unwrap();
        // Header lines, an empty line, the log; a log without a crash has no header lines.
        let split = if data.starts_with(b"\n") {
            0
        } else {
            data.windows(2).position(|w| w == b"\n\n").unwrap() + 1
        };
        let header = String::from_utf8_lossy(&data[..split]);
        let mut titles = Vec::new();
        for line in header.lines() {
            if let Some(t) = line
                .strip_prefix("TITLE: ")
                .or_else(|| line.strip_prefix("ALT: "))
                .or_else(|| line.strip_prefix("FILE: "))
            {
                titles.push(t.to_string());
            }
        }
        out.push(Case {
            name: path.file_name().unwrap().to_string_lossy().into(),
            titles,
            log: data[split + 1..].to_vec(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[test]
fn syzkaller_titles() {
    let cases = cases("syzkaller");
    let (mut good, mut total) = (0, 0);
    for case in &cases {
        total += 1;
        let reports = kdive_triage::triage(&case.log, None).reports;
        let got = reports
            .first()
            .map(|r| (r.title.clone(), r.alt_titles.clone()));
        let ok = match (&got, case.titles.is_empty()) {
            (None, true) => true,
            (Some((t, alts)), false) => case
                .titles
                .iter()
                .any(|want| want == t || alts.contains(want)),
            _ => false,
        };
        if ok {
            good += 1
        } else {
            println!(
                "MISS {}: want {:?} got {:?}",
                case.name,
                case.titles.first(),
                got.map(|g| g.0)
            );
        }
    }
    let rate = good as f64 * 100.0 / total as f64;
    println!("syzkaller titles: {good}/{total} = {rate:.1}%");
    assert!(rate >= 90.0);
    // "No report" exactly where the corpus has no TITLE.
    let wrong: Vec<&str> = cases
        .iter()
        .filter(|c| c.titles.is_empty() != kdive_triage::triage(&c.log, None).reports.is_empty())
        .map(|c| c.name.as_str())
        .collect();
    let without = cases.iter().filter(|c| c.titles.is_empty()).count();
    println!("logs without a crash: {without}, reported as such: all but {wrong:?}");
    assert!(wrong.is_empty(), "report/no-report mismatch in {wrong:?}");
}

#[test]
fn syzkaller_guilty_files() {
    let cases = cases("syzkaller-guilty");
    let (mut good, mut total) = (0, 0);
    for case in &cases {
        total += 1;
        let reports = kdive_triage::triage(&case.log, None).reports;
        let got = reports.first().and_then(|r| r.guilty_file.clone());
        let want = case.titles.first().filter(|f| !f.is_empty());
        if got.as_ref() == want {
            good += 1
        } else {
            println!(
                "MISS {}: want {:?} got {:?}",
                case.name,
                case.titles.first(),
                got
            );
        }
    }
    let rate = good as f64 * 100.0 / total as f64;
    println!("syzkaller-guilty files: {good}/{total} = {rate:.1}%");
    assert!(rate >= 85.0);
}
