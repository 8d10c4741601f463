//! How a `--command` string becomes the container's arguments.
//!
//! `podrun run -c` splits it like a shell splits words. pod-runner's own
//! invocation reads it as pod-runner did: its template put the string inside
//! `args: [...]`, so its users wrote the items of a YAML flow sequence
//! (`sh, -c, echo hi; exit 3` or `'sh', '-c', 'echo hi'`). Here the items are
//! read on their own, never pasted into a pod: anything but a flat list of
//! plain or quoted scalars is an error.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// Why a command string gives no arguments.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A quote is not closed, or the string ends in a backslash.
    #[error("--command {0:?} has an unclosed quote or a trailing backslash")]
    Unclosed(String),
    /// Not the items of a flow sequence of plain or quoted scalars.
    #[error(
        "--command {command:?} is not a list of arguments as pod-runner read it \
         (items separated by commas, each plain or quoted): {why}"
    )]
    NotFlowItems {
        /// The command as given.
        command: String,
        /// What was found instead.
        why: String,
    },
}

/// `command` split like a shell splits words: quotes group, `#` at the
/// start of a word begins a comment, nothing is expanded.
pub fn shell_words(command: &str) -> Result<Vec<String>, CommandError> {
    shlex::split(command).ok_or_else(|| CommandError::Unclosed(command.to_string()))
}

/// `command` read as the items of a YAML flow sequence, as pod-runner's
/// `args: [{{ .Container.Arguments }}]` read it.
pub fn flow_items(command: &str) -> Result<Vec<String>, CommandError> {
    let refuse = |why: String| CommandError::NotFlowItems {
        command: command.to_string(),
        why,
    };
    let text = format!("[{command}]");
    let mut parser = Parser::new_from_str(&text);
    let mut next = || match parser.next_token() {
        Ok((event, _)) => Ok(event),
        Err(e) => Err(refuse(e.info().to_string())),
    };
    let expect = |wanted: &Event, next: &mut dyn FnMut() -> Result<Event, CommandError>| {
        let event = next()?;
        if &event == wanted {
            Ok(())
        } else {
            Err(refuse(format!(
                "{} where the list should end",
                what(&event)
            )))
        }
    };
    expect(&Event::StreamStart, &mut next)?;
    expect(&Event::DocumentStart, &mut next)?;
    match next()? {
        Event::SequenceStart(0, None) => {}
        other => return Err(refuse(format!("{} at the start", what(&other)))),
    }
    let mut items = Vec::new();
    loop {
        match next()? {
            Event::SequenceEnd => break,
            Event::Scalar(value, style, 0, None) => items.push(scalar(value, style)),
            other => return Err(refuse(format!("{} in the list", what(&other)))),
        }
    }
    expect(&Event::DocumentEnd, &mut next)?;
    expect(&Event::StreamEnd, &mut next)?;
    Ok(items)
}

/// An item as Kubernetes got it from pod-runner's pod: a plain null is an
/// empty string; every other scalar is its text.
fn scalar(value: String, style: TScalarStyle) -> String {
    let null = matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL");
    if style == TScalarStyle::Plain && null {
        String::new()
    } else {
        value
    }
}

fn what(event: &Event) -> String {
    match event {
        Event::SequenceStart(..) => "a nested list".into(),
        Event::MappingStart(..) => "a `key: value` pair".into(),
        Event::Alias(_) => "an alias (*name)".into(),
        Event::Scalar(_, _, anchor, _) if *anchor != 0 => "an anchor (&name)".into(),
        Event::Scalar(_, _, _, Some(tag)) => format!("a tag ({}{})", tag.handle, tag.suffix),
        Event::Scalar(value, ..) => format!("more text ({value:?})"),
        Event::DocumentStart | Event::DocumentEnd => "a second document".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(command: &str) -> Vec<String> {
        flow_items(command).unwrap_or_else(|e| panic!("{command}: {e}"))
    }

    #[test]
    fn pod_runner_commands_give_its_arguments() {
        let cases: [(&str, &[&str]); 9] = [
            ("sh, -c, echo hi; exit 3", &["sh", "-c", "echo hi; exit 3"]),
            ("'sh', '-c', 'echo hi'", &["sh", "-c", "echo hi"]),
            (r#""sh", "-c", "echo \"hi\"""#, &["sh", "-c", "echo \"hi\""]),
            ("echo", &["echo"]),
            ("sleep, 5", &["sleep", "5"]),
            ("ls, -l, /tmp,", &["ls", "-l", "/tmp"]),
            ("echo, 'it''s'", &["echo", "it's"]),
            ("echo, a#b", &["echo", "a#b"]),
            ("", &[]),
        ];
        for (command, expected) in cases {
            assert_eq!(items(command), expected, "{command}");
        }
    }

    #[test]
    fn anything_but_flat_items_is_refused() {
        for command in [
            "a], [b",
            "a]\n---\n[b",
            "a, [b]",
            "a, {b: c}",
            "a: b",
            "&x a, *x",
            "!!binary aGk=",
            "a, 'unclosed",
            "a]\nhostNetwork: true\nx: [b",
            "echo, hi #there",
        ] {
            assert!(
                flow_items(command).is_err(),
                "{command:?} gave {:?}",
                flow_items(command)
            );
        }
    }

    #[test]
    fn shell_words_group_quotes() {
        assert_eq!(
            shell_words("sh -c 'echo hi; exit 3'").unwrap(),
            ["sh", "-c", "echo hi; exit 3"]
        );
        assert!(shell_words("echo 'open").is_err());
    }
}
