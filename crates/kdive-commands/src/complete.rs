//! Tab completion of a command line: the command word from the table, then options and
//! operands by the command's [`Operand`] kind (symbols, struct names and `name.member` paths,
//! pids and task names). The words are gathered once per session into a [`Completer`] that
//! owns them, so the line editor can hold it while the session runs commands.

use std::sync::Arc;

use kdive_symbols::{c_member_names, TypeClass, TypeInfo, Types};

use crate::registry::{self, Operand};
use crate::session::Session;

/// Most candidates offered for one word (a bare Tab on a symbol would list 100,000).
const MAX_CANDIDATES: usize = 500;
/// Deepest `a.b.c` member path completed.
const MAX_PATH_DEPTH: usize = 8;

/// What completion can offer, gathered from a session.
#[derive(Clone)]
pub struct Completer {
    /// Sorted, unique: vmlinux and module symbols.
    symbols: Arc<Vec<String>>,
    /// Sorted, unique: struct, union and typedef names.
    type_names: Arc<Vec<String>>,
    /// Sorted, unique: pids and task names.
    tasks: Arc<Vec<String>>,
    types: Types,
}

impl Completer {
    /// Gathers symbols, struct/union/typedef names and tasks from the session.
    pub fn new(session: &Session<'_>) -> Completer {
        let kernel = session.kernel();
        let mut symbols: Vec<String> = kernel
            .vmlinux()
            .symbols()
            .iter()
            .map(|s| s.name.to_owned())
            .collect();
        for loaded in &session.modules().modules {
            symbols.extend(loaded.module.kallsyms.iter().map(|s| s.name.clone()));
        }
        let mut tasks: Vec<String> = Vec::new();
        for task in &session.tasks().tasks {
            tasks.push(task.pid.to_string());
            tasks.push(task.comm.clone());
        }
        // Listed as C spells them (`struct list_head`); typed after `struct`, or bare as crash
        // takes them, so completed without the keyword.
        let type_names = kernel
            .types()
            .type_names()
            .unwrap_or_default()
            .into_iter()
            .map(|n| {
                n.strip_prefix("struct ")
                    .or_else(|| n.strip_prefix("union "))
                    .map_or(n.clone(), str::to_owned)
            })
            .collect();
        Completer::from_parts(symbols, type_names, tasks, kernel.types().clone())
    }

    /// A completer over the given words (tests, and callers with their own lists).
    pub fn from_parts(
        mut symbols: Vec<String>,
        mut type_names: Vec<String>,
        mut tasks: Vec<String>,
        types: Types,
    ) -> Completer {
        for list in [&mut symbols, &mut type_names, &mut tasks] {
            list.retain(|w| !w.is_empty());
            list.sort_unstable();
            list.dedup();
        }
        Completer {
            symbols: Arc::new(symbols),
            type_names: Arc::new(type_names),
            tasks: Arc::new(tasks),
            types,
        }
    }

    /// Completions of the word that ends at `pos` in `line`: where that word starts, and the
    /// candidates that replace it.
    pub fn complete(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let head = line.get(..pos).unwrap_or(line);
        // A pipe or redirection hands the rest to the shell.
        if head.contains('|') || head.replace("->", "").contains('>') {
            return (pos, Vec::new());
        }
        let start = head
            .rfind(|c: char| c.is_whitespace() || matches!(c, '(' | '*' | '&' | ','))
            .map_or(0, |i| i + 1);
        let word = head.get(start..).unwrap_or_default();
        let before: Vec<&str> = head
            .get(..start)
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let Some(first) = before.first() else {
            return (start, prefixed(registry::command_names(), word));
        };
        let name = first.split('/').next().unwrap_or_default();
        let operands = match registry::find(name) {
            Some(spec) => {
                if word.starts_with('-') {
                    return (start, prefixed(spec.options.iter().copied(), word));
                }
                spec.operands
            }
            // crash runs a bare struct name as `struct NAME`.
            None if self.type_names.binary_search(&name.to_owned()).is_ok() => Operand::Symbol,
            None => return (start, Vec::new()),
        };
        let candidates = match operands {
            Operand::None => Vec::new(),
            Operand::Command => prefixed(registry::command_names(), word),
            Operand::Symbol => sorted_prefixed(&self.symbols, word),
            Operand::Task => sorted_prefixed(&self.tasks, word),
            Operand::Type => match word.split_once('.') {
                Some(_) => self.member_paths(word),
                None => sorted_prefixed(&self.type_names, word),
            },
            Operand::Expression => match word.rfind(['.', '>']) {
                Some(_) => Vec::new(),
                None => sorted_prefixed(&self.symbols, word),
            },
        };
        (start, candidates)
    }

    /// `task_struct.se.vr` → `task_struct.se.vruntime`, ...
    fn member_paths(&self, word: &str) -> Vec<String> {
        let mut parts: Vec<&str> = word.split('.').collect();
        let Some(last) = parts.pop() else {
            return Vec::new();
        };
        let Some((type_name, path)) = parts.split_first() else {
            return Vec::new();
        };
        if path.len() > MAX_PATH_DEPTH {
            return Vec::new();
        }
        let names = if path.is_empty() {
            c_member_names(&self.types, type_name)
        } else {
            let Ok(member) = self.types.member(type_name, &path.join(".")) else {
                return Vec::new();
            };
            match (member.ty.class, member.ty.tag.as_deref()) {
                (TypeClass::Struct | TypeClass::Union, Some(tag)) => {
                    let keyword = if member.ty.class == TypeClass::Union {
                        "union"
                    } else {
                        "struct"
                    };
                    c_member_names(&self.types, &format!("{keyword} {tag}"))
                }
                _ => return Vec::new(),
            }
        };
        let Ok(names) = names else {
            return Vec::new();
        };
        let stem = word.get(..word.len() - last.len()).unwrap_or_default();
        let mut out: Vec<String> = names
            .iter()
            .filter(|name| !name.is_empty() && name.starts_with(last))
            .map(|name| format!("{stem}{name}"))
            .take(MAX_CANDIDATES)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

fn prefixed<'a>(words: impl IntoIterator<Item = &'a str>, prefix: &str) -> Vec<String> {
    words
        .into_iter()
        .filter(|w| w.starts_with(prefix))
        .take(MAX_CANDIDATES)
        .map(str::to_owned)
        .collect()
}

/// The words of a sorted list that start with `prefix`, found by binary search.
fn sorted_prefixed(sorted: &[String], prefix: &str) -> Vec<String> {
    let first = sorted.partition_point(|w| w.as_str() < prefix);
    sorted
        .get(first..)
        .unwrap_or_default()
        .iter()
        .take_while(|w| w.starts_with(prefix))
        .take(MAX_CANDIDATES)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completer() -> Completer {
        Completer::from_parts(
            vec![
                "schedule".into(),
                "schedule_timeout".into(),
                "jiffies".into(),
            ],
            vec![
                "task_struct".into(),
                "tasklet_struct".into(),
                "mm_struct".into(),
            ],
            vec!["1".into(), "insmod".into(), "12".into()],
            Types::new(),
        )
    }

    #[test]
    fn completes_commands_options_and_operands() {
        let c = completer();
        assert_eq!(c.complete("sy", 2), (0, vec!["sym".into(), "sys".into()]));
        assert_eq!(
            c.complete("bt -", 4),
            (
                3,
                vec!["-a", "-c", "-f", "-l", "-s"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            )
        );
        assert_eq!(
            c.complete("sym sched", 9),
            (4, vec!["schedule".into(), "schedule_timeout".into()])
        );
        assert_eq!(c.complete("bt 1", 4), (3, vec!["1".into(), "12".into()]));
        assert_eq!(c.complete("help fore", 9), (5, vec!["foreach".into()]));
        assert_eq!(c.complete("ps | gr", 7), (7, vec![]));
        assert_eq!(c.complete("frob x", 6), (5, vec![]));
    }
}
