//! Long lists in pages: a topic list of 10,000 topics or a topic of 1,000 partitions is
//! shown [`Pager::size`] rows at a time (a table that long takes a browser seconds to lay
//! out), with links to the other pages. A page number comes from the query (`page=`);
//! one past the end shows the last page (the list may have shrunk since the link was made).

use std::ops::Range;

use axum::http::StatusCode;

use crate::view::Failure;

/// Which rows of a list a page shows, and the links to the pages around it
/// (`templates/pager.html`).
#[derive(Debug)]
pub(crate) struct Pager {
    /// This page, from 1.
    pub(crate) page: usize,
    /// Pages in all (at least 1).
    pub(crate) pages: usize,
    /// Rows in all.
    pub(crate) total: usize,
    /// The rows shown, from 0.
    rows: Range<usize>,
    /// Links to the first, the previous, the next and the last page, where there are such.
    pub(crate) first: Option<String>,
    pub(crate) prev: Option<String>,
    pub(crate) next: Option<String>,
    pub(crate) last: Option<String>,
}

impl Pager {
    /// Rows a page shows.
    pub(crate) const SIZE: usize = 200;

    /// Page `asked` (as the query has it; empty is the first) of `total` rows, each
    /// page [`Pager::SIZE`] rows; `href(n)` is the link to page `n`.
    pub(crate) fn new(
        asked: &str,
        total: usize,
        href: impl Fn(usize) -> String,
    ) -> Result<Pager, Failure> {
        Self::sized(asked, total, Self::SIZE, href)
    }

    fn sized(
        asked: &str,
        total: usize,
        size: usize,
        href: impl Fn(usize) -> String,
    ) -> Result<Pager, Failure> {
        let pages = total.div_ceil(size).max(1);
        let page = match asked.trim() {
            "" => 1,
            n => match n.parse::<usize>() {
                Ok(n) if n >= 1 => n.min(pages),
                _ => {
                    let why = format!("page {n:?} is not a page number (1, 2, …)");
                    return Err(Failure::new(StatusCode::BAD_REQUEST, why));
                }
            },
        };
        let start = (page - 1) * size;
        let link = |n: usize, shown: bool| shown.then(|| href(n));
        Ok(Pager {
            page,
            pages,
            total,
            rows: start..(start + size).min(total),
            first: link(1, page > 2),
            prev: link(page - 1, page > 1),
            next: link(page + 1, page < pages),
            last: link(pages, page + 1 < pages),
        })
    }

    /// The rows this page shows, from 0.
    pub(crate) fn rows(&self) -> Range<usize> {
        self.rows.clone()
    }

    /// Whether there is more than one page (the links are shown).
    pub(crate) fn paged(&self) -> bool {
        self.pages > 1
    }

    /// The rows shown in words, from 1 (`201–400 of 9,849`).
    pub(crate) fn shown(&self) -> String {
        match self.rows.is_empty() {
            true => format!("0 of {}", grouped(self.total)),
            false => format!(
                "{}–{} of {}",
                grouped(self.rows.start + 1),
                grouped(self.rows.end),
                grouped(self.total)
            ),
        }
    }
}

/// `n` with its thousands separated (`9,849`).
pub(crate) fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pager(asked: &str, total: usize) -> Pager {
        Pager::sized(asked, total, 10, |n| format!("?page={n}")).unwrap()
    }

    #[test]
    fn a_page_shows_its_rows_and_links_to_its_neighbours() {
        let p = pager("", 35);
        assert_eq!((p.page, p.pages, p.rows()), (1, 4, 0..10));
        assert_eq!((p.first.as_deref(), p.prev.as_deref()), (None, None));
        assert_eq!((p.next.as_deref(), p.last.as_deref()), (Some("?page=2"), Some("?page=4")));
        assert_eq!(p.shown(), "1–10 of 35");

        let p = pager("3", 35);
        assert_eq!(p.rows(), 20..30);
        assert_eq!((p.first.as_deref(), p.prev.as_deref()), (Some("?page=1"), Some("?page=2")));
        assert_eq!((p.next.as_deref(), p.last.as_deref()), (Some("?page=4"), None));

        let p = pager("4", 35);
        assert_eq!((p.rows(), p.next.as_deref(), p.shown()), (30..35, None, "31–35 of 35".into()));
    }

    #[test]
    fn past_the_end_is_the_last_page_and_nothing_is_one_empty_page() {
        assert_eq!(pager("99", 35).page, 4);
        let empty = pager("", 0);
        assert_eq!((empty.page, empty.pages, empty.rows(), empty.paged()), (1, 1, 0..0, false));
        assert_eq!(empty.shown(), "0 of 0");
    }

    #[test]
    fn a_page_that_is_no_number_is_refused_by_name() {
        for bad in ["0", "-1", "two", "1.5"] {
            let e = Pager::sized(bad, 35, 10, |n| n.to_string()).unwrap_err();
            assert!(e.message().contains(&format!("page {bad:?}")), "{bad}: {}", e.message());
        }
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(9_849), "9,849");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
