//! Every SQL block of docs/queries.md runs as written and answers with rows.

use crate::support::*;

/// The ```sql blocks of a Markdown file, with the heading above each.
fn sql_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let (mut heading, mut current): (String, Option<String>) = (String::new(), None);
    for line in markdown.lines() {
        match (&mut current, line.trim()) {
            (None, "```sql") => current = Some(String::new()),
            (Some(sql), "```") => {
                blocks.push((heading.clone(), std::mem::take(sql)));
                current = None;
            }
            (Some(sql), _) => {
                sql.push_str(line);
                sql.push('\n');
            }
            (None, text) if text.starts_with("## ") => heading = text[3..].to_owned(),
            (None, _) => {}
        }
    }
    blocks
}

#[tokio::test]
async fn every_documented_query_runs_and_answers() {
    let markdown =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/queries.md"))
            .unwrap();
    let blocks = sql_blocks(&markdown);
    assert!(blocks.len() >= 6, "{} queries", blocks.len());
    let fixture = lake().await;
    let engine = engine(&fixture);
    for (heading, sql) in blocks {
        let answer = engine
            .run(sql.trim().trim_end_matches(';'))
            .await
            .unwrap_or_else(|e| panic!("{heading}: {e}"));
        assert!(answer.rows() > 0, "{heading}: no rows");
    }
}
