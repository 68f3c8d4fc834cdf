//! The interactive shell of the `blossom` binary, driven through a pseudo-terminal:
//! prompts, multi-line statements, backslash commands, errors that leave the shell
//! running, Ctrl-C, `\q` and the history file.

use std::path::Path;

use rexpect::process::WaitStatus;
use rexpect::session::{PtySession, spawn_command};

use crate::common::blossom_command;

/// How long any one expectation may wait: generous, for slow and busy machines.
const TIMEOUT_MS: u64 = 60_000;

/// `blossom --simulate` in a terminal, run from the crate root with `home` as its
/// home directory and no provider settings inherited from the environment.
fn shell(home: &Path) -> PtySession {
    let mut command = blossom_command(&["--simulate", "--sim-latency-ms", "0"]);
    command
        .env("HOME", home)
        .env("TERM", "xterm")
        .env("NO_COLOR", "1");
    spawn_command(command, Some(TIMEOUT_MS)).expect("blossom starts in a terminal")
}

#[test]
fn interactive_shell_runs_statements_and_commands_until_quit() {
    let home = tempfile::tempdir().expect("temporary home");
    let mut p = shell(home.path());

    p.exp_string("\\? for help, \\q to quit.")
        .expect("the banner");
    p.exp_string("blossom> ").expect("the prompt");

    // A statement over two lines: the continuation prompt, then the answer.
    p.send_line("SELECT sentiment(text) AS s").expect("send");
    p.exp_string("     -> ").expect("the continuation prompt");
    p.send_line("FROM 'data/reviews.csv' WHERE id = 3;")
        .expect("send");
    p.exp_string("POSITIVE").expect("the sentiment of review 3");
    p.exp_string("blossom> ").expect("the prompt again");

    // A function's documentation.
    p.send_line("\\h sentiment").expect("send");
    p.exp_string("Classifies the sentiment of the text")
        .expect("the description of sentiment");
    p.exp_string("blossom> ").expect("the prompt again");

    // Tables, after creating one.
    p.send_line("CREATE TABLE t AS VALUES (1);").expect("send");
    p.exp_string("blossom> ").expect("the prompt again");
    p.send_line("\\d").expect("send");
    p.exp_regex(r"\|\s*public\s*\|\s*t\s*\|")
        .expect("table t in the list");
    p.exp_string("blossom> ").expect("the prompt again");

    // A failing statement: the error, then the shell still answers.
    p.send_line("SELECT * FROM no_such_table;").expect("send");
    p.exp_string("Error: ").expect("the error");
    p.exp_string("blossom> ")
        .expect("the prompt after the error");
    p.send_line("SELECT 6 * 7 AS product;").expect("send");
    p.exp_regex(r"\|\s*42\s*\|")
        .expect("the answer after the error");
    p.exp_string("blossom> ").expect("the prompt again");

    // Ctrl-C drops an unfinished statement.
    p.send_line("SELECT 1 +").expect("send");
    p.exp_string("     -> ").expect("the continuation prompt");
    p.send_control('c').expect("send Ctrl-C");
    p.exp_string("blossom> ")
        .expect("a fresh prompt after Ctrl-C");

    // Another output format for the rest of the session.
    p.send_line("\\format csv").expect("send");
    p.exp_string("blossom> ").expect("the prompt again");
    p.send_line("SELECT 40 + 2 AS answer, 'csv' AS kind;")
        .expect("send");
    p.exp_string("answer,kind").expect("the CSV header");
    p.exp_string("42,csv").expect("the CSV row");
    p.exp_string("blossom> ").expect("the prompt again");

    p.send_line("\\q").expect("send");
    p.exp_eof().expect("the shell ends");
    match p.process().wait().expect("blossom exits") {
        WaitStatus::Exited(_, code) => assert_eq!(code, 0, "exit status"),
        other => panic!("blossom did not exit normally: {other:?}"),
    }

    let history = std::fs::read_to_string(home.path().join(".blossom_history"))
        .expect("the history file is written");
    assert!(
        history.contains("WHERE id = 3;"),
        "the multi-line statement is in the history: {history}"
    );
    assert!(history.contains("\\format csv"), "{history}");
}
