//! The interactive shell of `blossom`, in the datafusion-cli tradition: a `blossom> `
//! prompt, statements that may span lines and run once they end with `;`, history in
//! `~/.blossom_history`, and backslash commands (`\?` lists them). Ctrl-C cancels the
//! current input or the running statement, Ctrl-D on an empty input quits.

use std::path::PathBuf;

use clap::ValueEnum;
use datafusion::logical_expr::Documentation;
use datafusion::prelude::SessionContext;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use tokio::runtime::{Handle, RuntimeFlavor};

use super::args::{OutputFormat, PrintOptions};
use super::error::{CliError, EXIT_LIMIT};
use super::run::{Run, run_sql};
use super::signal::{EXIT_INTERRUPTED, EXIT_TERMINATED};
use crate::redact::redact_sql;

/// The prompt for a new statement.
const PROMPT: &str = "blossom> ";
/// The prompt for the next line of an unfinished statement.
const CONTINUATION: &str = "     -> ";
/// The history file, in the home directory.
const HISTORY_FILE: &str = ".blossom_history";

/// What `\?` prints.
const HELP: &str = "\
\\q              quit
\\?              this help
\\d              list the tables
\\d NAME         describe table NAME
\\h              list the AI functions
\\h NAME         describe function NAME
\\format FORMAT  print results as table, csv, json or ndjson
\\quiet on|off   hide or show progress, summaries and notices

SQL statements end with ';' and may span lines.
Ctrl-C cancels the current input or the running statement; Ctrl-D quits.";

/// Runs the interactive shell until `\q` or end of input, statement by statement
/// through [`run_sql`] with a session-local copy of `options` that `\format` and
/// `\quiet` change. A failing statement prints `Error: <message>` on stderr and the
/// shell goes on; a statement exceeding a limit of the run (exit code 3) ends it with
/// that error.
pub async fn run(
    ctx: &SessionContext,
    options: &PrintOptions,
    run: &mut Run,
) -> Result<(), CliError> {
    let mut editor = DefaultEditor::new()
        .map_err(|e| CliError::query(format!("cannot start the interactive shell: {e}")))?;
    let history = history_path();
    if let Some(path) = &history {
        // A missing or unreadable history is no reason not to start.
        let _ = editor.load_history(path);
    }
    if !options.quiet {
        println!(
            "blossom {} — SQL with LLM functions. \\? for help, \\q to quit.",
            env!("CARGO_PKG_VERSION")
        );
    }
    let mut shell = Shell {
        ctx,
        options: *options,
        run,
    };
    let result = shell.read_eval_print(&mut editor).await;
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    result
}

/// `~/.blossom_history`, when there is a home directory.
fn history_path() -> Option<PathBuf> {
    std::env::home_dir()
        .filter(|home| !home.as_os_str().is_empty())
        .map(|home| home.join(HISTORY_FILE))
}

/// One shell session: the SQL session, the print options as changed so far, the run.
struct Shell<'a> {
    ctx: &'a SessionContext,
    options: PrintOptions,
    run: &'a mut Run,
}

/// Whether the shell goes on after a command.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

impl Shell<'_> {
    /// Reads lines until `\q` or end of input, running each complete statement.
    async fn read_eval_print(&mut self, editor: &mut DefaultEditor) -> Result<(), CliError> {
        let mut buffer = String::new();
        loop {
            let prompt = if buffer.is_empty() {
                PROMPT
            } else {
                CONTINUATION
            };
            match read_line(editor, prompt) {
                Ok(line) if line.trim_start().starts_with('\\') => {
                    let _ = editor.add_history_entry(line.trim());
                    if self.command(parse_command(&line)).await? == Flow::Quit {
                        return Ok(());
                    }
                }
                Ok(line) => {
                    if buffer.is_empty() && line.trim().is_empty() {
                        continue;
                    }
                    if !buffer.is_empty() {
                        buffer.push('\n');
                    }
                    buffer.push_str(&line);
                    if is_complete(&buffer) {
                        let sql = std::mem::take(&mut buffer);
                        // A key set with SQL never reaches the history file.
                        let _ = editor.add_history_entry(redact_sql(sql.trim()).as_ref());
                        self.execute(&sql).await?;
                    }
                }
                // Ctrl-C: drop what was typed so far, keep the shell.
                Err(ReadlineError::Interrupted) => buffer.clear(),
                // Ctrl-D: quit on an empty input, drop an unfinished statement otherwise.
                Err(ReadlineError::Eof) if buffer.is_empty() => return Ok(()),
                Err(ReadlineError::Eof) => buffer.clear(),
                Err(ReadlineError::Signal(_)) => {}
                Err(e) => return Err(CliError::query(format!("cannot read input: {e}"))),
            }
        }
    }

    /// Runs SQL through [`run_sql`], until done or Ctrl-C. Errors are printed, except
    /// an exceeded limit, which ends the shell.
    async fn execute(&mut self, sql: &str) -> Result<(), CliError> {
        let mut stdout = std::io::stdout();
        // run_sql hears Ctrl-C: it cancels a statement (a streaming one stops reading
        // first, then finishes or abandons as blossom.on_interrupt says).
        let result = run_sql(self.ctx, sql, &self.options, &mut stdout, self.run).await;
        match result {
            Err(e) if e.code == EXIT_INTERRUPTED => {
                eprintln!("^C: statement cancelled");
                Ok(())
            }
            // SIGTERM ends the shell.
            Err(e) if e.code == EXIT_LIMIT || e.code == EXIT_TERMINATED => Err(e),
            Err(e) => {
                eprintln!("Error: {e}");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Carries out a backslash command.
    async fn command(&mut self, command: Command) -> Result<Flow, CliError> {
        match command {
            Command::Quit => return Ok(Flow::Quit),
            Command::Help => println!("{HELP}"),
            Command::ListTables => self.execute("SHOW TABLES").await?,
            Command::Describe(table) => self.execute(&format!("DESCRIBE {table}")).await?,
            Command::ListFunctions => println!("{}", function_list()),
            Command::FunctionHelp(name) => match self.function_help(&name) {
                Ok(text) => println!("{text}"),
                Err(message) => eprintln!("Error: {message}"),
            },
            Command::Format(None) => println!("format: {}", format_name(self.options.format)),
            Command::Format(Some(value)) => match OutputFormat::from_str(&value, true) {
                Ok(format) => self.options.format = format,
                Err(_) => {
                    eprintln!("Error: unknown format '{value}': use table, csv, json or ndjson")
                }
            },
            Command::Quiet(None) => println!("quiet: {}", on_off(self.options.quiet)),
            Command::Quiet(Some(value)) => match parse_on_off(&value) {
                Some(quiet) => self.options.quiet = quiet,
                None => eprintln!("Error: \\quiet takes on or off, not '{value}'"),
            },
            Command::Unknown(command) => {
                eprintln!("Error: unknown command {command}: \\? lists the commands")
            }
        }
        Ok(Flow::Continue)
    }

    /// The description, syntax, arguments and example of a function of the session
    /// (an AI function, or any other with documentation).
    fn function_help(&self, name: &str) -> Result<String, String> {
        let state = self.ctx.state();
        let key = name.to_lowercase();
        let documentation = if let Some(f) = state.scalar_functions().get(&key) {
            f.documentation().cloned()
        } else if let Some(f) = state.aggregate_functions().get(&key) {
            f.documentation().cloned()
        } else if let Some(f) = state.window_functions().get(&key) {
            f.documentation().cloned()
        } else {
            return Err(format!(
                "no function named '{name}': \\h lists the AI functions"
            ));
        };
        documentation
            .map(|doc| describe(&doc))
            .ok_or_else(|| format!("function '{name}' has no documentation"))
    }
}

/// Reads one line, off the async runtime's worker when it has others.
fn read_line(editor: &mut DefaultEditor, prompt: &str) -> Result<String, ReadlineError> {
    let multi_threaded = Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi_threaded {
        tokio::task::block_in_place(|| editor.readline(prompt))
    } else {
        editor.readline(prompt)
    }
}

/// A backslash command, as typed.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    /// `\q`
    Quit,
    /// `\?`
    Help,
    /// `\d`
    ListTables,
    /// `\d NAME`
    Describe(String),
    /// `\h`
    ListFunctions,
    /// `\h NAME`
    FunctionHelp(String),
    /// `\format [FORMAT]`
    Format(Option<String>),
    /// `\quiet [on|off]`
    Quiet(Option<String>),
    /// Anything else.
    Unknown(String),
}

/// Parses a line starting with `\` (a trailing `;` is tolerated).
fn parse_command(line: &str) -> Command {
    let line = line.trim().trim_end_matches(';').trim_end();
    let (name, argument) = match line.split_once(char::is_whitespace) {
        Some((name, argument)) => (name, Some(argument.trim().to_string())),
        None => (line, None),
    };
    match (name, argument) {
        ("\\q" | "\\quit", None) => Command::Quit,
        ("\\?" | "\\help", None) => Command::Help,
        ("\\d", None) => Command::ListTables,
        ("\\d", Some(table)) => Command::Describe(table),
        ("\\h", None) => Command::ListFunctions,
        ("\\h", Some(function)) => Command::FunctionHelp(function),
        ("\\format", argument) => Command::Format(argument),
        ("\\quiet", argument) => Command::Quiet(argument),
        _ => Command::Unknown(line.to_string()),
    }
}

/// Whether `sql` ends with `;` outside quotes and comments, so it can run.
fn is_complete(sql: &str) -> bool {
    #[derive(PartialEq)]
    enum State {
        Code,
        Quoted(char),
        LineComment,
        BlockComment,
    }
    let mut state = State::Code;
    let mut last = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            State::Code => match c {
                '\'' | '"' | '`' => {
                    state = State::Quoted(c);
                    last = Some(c);
                }
                '-' if chars.peek() == Some(&'-') => state = State::LineComment,
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    state = State::BlockComment;
                }
                c if !c.is_whitespace() => last = Some(c),
                _ => {}
            },
            State::Quoted(quote) if c == quote => state = State::Code,
            State::LineComment if c == '\n' => state = State::Code,
            State::BlockComment if c == '*' && chars.peek() == Some(&'/') => {
                chars.next();
                state = State::Code;
            }
            _ => {}
        }
    }
    matches!(state, State::Code | State::LineComment) && last == Some(';')
}

/// The AI functions, one a line: syntax and the first sentence of the description.
fn function_list() -> String {
    let functions = crate::functions::all();
    let rows: Vec<(String, String)> = functions
        .iter()
        .map(|f| {
            let doc = f.documentation();
            (doc.syntax_example.clone(), first_sentence(&doc.description))
        })
        .collect();
    let width = rows
        .iter()
        .map(|(syntax, _)| syntax.len())
        .max()
        .unwrap_or(0);
    let mut text = String::from("AI functions (\\h NAME for details):");
    for (syntax, summary) in rows {
        text.push_str(&format!("\n  {syntax:width$}  {summary}"));
    }
    text
}

/// A function's documentation, for the terminal.
fn describe(doc: &Documentation) -> String {
    let mut text = format!("{}\n\n{}", doc.syntax_example, doc.description);
    if let Some(arguments) = doc.arguments.as_ref().filter(|a| !a.is_empty()) {
        text.push_str("\n\nArguments:");
        for (name, description) in arguments {
            text.push_str(&format!("\n  {name}: {description}"));
        }
    }
    if let Some(example) = &doc.sql_example {
        // Examples are Markdown code blocks; the fences are noise here.
        let lines: Vec<&str> = example
            .lines()
            .filter(|line| !line.trim_start().starts_with("```"))
            .collect();
        text.push_str("\n\nExample:\n");
        text.push_str(&lines.join("\n"));
    }
    text
}

/// The text up to and including its first `. `, or all of it.
fn first_sentence(text: &str) -> String {
    match text.find(". ") {
        Some(end) => text[..=end].to_string(),
        None => text.to_string(),
    }
}

/// The name `--format` takes for `format`.
fn format_name(format: OutputFormat) -> String {
    format
        .to_possible_value()
        .map_or_else(|| format!("{format:?}"), |v| v.get_name().to_string())
}

fn on_off(value: bool) -> &'static str {
    if value { "on" } else { "off" }
}

fn parse_on_off(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_complete_at_a_semicolon_outside_quotes_and_comments() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1\nFROM t ;  "));
        assert!(is_complete("SELECT 1; -- done"));
        assert!(is_complete("SELECT 'it''s';"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT 'a;"));
        assert!(!is_complete("SELECT \"a;"));
        assert!(!is_complete("SELECT 1 -- ;"));
        assert!(!is_complete("SELECT 1 /* ; */"));
        assert!(is_complete("SELECT 1 /* ; */;"));
        assert!(!is_complete(""));
    }

    #[test]
    fn backslash_commands_parse() {
        assert_eq!(parse_command("\\q"), Command::Quit);
        assert_eq!(parse_command("  \\q;  "), Command::Quit);
        assert_eq!(parse_command("\\?"), Command::Help);
        assert_eq!(parse_command("\\d"), Command::ListTables);
        assert_eq!(
            parse_command("\\d  reviews ;"),
            Command::Describe("reviews".into())
        );
        assert_eq!(parse_command("\\h"), Command::ListFunctions);
        assert_eq!(
            parse_command("\\h sentiment"),
            Command::FunctionHelp("sentiment".into())
        );
        assert_eq!(
            parse_command("\\format csv"),
            Command::Format(Some("csv".into()))
        );
        assert_eq!(parse_command("\\format"), Command::Format(None));
        assert_eq!(
            parse_command("\\quiet off"),
            Command::Quiet(Some("off".into()))
        );
        assert_eq!(parse_command("\\x"), Command::Unknown("\\x".into()));
        assert_eq!(parse_command("\\q now"), Command::Unknown("\\q now".into()));
    }

    #[test]
    fn function_list_names_every_ai_function_in_one_line_each() {
        let list = function_list();
        for f in crate::functions::all() {
            let line = list
                .lines()
                .find(|line| line.trim_start().starts_with(f.name()))
                .unwrap_or_else(|| panic!("{} is listed", f.name()));
            assert!(line.ends_with('.'), "{line}");
        }
        assert_eq!(list.lines().count(), crate::functions::all().len() + 1);
    }

    #[test]
    fn descriptions_show_syntax_arguments_and_an_unfenced_example() {
        let sentiment = crate::functions::all()
            .into_iter()
            .find(|f| f.name() == "sentiment")
            .expect("sentiment exists");
        let text = describe(sentiment.documentation());
        assert!(text.starts_with("sentiment(text)\n\nClassifies"), "{text}");
        assert!(text.contains("Arguments:\n  text: "), "{text}");
        assert!(text.contains("Example:\n> SELECT sentiment("), "{text}");
        assert!(!text.contains("```"), "{text}");
    }

    #[test]
    fn settings_parse() {
        assert_eq!(parse_on_off("ON"), Some(true));
        assert_eq!(parse_on_off("off"), Some(false));
        assert_eq!(parse_on_off("maybe"), None);
        assert_eq!(format_name(OutputFormat::Ndjson), "ndjson");
        assert_eq!(first_sentence("One. Two."), "One.");
        assert_eq!(first_sentence("Only one"), "Only one");
    }
}
