//! The console's files, embedded in the binary: plain HTML, CSS and ES modules (no build
//! step), and uPlot vendored once at a pinned version (`console/vendor/SOURCES` names it,
//! where it came from, its licence and the SHA-256 of every file; a test checks them).
//!
//! Every response carries a same-origin Content-Security-Policy: scripts, styles and
//! connections from this origin only, no inline script or style elements, no frames.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The policy on every console response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// `(path under /assets/, bytes)`.
pub const FILES: &[(&str, &[u8])] = &[
    ("app.js", include_bytes!("../../console/app.js")),
    ("api.js", include_bytes!("../../console/api.js")),
    ("views.js", include_bytes!("../../console/views.js")),
    ("chart.js", include_bytes!("../../console/chart.js")),
    ("style.css", include_bytes!("../../console/style.css")),
    (
        "vendor/uplot-1.6.32/uPlot.esm.js",
        include_bytes!("../../console/vendor/uplot-1.6.32/uPlot.esm.js"),
    ),
    (
        "vendor/uplot-1.6.32/uPlot.min.css",
        include_bytes!("../../console/vendor/uplot-1.6.32/uPlot.min.css"),
    ),
    (
        "vendor/uplot-1.6.32/LICENSE",
        include_bytes!("../../console/vendor/uplot-1.6.32/LICENSE"),
    ),
];

/// The page every view's URL serves.
pub const INDEX: &[u8] = include_bytes!("../../console/index.html");

/// The vendored files' record.
pub const SOURCES: &str = include_str!("../../console/vendor/SOURCES");

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    }
}

/// Adds the security headers every console response carries.
pub fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The page.
pub fn index() -> Response {
    secure(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            INDEX,
        )
            .into_response(),
    )
}

/// A file under `/assets/`.
pub fn asset(path: &str) -> Response {
    match FILES.iter().find(|(p, _)| *p == path) {
        Some((_, bytes)) => secure(
            (
                [
                    (header::CONTENT_TYPE, content_type(path)),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                *bytes,
            )
                .into_response(),
        ),
        None => secure((StatusCode::NOT_FOUND, "no such file").into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn vendored_files_match_their_recorded_checksums() {
        let mut checked = 0;
        for line in SOURCES.lines().filter(|l| l.starts_with("sha256 ")) {
            let mut parts = line.split_whitespace().skip(1);
            let (Some(sum), Some(path)) = (parts.next(), parts.next()) else {
                panic!("bad line {line:?}");
            };
            let Some((_, bytes)) = FILES.iter().find(|(p, _)| p.ends_with(path)) else {
                panic!("{path} is recorded but not embedded");
            };
            let actual: String = Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(actual, sum, "{path}");
            checked += 1;
        }
        assert_eq!(checked, 3, "uPlot's module, style sheet and licence");
    }

    #[test]
    fn the_page_loads_only_files_that_are_embedded() {
        let page = std::str::from_utf8(INDEX).unwrap();
        for reference in page.split("\"/assets/").skip(1) {
            let path = reference.split('"').next().unwrap();
            assert!(FILES.iter().any(|(p, _)| *p == path), "{path}");
        }
        assert!(
            !page.contains("<script>") && !page.contains("style="),
            "nothing inline"
        );
    }
}
