//! CSV as RFC 4180 writes it, for the reports' `?format=csv`: CRLF line ends, and a field quoted (with inner
//! quotes doubled) exactly when it holds a comma, a quote or a line break, so spreadsheets and `csv` readers
//! get back the very strings the page shows.

/// A CSV document built row by row.
#[derive(Debug, Default)]
pub struct Csv {
    text: String,
}

impl Csv {
    /// A document that starts with the header row.
    pub fn with_header(columns: &[&str]) -> Self {
        let mut csv = Csv::default();
        csv.row(columns);
        csv
    }

    /// Appends one row.
    pub fn row<S: AsRef<str>>(&mut self, fields: &[S]) {
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            push_field(&mut self.text, field.as_ref());
        }
        self.text.push_str("\r\n");
    }

    pub fn into_string(self) -> String {
        self.text
    }

    /// The document as a download named `filename` (letters, digits, `-`, `_` and `.` only).
    pub fn into_response(self, filename: &str) -> actix_web::HttpResponse {
        actix_web::HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                actix_web::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ))
            .body(self.text)
    }
}

fn push_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::Csv;

    #[test]
    fn plain_fields_are_written_as_they_are() {
        let mut csv = Csv::with_header(&["device", "in"]);
        csv.row(&["T1", "3"]);
        assert_eq!(csv.into_string(), "device,in\r\nT1,3\r\n");
    }

    #[test]
    fn fields_with_commas_quotes_or_line_breaks_are_quoted_and_inner_quotes_doubled() {
        let mut csv = Csv::default();
        csv.row(&["Hall A, north", "the \"big\" one", "two\nlines", "cr\rhere", ""]);
        assert_eq!(
            csv.into_string(),
            "\"Hall A, north\",\"the \"\"big\"\" one\",\"two\nlines\",\"cr\rhere\",\r\n"
        );
    }

    #[test]
    fn spaces_and_markup_need_no_quoting() {
        let mut csv = Csv::default();
        csv.row(&[" Hall A ", "<script>"]);
        assert_eq!(csv.into_string(), " Hall A ,<script>\r\n");
    }
}
