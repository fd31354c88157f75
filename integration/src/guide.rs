//! Runs a Markdown guide as written: its `sh` blocks in order, in one bash session (so a
//! variable one step sets is there for the next), each step's output (stdout and stderr)
//! compared with the `text` block right after it, if any.
//!
//! Every line of an expected block must appear in the step's output, in order, each
//! within one output line; `…` in an expected line stands for anything. A step whose
//! expected output has a `Code:` line (grpcurl's error form) or a `Failed to` line (a
//! connection grpcurl could not make) must fail; every other step must succeed.

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{Context, Result, bail};

/// One command block of a guide and what it must print.
#[derive(Clone, Debug)]
pub struct Step {
    /// The line of the guide the block starts on.
    pub line: usize,
    pub script: String,
    pub expected: Vec<String>,
}

impl Step {
    fn must_fail(&self) -> bool {
        self.expected
            .iter()
            .any(|line| line.starts_with("Code:") || line.starts_with("Failed to"))
    }
}

/// A step as it ran.
#[derive(Debug)]
pub struct Ran {
    pub step: Step,
    pub status: i32,
    pub output: String,
}

impl Ran {
    /// What is wrong with this step's run, if anything.
    pub fn mismatch(&self) -> Option<String> {
        let failed = self.status != 0;
        if failed != self.step.must_fail() {
            let wanted = if failed { "succeed" } else { "fail" };
            return Some(format!(
                "the step at line {} was to {wanted} (exit status {}):\n{}\n--- it printed:\n{}",
                self.step.line, self.status, self.step.script, self.output
            ));
        }
        let lines: Vec<&str> = self.output.lines().collect();
        let mut from = 0;
        for expected in &self.step.expected {
            match lines[from..]
                .iter()
                .position(|line| matches(expected, line))
            {
                Some(at) => from += at + 1,
                None => {
                    return Some(format!(
                        "the step at line {} did not print {expected:?} (in order):\n{}\n--- it printed:\n{}",
                        self.step.line, self.step.script, self.output
                    ));
                }
            }
        }
        None
    }
}

/// Whether output `line` shows `expected`: its pieces between `…` in order.
fn matches(expected: &str, line: &str) -> bool {
    let mut rest = line;
    for piece in expected.split('…').map(str::trim).filter(|p| !p.is_empty()) {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// The `sh` blocks of `markdown`, each with the `text` block after it (if the next block
/// is one).
pub fn steps(markdown: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut block: Option<(String, usize, Vec<String>)> = None;
    // Whether the last block closed was a command, still waiting for its output block.
    let mut waiting = false;
    for (number, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut block, fence) {
            (None, Some(info)) => block = Some((info.trim().to_owned(), number + 1, Vec::new())),
            (Some(_), Some(_)) => {
                let (info, start, lines) = block.take().unwrap_or_default();
                match info.as_str() {
                    "sh" => {
                        steps.push(Step {
                            line: start,
                            script: lines.join("\n"),
                            expected: Vec::new(),
                        });
                        waiting = true;
                        continue;
                    }
                    "text" if waiting => {
                        if let Some(step) = steps.last_mut() {
                            step.expected = lines
                                .into_iter()
                                .map(|l| l.trim().to_owned())
                                .filter(|l| !l.is_empty())
                                .collect();
                        }
                    }
                    _ => {}
                }
                waiting = false;
            }
            (Some((_, _, lines)), None) => lines.push(line.to_owned()),
            (None, None) => {}
        }
    }
    steps
}

/// Runs `steps` in order in one `bash` session in `dir`, with `env` added, within
/// `timeout` in all.
pub async fn run(
    steps: &[Step],
    dir: &Path,
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<Vec<Ran>> {
    const MARK: &str = "@@stowage-guide-step";
    let mut script = String::from("exec 2>&1\n");
    for (i, step) in steps.iter().enumerate() {
        script.push_str(&format!(
            "printf '\\n{MARK} {i} start@@\\n'\n{{\n{}\n}} </dev/null\nprintf '\\n{MARK} {i} %d@@\\n' \"$?\"\n",
            step.script
        ));
    }
    let path = dir.join("guide.sh");
    std::fs::write(&path, script)?;
    let mut command = tokio::process::Command::new("bash");
    command
        .arg("--noprofile")
        .arg("--norc")
        .arg(&path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .context("the guide did not finish in time")??;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut ran = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let start = format!("{MARK} {i} start@@\n");
        let Some(begin) = text.find(&start) else {
            bail!(
                "the guide stopped before the step at line {}:\n{text}",
                step.line
            );
        };
        let body = &text[begin + start.len()..];
        let end_mark = format!("\n{MARK} {i} ");
        let end = body
            .find(&end_mark)
            .with_context(|| format!("the step at line {} did not end:\n{body}", step.line))?;
        let status = body[end + end_mark.len()..]
            .split("@@")
            .next()
            .and_then(|s| s.parse().ok())
            .context("a step's exit status")?;
        ran.push(Ran {
            step: step.clone(),
            status,
            output: body[..end].to_owned(),
        });
    }
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_blocks_pair_with_the_output_block_after_them() {
        let guide = "# t\n```sh\necho a\n```\nOutput:\n```text\na\n```\n```toml\nx = 1\n```\n```sh\nfalse\n```\n```text\nCode: NotFound\n```\n";
        let steps = steps(guide);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].script, "echo a");
        assert_eq!(steps[0].expected, vec!["a"]);
        assert!(!steps[0].must_fail());
        assert!(steps[1].must_fail());
    }

    #[test]
    fn an_expected_line_matches_its_pieces_in_order() {
        assert!(matches("\"id\": …", "  \"id\": \"0199\","));
        assert!(matches(
            "Message: … reason",
            "  Message: the reason is required"
        ));
        assert!(!matches("b … a", "a b"));
    }
}
