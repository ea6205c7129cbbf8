//! Kernel oops, panic and warning logs turned into structured, symbolized reports.

mod catalog;
mod guilty;
mod locate;
mod log;
mod table;
mod title;

/// Most reports taken from one log.
const MAX_REPORTS: usize = 64;

#[derive(Debug, Clone)]
pub struct Report {
    pub title: String,
    pub alt_titles: Vec<String>,
    pub corrupted: bool,
    pub guilty_file: Option<String>,
}

pub fn find_reports(text: &[u8]) -> Vec<Report> {
    let lines = log::split(text);
    let mut reports = Vec::new();
    let mut from = 0;
    while reports.len() < MAX_REPORTS {
        let Some((start, kind)) = locate::first_report(&lines, from) else {
            break;
        };
        let located = locate::collect(&lines, start, kind);
        let joined = located
            .text
            .get(..located.text_end)
            .unwrap_or_default()
            .join(&b'\n');
        let described = title::describe(&joined, kind).or_else(|| {
            let all = located.text.join(&b'\n');
            title::describe(&all, kind)
        });
        if let Some(t) = described {
            let lines: Vec<String> = located
                .text
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect();
            let guilty_file = guilty::guilty_file(&t.title, &lines);
            reports.push(Report {
                title: t.title,
                alt_titles: t.alt_titles,
                corrupted: t.corrupted,
                guilty_file,
            });
        }
        from = match located.next {
            Some(next) if next > start => next,
            _ => break,
        };
    }
    reports
}
