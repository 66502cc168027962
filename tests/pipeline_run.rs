//! `connector-factory run --request examples/...` through the binary, in a fresh clone of a tiny
//! factory repository, offline: the README's first command.

mod support;

use std::path::Path;
use std::process::Command;
use support::repo::BareRepo;

const BRANCH: &str = "connector/tidepool-bookings";

fn run_in(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_connector-factory"))
        .args(["run", "--request", "examples/tidepool-bookings.md"])
        .current_dir(dir)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("FACTORY_LLM_PROVIDER")
        .output()
        .unwrap()
}

#[test]
fn the_example_request_becomes_a_local_branch_and_a_printed_pull_request() {
    let tmp = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let request = std::fs::read(examples.join("tidepool-bookings.md")).unwrap();
    let openapi = std::fs::read(examples.join("tidepool-bookings.openapi.yaml")).unwrap();
    let upstream = BareRepo::factory(
        tmp.path(),
        &[("examples/tidepool-bookings.md", &request), ("examples/tidepool-bookings.openapi.yaml", &openapi)],
    );
    let clone_dir = tmp.path().join("clone");
    let clone = git2::Repository::clone(&upstream.url(), &clone_dir).unwrap();
    let main_before = clone.refname_to_id("refs/heads/main").unwrap();

    let out = run_in(&clone_dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("# Add Tidepool Bookings connector"), "{stdout}");
    assert!(stdout.contains("### Spec tests: ✅ passed"), "{stdout}");
    assert!(stdout.contains("Closes #1"), "{stdout}");
    assert!(stdout.contains("✅ Pull request ready"), "{stdout}");
    assert!(stderr.contains("every local check passed"), "{stderr}");

    // The bot's commit on a local branch, touching only the connector folder; main untouched.
    let clone = git2::Repository::open(&clone_dir).unwrap();
    assert_eq!(clone.refname_to_id("refs/heads/main").unwrap(), main_before);
    let tip = clone.find_commit(clone.refname_to_id(&format!("refs/heads/{BRANCH}")).unwrap()).unwrap();
    assert_eq!(tip.parent_id(0).unwrap(), main_before);
    assert_eq!(String::from_utf8_lossy(tip.author().name_bytes()), "connector-factory[bot]");
    let diff = clone
        .diff_tree_to_tree(Some(&tip.parent(0).unwrap().tree().unwrap()), Some(&tip.tree().unwrap()), None)
        .unwrap();
    let paths: Vec<String> =
        diff.deltas().map(|d| d.new_file().path().unwrap().to_string_lossy().into_owned()).collect();
    assert!(!paths.is_empty() && paths.iter().all(|p| p.starts_with("registry/tidepool-bookings/")), "{paths:?}");
    assert_eq!(clone.head().unwrap().shorthand().unwrap(), "main", "the checkout is left alone");
    assert!(!clone_dir.join("registry/tidepool-bookings").exists(), "the working tree is left alone");

    let pr_file = clone_dir.join(".factory/run/pull-request-2.md");
    let pr = std::fs::read_to_string(&pr_file).unwrap();
    assert!(pr.starts_with("# Add Tidepool Bookings connector"), "{pr}");
    assert!(pr.contains("connector/tidepool-bookings → main, labels: connector, bot"), "{pr}");

    // A second run finds its comment and PR again and has nothing new to commit.
    let again = run_in(&clone_dir);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert_eq!(again.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&again.stderr));
    assert!(stdout.contains("── pull request #2"), "{stdout}");
    assert!(stdout.contains("attempt 2"), "{stdout}");
    assert_eq!(clone.refname_to_id(&format!("refs/heads/{BRANCH}")).unwrap(), tip.id());
    assert!(!clone_dir.join(".factory/run/pull-request-3.md").exists());
    assert!(!clone_dir.join(".factory/run/comment-2.md").exists(), "the status comment was edited, not posted again");
}
