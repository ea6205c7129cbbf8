//! `task`: a task's `task_struct` and `thread_info` as `struct` prints them (task.c
//! `cmd_task()`, `do_task()`), or with `-R` the named members only, cut out of that print as
//! crash's `parse_task_thread()` does (a member's line and, for a struct, its lines to the
//! closing brace).

use std::io::{self, Write};

use serde::Serialize;

use crate::ps::{named_tasks, task_header, Hex};
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::structs::struct_with;
use crate::typed::{with_session_env, Env, TypedValue};
use crate::CommandError;

const USAGE: &str = "task [-R member[,member]] [-dx] [pid | taskp] ...";

#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    pub pid: i64,
    pub task: Hex,
    pub cpu: u32,
    pub comm: String,
    /// Without `-R`: the whole `task_struct`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_struct: Option<TypedValue>,
    /// Without `-R`: the `thread_info` (inside the task_struct on x86_64), when the kernel
    /// has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_info: Option<TypedValue>,
    /// With `-R`: each member asked for (from task_struct, else thread_info).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<TypedValue>>,
    #[serde(skip)]
    lines: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskRecord {
    pub tasks: Vec<TaskView>,
}

impl TaskRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for t in &self.tasks {
            writeln!(out, "{}", task_header(t.pid, t.task, t.cpu, &t.comm))?;
            for line in &t.lines {
                writeln!(out, "{line}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

/// `task`'s arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskArgs {
    /// `-R` members (and bare member names), in order.
    pub members: Vec<String>,
    pub hex: Option<bool>,
    pub tasks: Vec<String>,
}

/// Parses crash's `task` line; a word that is not a number is a member (crash takes words
/// with `,`, `.` or `[` and task_struct member names as `-R` members).
pub fn parse_task(words: &[String]) -> Result<TaskArgs, CommandError> {
    let mut args = TaskArgs::default();
    let mut i = 0;
    while let Some(w) = words.get(i) {
        if let Some(opts) = w.strip_prefix('-').filter(|o| !o.is_empty()) {
            let mut chars = opts.chars();
            while let Some(c) = chars.next() {
                match c {
                    'x' | 'h' | 'd' => {
                        let hex = c != 'd';
                        if args.hex.is_some_and(|h| h != hex) {
                            return Err(SPEC.bad_args("-d and -x are mutually exclusive"));
                        }
                        args.hex = Some(hex);
                    }
                    'R' => {
                        let rest: String = chars.by_ref().collect();
                        let list = if rest.is_empty() {
                            i += 1;
                            words
                                .get(i)
                                .cloned()
                                .ok_or_else(|| SPEC.bad_args("-R needs a member list"))?
                        } else {
                            rest
                        };
                        args.members
                            .extend(list.split(',').filter(|m| !m.is_empty()).map(str::to_owned));
                    }
                    other => {
                        return Err(CommandError::BadOption {
                            command: "task",
                            option: other,
                            usage: USAGE,
                        })
                    }
                }
            }
        } else if w.chars().all(|c| c.is_ascii_hexdigit())
            || w.strip_prefix("0x")
                .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
        {
            args.tasks.push(w.clone());
        } else {
            args.members
                .extend(w.split(',').filter(|m| !m.is_empty()).map(str::to_owned));
        }
        i += 1;
    }
    Ok(args)
}

/// crash's `parse_task_thread()`: from the printed struct `lines`, the line of top-level
/// member `member` (`  member = `; `    member = ` inside a randomized layout's anonymous
/// struct) and, when it opens a struct or array, the lines up to its end.
pub fn cut_member(lines: &[String], member: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut randomized = false;
    let mut until_prefix: Option<String> = None;
    let mut until_contains: Option<&str> = None;
    for line in lines {
        if line == "  {" {
            randomized = true;
        } else if randomized && (line == "  }, " || line == "  },") {
            randomized = false;
        }
        if let Some(end) = &until_prefix {
            out.push(line.clone());
            if line.starts_with(end.as_str()) {
                until_prefix = None;
            }
            continue;
        }
        if let Some(end) = until_contains {
            out.push(line.clone());
            if line.contains(end) {
                until_contains = None;
            }
            continue;
        }
        let pad = if randomized { "  " } else { "" };
        let look = format!("{pad}  {member} = ");
        if line.starts_with(&look) {
            out.push(line.clone());
            if line.ends_with("{{") {
                until_prefix = Some(format!("{pad}    }},"));
            } else if line.ends_with(" = {") {
                let lead = line.len() - line.trim_start_matches(' ').len();
                until_prefix = Some(format!("{}}}", " ".repeat(lead)));
            } else if line.contains('{') {
                until_contains = Some("},");
            }
        }
    }
    out
}

/// The lines and value of `struct NAME ADDR` (with `-x`/`-d`), for `command`'s errors.
pub(crate) fn struct_print(
    env: &Env<'_>,
    command: &'static str,
    name: &str,
    addr: u64,
    hex: Option<bool>,
    warnings: &mut Vec<String>,
) -> Result<(Vec<String>, Option<TypedValue>), CommandError> {
    let mut words = Vec::new();
    match hex {
        Some(true) => words.push("-x".to_owned()),
        Some(false) => words.push("-d".to_owned()),
        None => {}
    }
    words.push(name.to_owned());
    words.push(format!("{addr:x}"));
    let record = struct_with(env, &words, false, warnings)?;
    let mut text = Vec::new();
    record
        .write_text(&mut text)
        .map_err(|e| CommandError::Failed {
            command,
            what: e.to_string(),
        })?;
    let lines = String::from_utf8_lossy(&text)
        .lines()
        .map(str::to_owned)
        .collect();
    let value = record
        .objects
        .into_iter()
        .next()
        .and_then(|o| o.members.into_iter().next());
    Ok((lines, value))
}

fn run(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let args = parse_task(words)?;
    Ok(Box::new(task(session, &args, warnings)?))
}

/// Runs `task` with parsed arguments (also `foreach task`).
pub fn task(
    session: &Session<'_>,
    args: &TaskArgs,
    warnings: &mut Vec<String>,
) -> Result<TaskRecord, CommandError> {
    let kernel = session.kernel();
    let tasks = named_tasks(session, "task", &args.tasks, warnings);
    // crash prints the thread_info after the task_struct wherever task_struct has one.
    let thread_info_off = kernel
        .member("task_struct", "thread_info")
        .ok()
        .filter(|m| m.size > 8)
        .map(|m| m.offset);
    let mut record = TaskRecord { tasks: Vec::new() };
    with_session_env(session, |env| -> Result<(), CommandError> {
        for t in &tasks {
            if session.interrupted() {
                break;
            }
            let mut view = TaskView {
                pid: t.pid,
                task: Hex(t.addr.0),
                cpu: t.cpu,
                comm: t.comm.clone(),
                task_struct: None,
                thread_info: None,
                members: None,
                lines: Vec::new(),
            };
            let (task_lines, task_value) =
                struct_print(env, "task", "task_struct", t.addr.0, args.hex, warnings)?;
            let thread_info = match thread_info_off {
                Some(off) => Some(struct_print(
                    env,
                    "task",
                    "thread_info",
                    t.addr.0.wrapping_add(off),
                    args.hex,
                    warnings,
                )?),
                None => None,
            };
            if args.members.is_empty() {
                view.lines = task_lines;
                view.task_struct = task_value;
                if let Some((lines, value)) = thread_info {
                    view.lines.push(String::new());
                    view.lines.extend(lines);
                    view.thread_info = value;
                }
            } else {
                let mut all = task_lines;
                if let Some((lines, _)) = &thread_info {
                    all.extend(lines.iter().cloned());
                }
                let mut values = Vec::new();
                for member in &args.members {
                    let in_task = kernel.has_member("task_struct", member).unwrap_or(false);
                    let in_ti = thread_info_off.is_some()
                        && kernel.has_member("thread_info", member).unwrap_or(false);
                    if member.contains(['.', '[']) {
                        // crash prints these as `struct task_struct.MEMBER` does.
                        let path = format!("task_struct.{member}");
                        match struct_print(env, "task", &path, t.addr.0, args.hex, warnings) {
                            Ok((lines, value)) => {
                                view.lines.extend(lines);
                                values.extend(value);
                            }
                            Err(err) => warnings.push(err.to_string()),
                        }
                        continue;
                    }
                    if !in_task && !in_ti {
                        warnings.push(format!(
                            "task: {member}: not a task_struct or thread_info member"
                        ));
                        continue;
                    }
                    view.lines.extend(cut_member(&all, member));
                    let (ty, addr) = if in_task {
                        ("task_struct", t.addr.0)
                    } else {
                        (
                            "thread_info",
                            t.addr.0.wrapping_add(thread_info_off.unwrap_or(0)),
                        )
                    };
                    if let Ok((_, Some(v))) = struct_print(
                        env,
                        "task",
                        &format!("{ty}.{member}"),
                        addr,
                        args.hex,
                        warnings,
                    ) {
                        values.push(v);
                    }
                }
                view.members = Some(values);
            }
            record.tasks.push(view);
        }
        Ok(())
    })?;
    Ok(record)
}

crate::impl_record!(TaskRecord);

/// `task`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "task",
    aliases: &[],
    summary: "task_struct and thread_info of a task",
    usage: USAGE,
    description:
        "For the current task, or each task named by pid or task address: the header line,\n\
then its task_struct as `struct task_struct ADDR` prints it, then its thread_info where\n\
task_struct holds one.\n\
  -R MEMBER[,MEMBER...]  only these members (also thread_info's; `se.on_rq` style paths)\n\
  -x, -d                 integers in hex or decimal",
    examples: &[
        "task                 the current (panic) task's task_struct",
        "task -R pid,comm,flags,prio,stack 1   five members of pid 1",
        "task -x -R sched_class 153",
        "foreach task -R comm   one member of every task",
    ],
    options: &["-R", "-x", "-d"],
    operands: Operand::Task,
    schema: 1,
    run,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_owned).collect()
    }

    const PRINT: &str = "struct task_struct {
  thread_info = {
    flags = 2,
    cpu = 1
  },
  __state = 8193,
  stack = 0xffffce8b00010000,
  flags = 4194560,
  {
    prio = 120,
    se = {
      on_rq = 0 '\\000'
    },
  },
  comm = \"init\\000\",
  cpus_mask = {
    bits = {3, 0}
  },
  mm = 0x0
}
struct thread_info {
  flags = 2,
  cpu = 1
}";

    #[test]
    fn cuts_members_as_crash() {
        let all = lines(PRINT);
        assert_eq!(
            cut_member(&all, "flags"),
            ["  flags = 4194560,", "  flags = 2,"]
        );
        assert_eq!(
            cut_member(&all, "thread_info"),
            ["  thread_info = {", "    flags = 2,", "    cpu = 1", "  },"]
        );
        // Members of a randomized layout's anonymous struct are one level deeper.
        assert_eq!(cut_member(&all, "prio"), ["    prio = 120,"]);
        assert_eq!(
            cut_member(&all, "cpus_mask"),
            ["  cpus_mask = {", "    bits = {3, 0}", "  },"]
        );
        assert_eq!(cut_member(&all, "mm"), ["  mm = 0x0"]);
        assert!(cut_member(&all, "nosuch").is_empty());
    }

    #[test]
    fn parses_members_and_tasks() {
        let w = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let a = parse_task(&w("-R pid,comm -x 1 ffff8cb2c1248000 prio")).unwrap();
        assert_eq!(a.members, ["pid", "comm", "prio"]);
        assert_eq!(a.tasks, ["1", "ffff8cb2c1248000"]);
        assert_eq!(a.hex, Some(true));
        assert_eq!(parse_task(&w("-Rstack")).unwrap().members, ["stack"]);
        assert!(parse_task(&w("-x -d")).is_err());
        assert!(parse_task(&w("-R")).is_err());
        assert!(parse_task(&w("-z")).is_err());
    }
}
