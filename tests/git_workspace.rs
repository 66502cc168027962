//! The git stage against real bare repositories: `file://` for the branch rules, and a smart-HTTP
//! server on 127.0.0.1 (git http-backend) for credentials and server-side hooks.

mod support;

use connector_factory::config::Secret;
use connector_factory::git::{BranchStart, GitError, Identity, Rejection, Remote, Workspace};
use connector_factory::platform::GitCredentials;
use std::path::Path;
use support::git_http::GitHttp;
use support::repo::{BareRepo, HUMAN};

const TOKEN: &str = "ghs_T0kenThatMustNeverLeak";

fn bot() -> Identity {
    Identity::github_app("connector-factory", Some(4242))
}

fn seed(dir: &Path) -> BareRepo {
    BareRepo::create(
        dir,
        &[
            ("README.md", b"# factory\n"),
            (".gitignore", b"__pycache__/\n.factory/\n"),
            ("skills/auth/SKILL.md", b"---\nname: auth\ndescription: auth\n---\n"),
            ("registry/_scaffold/meta.json", b"{}\n"),
        ],
    )
}

fn local(bare: &BareRepo) -> Remote {
    Remote { url: bare.url(), credentials: None }
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn open(remote: Remote, branch: &str) -> Workspace {
    Workspace::open(remote, "main", branch, None).unwrap()
}

#[test]
fn a_new_branch_gets_one_bot_commit_touching_only_the_connector_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path());
    let ws = open(local(&bare), "connector/acme");
    assert!(!ws.branch_exists());
    assert!(ws.root().join("skills/auth/SKILL.md").is_file(), "the working tree is the default branch");
    write(ws.root(), "registry/acme/_meta/connector.json", "{\"name\":\"acme\"}\n");
    write(ws.root(), "registry/acme/v1/bot/python/default/main.py", "print('hi')\n");
    write(ws.root(), "registry/acme/v1/bot/python/default/__pycache__/main.cpython-311.pyc", "junk");
    write(ws.root(), "registry/acme/v1/bot/python/default/.factory/transcript.jsonl", "{}");
    // Stray edits elsewhere never reach the commit.
    write(ws.root(), "README.md", "# changed\n");
    write(ws.root(), "registry/other/file.txt", "no\n");

    let committed = ws.commit_connector(Path::new("registry/acme"), "Add acme connector", &bot()).unwrap().unwrap();
    assert_eq!(committed.start, BranchStart::New);
    assert_eq!(
        committed.changed,
        vec!["registry/acme/_meta/connector.json", "registry/acme/v1/bot/python/default/main.py"]
    );
    ws.push(&committed).unwrap();

    assert_eq!(bare.tip("connector/acme").unwrap().to_string(), committed.id);
    let mut changed = bare.changed_by_tip("connector/acme");
    changed.sort();
    assert_eq!(changed, committed.changed);
    assert_eq!(bare.commits_ahead("connector/acme"), vec![(bot().email, "Add acme connector".to_string())]);
    assert_eq!(bare.read("connector/acme", "README.md").unwrap(), "# factory\n");
}

#[test]
fn an_unchanged_folder_makes_no_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path());
    let ws = open(local(&bare), "connector/acme");
    write(ws.root(), "registry/acme/a.txt", "a\n");
    let c = ws.commit_connector(Path::new("registry/acme"), "first", &bot()).unwrap().unwrap();
    ws.push(&c).unwrap();
    drop(ws);

    let again = open(local(&bare), "connector/acme");
    assert!(again.branch_exists());
    write(again.root(), "registry/acme/a.txt", "a\n");
    assert!(again.commit_connector(Path::new("registry/acme"), "same", &bot()).unwrap().is_none());
}

#[test]
fn a_retry_adds_a_commit_on_top_of_the_bots_branch() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path());
    let ws = open(local(&bare), "connector/acme");
    write(ws.root(), "registry/acme/a.txt", "one\n");
    write(ws.root(), "registry/acme/old.txt", "old\n");
    ws.push(&ws.commit_connector(Path::new("registry/acme"), "first", &bot()).unwrap().unwrap()).unwrap();
    drop(ws);

    let ws = open(local(&bare), "connector/acme");
    assert!(!ws.root().join("registry/acme").exists(), "the working tree shows the default branch");
    write(ws.root(), "registry/acme/a.txt", "two\n");
    let c = ws.commit_connector(Path::new("registry/acme"), "second", &bot()).unwrap().unwrap();
    assert_eq!(c.start, BranchStart::OnTop);
    assert_eq!(c.changed, vec!["registry/acme/a.txt", "registry/acme/old.txt"], "old.txt is removed");
    ws.push(&c).unwrap();
    let ahead: Vec<String> = bare.commits_ahead("connector/acme").into_iter().map(|(_, s)| s).collect();
    assert_eq!(ahead, vec!["second", "first"]);
    assert_eq!(bare.read("connector/acme", "registry/acme/a.txt").unwrap(), "two\n");
    assert!(bare.read("connector/acme", "registry/acme/old.txt").is_none());
}

#[test]
fn a_branch_behind_the_default_branch_is_rebuilt_and_force_pushed() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path());
    let ws = open(local(&bare), "connector/acme");
    write(ws.root(), "registry/acme/a.txt", "one\n");
    ws.push(&ws.commit_connector(Path::new("registry/acme"), "first", &bot()).unwrap().unwrap()).unwrap();
    drop(ws);
    bare.commit(
        "main",
        &[("skills/auth/SKILL.md", b"---\nname: auth\ndescription: better\n---\n")],
        &[],
        HUMAN,
        "Better skill",
    );

    let ws = open(local(&bare), "connector/acme");
    write(ws.root(), "registry/acme/a.txt", "two\n");
    let c = ws.commit_connector(Path::new("registry/acme"), "rebuilt", &bot()).unwrap().unwrap();
    assert_eq!(c.start, BranchStart::Rebuild);
    ws.push(&c).unwrap();
    assert_eq!(bare.commits_ahead("connector/acme"), vec![(bot().email, "rebuilt".to_string())]);
    let tip = bare.repo.find_commit(bare.tip("connector/acme").unwrap()).unwrap();
    assert_eq!(tip.parent_id(0).unwrap(), bare.tip("main").unwrap(), "starts from the new default tip");
}

#[test]
fn a_human_commit_on_the_branch_stops_the_bot() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path());
    let ws = open(local(&bare), "connector/acme");
    write(ws.root(), "registry/acme/a.txt", "one\n");
    ws.push(&ws.commit_connector(Path::new("registry/acme"), "first", &bot()).unwrap().unwrap()).unwrap();
    drop(ws);
    bare.commit("connector/acme", &[("registry/acme/a.txt", b"fixed by hand\n")], &[], HUMAN, "Fix the pagination");
    let before = bare.tip("connector/acme");

    let ws = open(local(&bare), "connector/acme");
    let err = ws.ensure_branch_is_ours(&bot()).unwrap_err();
    let GitError::ForeignCommits { commits, .. } = &err else { panic!("{err}") };
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0].author, "Ada Person <ada@example.com>");
    assert_eq!(commits[0].summary, "Fix the pagination");

    write(ws.root(), "registry/acme/a.txt", "regenerated\n");
    let err = ws.commit_connector(Path::new("registry/acme"), "again", &bot()).unwrap_err();
    assert!(matches!(err, GitError::ForeignCommits { .. }), "{err}");
    assert_eq!(bare.tip("connector/acme"), before, "nothing was pushed");
    assert_eq!(bare.read("connector/acme", "registry/acme/a.txt").unwrap(), "fixed by hand\n");
}

#[test]
fn a_branch_that_moved_while_the_bot_worked_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path());
    let ws = open(local(&bare), "connector/acme");
    write(ws.root(), "registry/acme/a.txt", "mine\n");
    let c = ws.commit_connector(Path::new("registry/acme"), "bot", &bot()).unwrap().unwrap();
    // Someone pushes the same branch first.
    bare.commit("connector/acme", &[("registry/acme/a.txt", b"theirs\n")], &[], HUMAN, "theirs");
    let err = ws.push(&c).unwrap_err();
    assert!(matches!(err, GitError::PushRejected { kind: Rejection::NonFastForward, .. }), "{err}");
    assert_eq!(bare.read("connector/acme", "registry/acme/a.txt").unwrap(), "theirs\n");
}

#[test]
fn a_forced_push_needs_the_branch_where_it_was_found() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path());
    let ws = open(local(&bare), "connector/acme");
    write(ws.root(), "registry/acme/a.txt", "one\n");
    ws.push(&ws.commit_connector(Path::new("registry/acme"), "first", &bot()).unwrap().unwrap()).unwrap();
    drop(ws);
    bare.commit("main", &[("README.md", b"# moved on\n")], &[], HUMAN, "Move main");

    let ws = open(local(&bare), "connector/acme");
    write(ws.root(), "registry/acme/a.txt", "two\n");
    let c = ws.commit_connector(Path::new("registry/acme"), "rebuilt", &bot()).unwrap().unwrap();
    assert_eq!(c.start, BranchStart::Rebuild);
    let bot_commit =
        bare.commit("connector/acme", &[("registry/acme/b.txt", b"b\n")], &[], ("x", &bot().email), "raced");
    let err = ws.push(&c).unwrap_err();
    assert!(matches!(err, GitError::PushRejected { kind: Rejection::NonFastForward, .. }), "{err}");
    assert_eq!(bare.tip("connector/acme"), Some(bot_commit));
}

#[cfg(unix)]
#[test]
fn a_symlink_in_the_connector_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path());
    let ws = open(local(&bare), "connector/acme");
    write(ws.root(), "registry/acme/a.txt", "a\n");
    std::os::unix::fs::symlink("/etc/passwd", ws.root().join("registry/acme/leak")).unwrap();
    let err = ws.commit_connector(Path::new("registry/acme"), "x", &bot()).unwrap_err();
    assert!(matches!(err, GitError::Symlink(_)), "{err}");
}

#[test]
fn paths_outside_the_workspace_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path());
    let ws = open(local(&bare), "connector/acme");
    assert!(matches!(ws.commit_connector(Path::new("../x"), "x", &bot()), Err(GitError::BadPath(_))));
    assert!(matches!(ws.commit_connector(Path::new("/etc"), "x", &bot()), Err(GitError::BadPath(_))));
}

#[test]
fn a_missing_default_branch_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path());
    let err = Workspace::open(local(&bare), "trunk", "connector/acme", None).unwrap_err();
    assert!(err.to_string().contains("'trunk'"), "{err}");
}

fn http_remote(server: &GitHttp, token: &str) -> Remote {
    Remote {
        url: server.url("remote.git"),
        credentials: Some(GitCredentials { username: "x-access-token".into(), password: Secret::new(token) }),
    }
}

#[test]
fn over_http_the_token_goes_only_in_the_authorization_header() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path());
    let server = GitHttp::start(tmp.path().to_path_buf(), "x-access-token", TOKEN);
    let ws = Workspace::open(http_remote(&server, TOKEN), "main", "connector/acme", None).unwrap();
    assert!(ws.is_shallow(), "a new branch needs only the default branch's tip");
    write(ws.root(), "registry/acme/a.txt", "a\n");
    let c = ws.commit_connector(Path::new("registry/acme"), "first", &bot()).unwrap().unwrap();
    ws.push(&c).unwrap();
    assert_eq!(bare.tip("connector/acme").unwrap().to_string(), c.id);

    let seen = server.seen();
    assert!(seen.iter().any(|s| s.uri.contains("git-receive-pack") && s.authorization.is_some()));
    for s in &seen {
        assert!(!s.uri.contains(TOKEN), "token in a URL: {}", s.uri);
    }
    let config = std::fs::read_to_string(ws.root().join(".git/config")).unwrap();
    assert!(!config.contains(TOKEN));
}

#[test]
fn a_refused_token_fails_once_without_showing_it() {
    let tmp = tempfile::tempdir().unwrap();
    seed(tmp.path());
    let server = GitHttp::start(tmp.path().to_path_buf(), "x-access-token", TOKEN);
    let wrong = "ghs_WrongTokenAlsoSecret";
    let err = Workspace::open(http_remote(&server, wrong), "main", "connector/acme", None).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(wrong), "{text}");
    assert!(server.seen().len() < 10, "credentials were not retried in a loop: {}", server.seen().len());
}

#[test]
fn a_pre_receive_hook_rejection_is_reported_with_the_servers_words() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path());
    let server = GitHttp::start(tmp.path().to_path_buf(), "x-access-token", TOKEN);
    bare.refuse_pushes("connector branches are frozen for the release");
    let ws = Workspace::open(http_remote(&server, TOKEN), "main", "connector/acme", None).unwrap();
    write(ws.root(), "registry/acme/a.txt", "a\n");
    let c = ws.commit_connector(Path::new("registry/acme"), "first", &bot()).unwrap().unwrap();
    let err = ws.push(&c).unwrap_err();
    let GitError::PushRejected { kind, messages, refname, .. } = &err else { panic!("{err}") };
    assert_eq!(*kind, Rejection::HookDeclined, "{err}");
    assert_eq!(refname, "refs/heads/connector/acme");
    assert!(messages.iter().any(|m| m.contains("frozen for the release")), "{messages:?}");
    assert!(err.to_string().contains("hook declined"), "{err}");
    assert!(bare.tip("connector/acme").is_none());
}
