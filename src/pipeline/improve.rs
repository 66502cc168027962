//! The improvement PR: what a failure teaches the factory, proposed as a change to `skills/`
//! (one draft PR per failure category, on `factory/improve-<category>`).
//!
//! Without an LLM the proposal is a lesson entry per failed check, appended to the `## Lessons`
//! section of the skill that owns the category, in the format the failure-analysis skill
//! teaches: check id, connector, evidence, a rule to follow, and the connector PR it came from.
//!
//! The branch is always rebuilt the same way: the default branch's skill plus every lesson the
//! PR has collected (kept in the PR body's hidden metadata). So new evidence for an open PR is
//! appended to it, a default branch that moved on is picked up, and running the same proposal
//! twice changes nothing.

use super::analysis::{FailureAnalysis, FailureCategory, Fault};
use super::{Control, PipelineConfig};
use super::generate::blocking;
use crate::agent::improver;
use crate::agent::llm::{LlmConfig, PriceTable};
use crate::git::{GitError, Remote, Workspace};
use crate::github::route::IMPROVEMENT_BRANCH_PREFIX;
use crate::platform::{Platform, PrSpec, PullRequest};
use crate::store::{LedgerEntry, LedgerQuery, LedgerTake, Store};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What marks the factory's improvement PR bodies.
pub const IMPROVEMENT_MARKER: &str = "<!-- factory-improvement:";
pub const IMPROVEMENT_LABEL: &str = "factory-improvement";
/// The ledger kind that rate-limits improvement PR updates.
pub const LEDGER_KIND: &str = "improvement";

/// One thing the factory learned from one failed check of one connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lesson {
    pub check: String,
    /// `<connector>/<version>`.
    pub connector: String,
    pub evidence: String,
    pub rule: String,
    /// The connector PR that showed it.
    pub pull_request: u64,
    pub pull_request_url: String,
}

impl Lesson {
    /// One line for the skill's `## Lessons` section.
    pub fn to_markdown(&self) -> String {
        format!(
            "- `{}` ({}): evidence: {} Rule: {} Seen in [#{}]({}).",
            self.check,
            self.connector,
            sentence(&self.evidence),
            sentence(&self.rule),
            self.pull_request,
            self.pull_request_url
        )
    }

    fn same_as(&self, other: &Lesson) -> bool {
        self.check == other.check && self.connector == other.connector
    }
}

/// What the factory proposes for one failure category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImprovementProposal {
    pub category: String,
    /// `skills/<name>/SKILL.md`.
    pub skill: String,
    pub lessons: Vec<Lesson>,
    /// Every connector PR that motivated it, in order.
    pub motivated_by: Vec<u64>,
    /// Who wrote the last change (the improver agent or the lesson writer).
    #[serde(default)]
    pub written_by: Option<String>,
}

impl ImprovementProposal {
    pub fn branch(&self) -> String {
        format!("{IMPROVEMENT_BRANCH_PREFIX}improve-{}", self.category.replace('_', "-"))
    }

    /// Adds what `other` knows that this does not; `true` when something was new.
    pub fn merge(&mut self, other: &ImprovementProposal) -> bool {
        let mut changed = false;
        for lesson in &other.lessons {
            if !self.lessons.iter().any(|l| l.same_as(lesson)) {
                self.lessons.push(lesson.clone());
                changed = true;
            }
        }
        for pr in &other.motivated_by {
            if !self.motivated_by.contains(pr) {
                self.motivated_by.push(*pr);
                changed = true;
            }
        }
        changed
    }

    pub fn title(&self) -> String {
        format!("factory: lessons for `{}` failures ({})", self.category, self.skill)
    }

    pub fn body(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Connector PRs failed the `{}` spec-test checks in CI. This draft teaches the factory what those failures \
             showed, so the next connector does not fail the same way.\n",
            self.category
        );
        let _ = writeln!(s, "**Changes:** lessons appended to `{}`:\n", self.skill);
        if let Some(by) = &self.written_by {
            let _ = writeln!(s, "_Last change written by {by}._\n");
        }
        for l in &self.lessons {
            let _ = writeln!(s, "{}", l.to_markdown());
        }
        let _ = writeln!(s, "\n**Motivated by:**\n");
        for pr in &self.motivated_by {
            let _ = writeln!(s, "- #{pr}");
        }
        let _ = writeln!(
            s,
            "\nOnly `skills/` changes here. The regression guard workflow runs the spec tests over every connector in \
             the registry on this PR; the factory posts its result below. New evidence for the same category is added \
             to this PR rather than a new one.\n"
        );
        let meta = serde_json::to_string(self).expect("a proposal serializes");
        let _ = write!(s, "{IMPROVEMENT_MARKER}{} -->", meta.replace('<', "\\u003c").replace('>', "\\u003e"));
        s
    }

    /// The proposal kept in an improvement PR's body.
    pub fn parse(body: &str) -> Option<ImprovementProposal> {
        let start = body.find(IMPROVEMENT_MARKER)? + IMPROVEMENT_MARKER.len();
        let end = start + body[start..].find("-->")?;
        serde_json::from_str(body[start..end].trim()).ok()
    }
}

/// The lessons a failure category teaches, one per failed check (each check once).
pub fn proposal_for(cat: &FailureCategory, pull: &PullRequest) -> Option<ImprovementProposal> {
    let skill = cat.skill.clone()?;
    let mut lessons: Vec<Lesson> = Vec::new();
    for c in &cat.checks {
        let lesson = Lesson {
            check: c.id.clone(),
            connector: connector_of(&c.implementation).unwrap_or_else(|| pull.head.trim_start_matches("connector/").to_string()),
            // From CI output: token shapes masked before it reaches a skill or a PR.
            evidence: crate::agent::transcript::Redactor::token_shapes()
                .text(c.evidence.first().unwrap_or(&c.message)),
            rule: match (cat.fault, &cat.scaffold_file) {
                (Fault::Runtime, Some(file)) => {
                    format!("{} The runtime itself failed this with no hooks involved: fix `{file}` in the scaffold.", c.hint)
                }
                _ => c.hint.clone(),
            },
            pull_request: pull.number,
            pull_request_url: pull.url.clone(),
        };
        if !lessons.iter().any(|l| l.same_as(&lesson)) {
            lessons.push(lesson);
        }
    }
    (!lessons.is_empty()).then(|| ImprovementProposal {
        category: cat.name.clone(),
        skill,
        lessons,
        motivated_by: vec![pull.number],
        written_by: None,
    })
}

/// `registry/<connector>/<version>/...` → `<connector>/<version>`.
fn connector_of(implementation: &str) -> Option<String> {
    let mut parts = implementation.trim_start_matches("./").split('/');
    (parts.next()? == "registry").then_some(())?;
    let (connector, version) = (parts.next()?, parts.next()?);
    Some(format!("{connector}/{version}"))
}

/// The skill text with the lessons in its `## Lessons` section (added at the end when the
/// skill has none), leaving out lessons whose check and connector it already names.
pub fn with_lessons(skill: &str, lessons: &[Lesson]) -> String {
    let padded;
    let (before, section, after) = match lessons_bounds(skill) {
        Some((start, _, end)) => (&skill[..start], &skill[start + 1..end], &skill[end..]),
        None => {
            padded = format!("{}\n", skill.trim_end());
            (padded.as_str(), "## Lessons\n", "")
        }
    };
    let mut lines: Vec<String> = section
        .lines()
        .filter(|l| !l.trim().eq_ignore_ascii_case("no lessons recorded yet."))
        .map(str::to_string)
        .collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    for lesson in lessons {
        let prefix = format!("- `{}` ({})", lesson.check, lesson.connector);
        if !lines.iter().any(|l| l.starts_with(&prefix)) {
            lines.push(lesson.to_markdown());
        }
    }
    format!("{before}\n{}\n{after}", lines.join("\n")).trim_end().to_string() + "\n"
}

/// What happened to one category's proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Proposed {
    Opened { category: String, pull: u64, url: String },
    Updated { category: String, pull: u64, url: String },
    /// The open PR already has this evidence.
    Unchanged { category: String, pull: u64, url: String },
    RateLimited { category: String, limit: u32 },
    /// Someone else committed to the improvement branch; it is theirs now.
    BranchNotOurs { category: String, branch: String },
    Failed { category: String, error: String },
}

impl Proposed {
    /// One line for the analysis comment.
    pub fn describe(&self) -> String {
        match self {
            Proposed::Opened { category, url, .. } => format!("`{category}`: opened the improvement PR {url}"),
            Proposed::Updated { category, url, .. } => format!("`{category}`: added this evidence to {url}"),
            Proposed::Unchanged { category, url, .. } => format!("`{category}`: {url} already has this evidence"),
            Proposed::RateLimited { category, limit } => format!(
                "`{category}`: no improvement PR change, the limit of {limit} per day is reached (the analysis above \
                 still holds)"
            ),
            Proposed::BranchNotOurs { category, branch } => {
                format!("`{category}`: `{branch}` has commits by someone else, so the factory left it alone")
            }
            Proposed::Failed { category, error } => format!("`{category}`: proposing failed: {error}"),
        }
    }
}

/// Opens or updates the improvement PR of every category the analysis maps to a skill.
pub async fn propose_all(
    platform: &dyn Platform,
    store: &dyn Store,
    cfg: &PipelineConfig,
    ctl: &Control,
    analysis: &FailureAnalysis,
    connector_pull: &PullRequest,
) -> Vec<Proposed> {
    let mut out = Vec::new();
    // The connector session's transcript, from the PR body's folded block, for the improver.
    let transcript = match platform.issue_body(connector_pull.number).await {
        Ok(body) => transcript_excerpt(&body),
        Err(_) => None,
    };
    for cat in &analysis.categories {
        if ctl.check().is_err() {
            break;
        }
        let Some(proposal) = proposal_for(cat, connector_pull) else { continue };
        let one = FailureAnalysis { source: analysis.source, categories: vec![cat.clone()], log_excerpt: None };
        let text = one.to_markdown(&format!("{}#checks", connector_pull.url));
        let done = match propose(platform, store, cfg, &proposal, &text, transcript.as_deref()).await {
            Ok(p) => p,
            Err(e) => Proposed::Failed { category: cat.name.clone(), error: format!("{e:#}") },
        };
        out.push(done);
    }
    out
}

async fn propose(
    platform: &dyn Platform,
    store: &dyn Store,
    cfg: &PipelineConfig,
    proposal: &ImprovementProposal,
    analysis_text: &str,
    transcript: Option<&str>,
) -> Result<Proposed> {
    let category = proposal.category.clone();
    let branch = proposal.branch();
    let existing = platform.find_pull_by_head(&branch).await?.filter(|p| p.state == "open");
    let mut merged = proposal.clone();
    if let Some(pull) = &existing {
        let body = platform.issue_body(pull.number).await?;
        if let Some(mut before) = ImprovementProposal::parse(&body) {
            if !before.merge(proposal) {
                return Ok(Proposed::Unchanged { category, pull: pull.number, url: pull.url.clone() });
            }
            merged = before;
        }
    }

    let limit = cfg.learning.improvements_per_day;
    let query = LedgerQuery {
        repository: platform.repository(),
        kind: LEDGER_KIND.into(),
        subject: None,
        since: Some(chrono::Utc::now() - chrono::Duration::hours(24)),
    };
    let ids: Vec<&str> = proposal.lessons.iter().map(|l| l.check.as_str()).collect();
    let entry = LedgerEntry {
        subject: category.clone(),
        key: format!("{category}:{}:{}", proposal.motivated_by.first().copied().unwrap_or(0), ids.join(",")),
        note: serde_json::json!({ "branch": branch, "checks": ids }),
    };
    if let LedgerTake::LimitReached(_) = store.ledger_take(&query, limit, &entry).await? {
        return Ok(Proposed::RateLimited { category, limit });
    }

    let default_branch = platform.default_branch().await?;
    let remote = Remote { url: platform.remote_url().await?, credentials: platform.git_credentials().await? };
    let parent = cfg.workspace_parent.clone();
    let identity = cfg.identity.clone();
    let wanted = branch.clone();
    let opened = blocking(move || {
        let ws = Workspace::open(remote, &default_branch, &wanted, parent.as_deref())?;
        let ours = ws.ensure_branch_is_ours(&identity);
        Ok((ws, ours))
    })
    .await?;
    let ws = match opened {
        (ws, Ok(())) => ws,
        (_, Err(GitError::ForeignCommits { branch, .. })) => return Ok(Proposed::BranchNotOurs { category, branch }),
        (_, Err(e)) => return Err(e.into()),
    };
    let skill_rel = PathBuf::from(&merged.skill);
    let folder = skill_rel.parent().unwrap_or(Path::new("skills")).to_path_buf();
    let file = ws.root().join(&skill_rel);

    let llm = LlmConfig::from_settings(&cfg.llm);
    let mut author = "the factory's lesson writer (no LLM configured)".to_string();
    if let (Some(llm), Some(skill)) = (&llm, skill_name(&skill_rel)) {
        {
            // Go on from the branch's version, so earlier rounds' edits are kept.
            if ws.branch_has_default()? {
                ws.restore_from_branch(&folder)?;
            }
            let data = improver_data(proposal, analysis_text, transcript);
            let prices = PriceTable::from_env().unwrap_or_default();
            match improver::run(ws.root(), &skill, &data, llm, &cfg.budgets, &prices).await {
                Ok(done) if matches!(done.outcome, crate::agent::Outcome::Succeeded { .. }) => {
                    author = format!(
                        "the improver agent ({}; {} tokens in, {} out)",
                        llm.model, done.report.usage.input_tokens, done.report.usage.output_tokens
                    );
                }
                Ok(done) => {
                    tracing::warn!(%category, "the improver did not finish ({}); writing the lessons itself", done.outcome);
                    restore_or_reset(&ws, &folder)?;
                    author = format!("the factory's lesson writer (the improver agent ended: {})", done.outcome);
                }
                Err(e) => {
                    tracing::warn!(%category, "the improver could not run ({e:#}); writing the lessons itself");
                    restore_or_reset(&ws, &folder)?;
                    author = format!("the factory's lesson writer (the improver agent could not run: {e:#})");
                }
            }
        }
    }
    // Every lesson is in the skill whoever wrote it: what an agent left out is added as is.
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", skill_rel.display()))?;
    let missing: Vec<Lesson> = merged.lessons.iter().filter(|l| !lessons_section(&text).contains(&format!("`{}`", l.check))).cloned().collect();
    std::fs::write(&file, with_lessons(&text, &missing))?;

    let message = format!(
        "{}\n\nLessons from connector PR(s) {}, written by {author}.",
        merged.title(),
        merged.motivated_by.iter().map(|n| format!("#{n}")).collect::<Vec<_>>().join(", ")
    );
    let identity = cfg.identity.clone();
    let pushed = blocking(move || match ws.commit_connector(&folder, &message, &identity) {
        Ok(Some(c)) => Ok(ws.push(&c)),
        Ok(None) => Ok(Ok(())),
        Err(e) => Ok(Err(e)),
    })
    .await?;
    match pushed {
        Ok(()) => {}
        Err(GitError::ForeignCommits { branch, .. }) => return Ok(Proposed::BranchNotOurs { category, branch }),
        Err(e) => return Err(e.into()),
    }
    merged.written_by = Some(author);

    let body = merged.body();
    let labels = vec![IMPROVEMENT_LABEL.to_string()];
    match existing {
        Some(pull) => {
            platform.update_pull(pull.number, &merged.title(), &body).await?;
            platform.add_labels(pull.number, &labels).await?;
            Ok(Proposed::Updated { category, pull: pull.number, url: pull.url })
        }
        None => {
            let spec = PrSpec {
                branch: branch.clone(),
                base: platform.default_branch().await?,
                title: merged.title(),
                body,
                labels: labels.clone(),
                draft: true,
            };
            let pull = platform.create_pull(&spec).await?;
            platform.add_labels(pull.number, &labels).await?;
            Ok(Proposed::Opened { category, pull: pull.number, url: pull.url })
        }
    }
}

/// `skills/<name>/SKILL.md` → `<name>`.
fn skill_name(rel: &Path) -> Option<String> {
    let mut parts = rel.iter().map(|p| p.to_string_lossy().into_owned());
    (parts.next()? == "skills").then_some(())?;
    let name = parts.next()?;
    (parts.next()? == "SKILL.md" && parts.next().is_none()).then_some(name)
}

/// Where a skill's `## Lessons` section is: the newline before its heading, the start of its
/// body, and its end (the next `## ` heading or the end of the text).
fn lessons_bounds(text: &str) -> Option<(usize, usize, usize)> {
    let start = text.find("\n## Lessons")?;
    let body = start + "\n## Lessons".len();
    let end = text[body..].find("\n## ").map(|e| body + e).unwrap_or(text.len());
    Some((start, body, end))
}

/// The text of a skill's `## Lessons` section (empty without one).
fn lessons_section(text: &str) -> &str {
    lessons_bounds(text).map(|(_, body, end)| &text[body..end]).unwrap_or("")
}

/// After a failed improver session: the branch's version again (or the default branch's).
fn restore_or_reset(ws: &Workspace, folder: &Path) -> Result<()> {
    if !(ws.branch_has_default()? && ws.restore_from_branch(folder)?) {
        ws.restore_from_default(folder)?;
    }
    Ok(())
}

/// The transcript's `<details>` block in a connector PR body, cut to a size an improver can read.
fn transcript_excerpt(body: &str) -> Option<String> {
    let start = body.find("<details>")?;
    let end = body[start..].find("</details>").map(|e| start + e + "</details>".len()).unwrap_or(body.len());
    Some(crate::agent::transcript::trim_middle(&body[start..end], 12_000))
}

/// What the improver is given: the category's analysis, the lessons, the transcript excerpt.
fn improver_data(proposal: &ImprovementProposal, analysis: &str, transcript: Option<&str>) -> String {
    let mut s = format!("## Failure analysis (category `{}`)\n\n{analysis}\n\n## Lessons derived\n\n", proposal.category);
    for l in &proposal.lessons {
        let _ = writeln!(s, "{}", l.to_markdown());
    }
    if let Some(t) = transcript {
        let _ = write!(s, "\n## Excerpt of the connector session's transcript\n\n{t}\n");
    }
    s
}

/// Ends a piece of text as a sentence, on one line.
fn sentence(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let one = one.replace('`', "'");
    if one.ends_with(['.', '!', '?']) { one } else { format!("{one}.") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lesson(check: &str, connector: &str, pr: u64) -> Lesson {
        Lesson {
            check: check.into(),
            connector: connector.into(),
            evidence: "mock saw 7 requests for 4 pages".into(),
            rule: "Declare has_more_path".into(),
            pull_request: pr,
            pull_request_url: format!("https://github.com/acme/f/pull/{pr}"),
        }
    }

    #[test]
    fn lessons_replace_the_placeholder_and_keep_the_next_section() {
        let skill = "# P\n\n## Lessons\nNo lessons recorded yet.\n\n## After\ntext\n";
        let out = with_lessons(skill, &[lesson("pagination.all_pages", "acme/v1", 3)]);
        assert!(!out.contains("No lessons recorded yet."), "{out}");
        assert!(out.contains("- `pagination.all_pages` (acme/v1): evidence: mock saw 7 requests for 4 pages. Rule: Declare has_more_path. Seen in [#3]"), "{out}");
        assert!(out.contains("\n## After\ntext\n"), "{out}");
        // Once more: nothing doubles.
        assert_eq!(with_lessons(&out, &[lesson("pagination.all_pages", "acme/v1", 3)]), out);
        // Another connector is new evidence.
        let two = with_lessons(&out, &[lesson("pagination.all_pages", "zeta/v1", 4)]);
        assert_eq!(two.matches("- `pagination.all_pages`").count(), 2);
    }

    #[test]
    fn a_skill_without_a_lessons_section_gets_one() {
        let out = with_lessons("# Auth\nbody\n", &[lesson("auth.credentials_sent", "acme/v1", 3)]);
        assert!(out.starts_with("# Auth\nbody\n\n## Lessons\n- `auth.credentials_sent`"), "{out}");
    }

    #[test]
    fn the_proposal_survives_the_pr_body_and_merges_new_evidence_once() {
        let p = ImprovementProposal {
            category: "rate_limit".into(),
            skill: "skills/api-connector-spec/SKILL.md".into(),
            lessons: vec![lesson("rate_limit.rps_respected", "acme/v1", 3)],
            motivated_by: vec![3],
            written_by: None,
        };
        assert_eq!(p.branch(), "factory/improve-rate-limit");
        let body = p.body();
        let mut back = ImprovementProposal::parse(&body).expect("metadata");
        assert_eq!(back, p);
        let mut second = p.clone();
        second.lessons = vec![lesson("rate_limit.rps_respected", "zeta/v2", 9)];
        second.motivated_by = vec![9];
        assert!(back.merge(&second));
        assert!(!back.merge(&second), "the same evidence twice is no change");
        assert_eq!(back.motivated_by, vec![3, 9]);
        assert_eq!(back.lessons.len(), 2);
    }

    #[test]
    fn evidence_from_ci_output_is_masked_before_it_becomes_a_lesson() {
        use crate::pipeline::analysis::{FailedCheck, FailureCategory};
        let cat = FailureCategory {
            name: "auth".into(),
            checks: vec![FailedCheck {
                id: "auth.credentials_sent".into(),
                implementation: "registry/acme/v1/connector-factory/python/default".into(),
                message: "no credential".into(),
                hint: "Declare auth.type".into(),
                evidence: vec!["GET /v1/items Authorization: Bearer ghp_abcdefghijklmnopqrstuvwxyz0123456789".into()],
            }],
            skill: Some("skills/auth/SKILL.md".into()),
            scaffold_file: None,
            fault: Fault::Connector,
            cause: String::new(),
            fix: String::new(),
        };
        let pull = PullRequest { number: 4, url: "u".into(), head: "connector/acme".into(), state: "open".into(), draft: false };
        let p = proposal_for(&cat, &pull).unwrap();
        let line = p.lessons[0].to_markdown();
        assert!(line.contains("GET /v1/items") && !line.contains("ghp_abcdef"), "{line}");
    }

    #[test]
    fn connector_and_version_come_from_the_implementation_path() {
        assert_eq!(connector_of("registry/acme/v2/connector-factory/python/default").as_deref(), Some("acme/v2"));
        assert_eq!(connector_of("elsewhere/acme"), None);
    }
}
