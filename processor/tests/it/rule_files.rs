//! Rule loading: the built-in set, and refusals with file, line and reason.

use processor::rules::{self, Overrides};

#[tokio::test]
async fn builtin_rules_all_load() {
    let loaded = rules::load(None, true, &Overrides::new()).await;
    let errors: Vec<String> = loaded.rejected.iter().map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(loaded.rules.len(), rules::builtin().len());
    assert_eq!(loaded.rules.len(), 18);
}
