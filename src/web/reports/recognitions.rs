//! `/reports/recognitions`: known and unknown recognitions per hour or day and camera, with the period's subjects, as a
//! page or CSV.

use super::buckets::{BucketKey, BucketStarts, bucket_key, chart_buckets, totals_per_bucket};
use super::chart::{Chart, Series};
use super::params::{Bucket, Format, RecognitionsQuery, csv_href};
use super::{Choice, Filters, Shape, choices, csv_response, distinct_indexed, period_words, rows_for_page, today};
use crate::domain::DeviceId;
use crate::web::AppState;
use crate::web::csv::Csv;
use crate::web::subjects::SubjectLine;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

struct RecognitionRow {
    bucket: BucketKey,
    camera: String,
    known: i64,
    unknown: i64,
}

/// One row of the page's table.
pub struct RecognitionLine {
    pub bucket: String,
    pub camera: String,
    pub known: i64,
    pub unknown: i64,
}

#[derive(Template)]
#[template(path = "reports_recognitions.html")]
struct RecognitionsPage {
    site: String,
    timezone: String,
    period: String,
    filters: Filters,
    cameras: Vec<Choice>,
    rows: Vec<RecognitionLine>,
    /// The rows are totals per bucket (too many per-camera rows for a page; the CSV has them).
    totals_only: bool,
    total_known: i64,
    total_unknown: i64,
    chart: Chart,
    subjects: Vec<SubjectLine>,
    more_subjects: usize,
    csv_href: String,
}

/// Recognition rows per bucket and camera, or per bucket (camera empty).
fn load_recognitions(
    conn: &rusqlite::Connection,
    query: &RecognitionsQuery,
    shape: Shape,
) -> rusqlite::Result<Vec<RecognitionRow>> {
    // Day buckets read the per-day rollup (its local date is the stored one, so a daylight-saving day sums its
    // 23 or 25 hours); hour buckets the hourly rows.
    let (columns, table, bucket) = match query.bucket {
        Bucket::Hour => ("bucket_start, NULL", "recognitions", "bucket_start"),
        Bucket::Day => ("NULL, local_date", "recognitions_daily", "local_date"),
    };
    // The camera filter is written into the statement only when given, so SQLite can use the camera index.
    let camera = query.camera.as_ref().map(DeviceId::as_str);
    let filter = if camera.is_some() { " AND camera_id = ?3" } else { "" };
    let sql = match shape {
        Shape::Each(limit) => format!(
            "SELECT {columns}, camera_id, known, unknown FROM {table}
             WHERE local_date BETWEEN ?1 AND ?2{filter} ORDER BY {bucket}, camera_id{}",
            limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default()
        ),
        Shape::Totals => format!(
            "SELECT {columns}, '', SUM(known), SUM(unknown) FROM {table}
             WHERE local_date BETWEEN ?1 AND ?2{filter} GROUP BY {bucket} ORDER BY {bucket}"
        ),
    };
    let (from, to) = (query.period.from.to_string(), query.period.to.to_string());
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&from, &to];
    if let Some(camera) = &camera {
        values.push(camera);
    }
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(values.as_slice(), |r| {
        Ok(RecognitionRow {
            bucket: bucket_key(r.get(0)?, r.get(1)?)?,
            camera: r.get(2)?,
            known: r.get(3)?,
            unknown: r.get(4)?,
        })
    })?;
    rows.collect()
}

pub(super) async fn recognitions(state: web::Data<AppState>, req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let tz = state.config.site.timezone.clone();
    let query = RecognitionsQuery::parse(req.query_string(), today(&tz), &tz)?;
    let q = query.clone();
    let subject_lists = state.subject_lists.clone();
    let (rows, totals_only, subjects, cameras) = crate::web::read_views(&state, move |conn| {
        // The CSV has every row; the page lists per-camera rows only while they stay few, and adds the subjects.
        Ok(match q.format {
            Format::Csv => (load_recognitions(conn, &q, Shape::Each(None))?, false, None, vec![]),
            Format::Html => {
                let (rows, totals_only) = rows_for_page(|shape| load_recognitions(conn, &q, shape))?;
                let subjects = subject_lists.get(conn, q.period.from, q.period.to, q.camera.as_ref())?;
                let cameras = distinct_indexed(conn, "recognitions_daily", "camera_id")?;
                (rows, totals_only, Some(subjects), cameras)
            }
        })
    })
    .await?;

    if query.format == Format::Csv {
        let mut csv = Csv::with_header(&["bucket_start", "camera", "known", "unknown"]);
        let mut starts = BucketStarts::new(&tz);
        for row in &rows {
            csv.row(&[
                starts.rfc3339(row.bucket),
                row.camera.as_str(),
                row.known.to_string().as_str(),
                row.unknown.to_string().as_str(),
            ]);
        }
        return Ok(csv_response("recognitions", &query.period, csv));
    }

    let totals = totals_per_bucket(rows.iter().map(|r| (r.bucket, [r.known, r.unknown])));
    let buckets = chart_buckets(query.bucket, &query.period, &tz, &totals);
    let (total_known, total_unknown) = rows.iter().fold((0, 0), |(k, u), r| (k + r.known, u + r.unknown));
    let scope = query
        .camera
        .as_ref()
        .map(|c| format!(", camera {c}"))
        .unwrap_or_default();
    let chart = Chart::bars(
        "recognitions-chart",
        format!(
            "Recognitions per {}, known and unknown, {}{scope}",
            query.bucket.as_str(),
            period_words(&query.period)
        ),
        format!(
            "{} buckets; {total_known} known and {total_unknown} unknown in total.",
            buckets.len()
        ),
        [
            Series {
                class: "bar-a",
                name: "known",
            },
            Series {
                class: "bar-b",
                name: "unknown",
            },
        ],
        &buckets,
    );
    let subjects = subjects.expect("the page's subjects are loaded");
    let page = RecognitionsPage {
        site: state.config.site.name.clone(),
        timezone: state.config.site.timezone_name.clone(),
        period: period_words(&query.period),
        filters: Filters::new(&query.period, query.bucket),
        cameras: choices(cameras, query.camera.as_ref().map(DeviceId::as_str)),
        csv_href: csv_href(
            "/reports/recognitions",
            &query.period,
            &[
                ("bucket", Some(query.bucket.as_str())),
                ("camera", query.camera.as_ref().map(DeviceId::as_str)),
            ],
        ),
        rows: rows
            .into_iter()
            .map(|r| RecognitionLine {
                bucket: r.bucket.label(&tz),
                camera: r.camera,
                known: r.known,
                unknown: r.unknown,
            })
            .collect(),
        totals_only,
        total_known,
        total_unknown,
        chart,
        subjects: subjects
            .shown
            .iter()
            .map(|line| SubjectLine {
                subject: state.vault.reveal_text(&line.subject),
                ..line.clone()
            })
            .collect(),
        more_subjects: subjects.more,
    };
    crate::web::render(&page)
}
