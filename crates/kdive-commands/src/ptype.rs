//! `ptype`: gdb's ptype of a type name or of an expression's type (`type = struct x {...}`).

use std::io::{self, Write};

use serde::Serialize;

use crate::expr::Eval;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::typed::{ptype, with_session_env, Env};
use crate::CommandError;

pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "ptype",
    aliases: &[],
    summary: "gdb's ptype of a type or an expression",
    usage: "ptype type | expression",
    description:
        "The type written out as gdb's ptype does: typedefs of the base resolved and the\n\
base struct, union or enum with its members.",
    examples: &[
        "ptype struct list_head",
        "ptype pid_t",
        "ptype init_task.sched_class",
    ],
    options: &[],
    operands: Operand::Type,
    schema: 1,
    run: run_ptype,
};

#[derive(Debug, Clone, Serialize)]
pub struct PtypeRecord {
    pub query: String,
    /// gdb's text after `type = `.
    pub text: String,
}

impl PtypeRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "type = {}", self.text)
    }
}

crate::impl_record!(PtypeRecord);

fn run_ptype(
    session: &mut Session<'_>,
    words: &[String],
    _warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    Ok(Box::new(with_session_env(session, |env| {
        ptype_with(env, words)
    })?))
}

pub(crate) fn ptype_with(env: &Env<'_>, words: &[String]) -> Result<PtypeRecord, CommandError> {
    let query = words.join(" ");
    let q = query.trim();
    if q.is_empty() {
        return Err(SPEC.bad_args("nothing to look up"));
    }
    let failed = |what: String| CommandError::Failed {
        command: "ptype",
        what,
    };
    // `struct task_struct *`: the type, then its stars.
    let stars = q.len() - q.trim_end_matches(['*', ' ']).len();
    let (q, pointers) = if stars > 0 && !q.contains(['(', '.', '-', '[']) {
        let base = q.trim_end_matches(['*', ' ']);
        (base, q.get(base.len()..).unwrap_or("").matches('*').count())
    } else {
        (q, 0)
    };
    let plain = q
        .split_whitespace()
        .all(|w| w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    let tagged = ["struct ", "union ", "enum "]
        .iter()
        .any(|k| q.starts_with(k));
    let is_variable = !q.contains(' ') && env.types.c_variable(q).is_ok();
    if plain && !is_variable {
        match env.types.c_type(q) {
            Ok(ty) => {
                let mut text = ptype(env, ty).map_err(failed)?;
                if pointers > 0 {
                    text = format!("{text} {}", "*".repeat(pointers));
                }
                return Ok(PtypeRecord {
                    query: query.clone(),
                    text,
                });
            }
            Err(_) if tagged || pointers > 0 => {
                return Err(failed(format!("no type named `{q}`")));
            }
            Err(_) => {}
        }
    }
    let mut eval = Eval::new(env, q).map_err(|e| failed(e.to_string()))?;
    let v = eval.run().map_err(|e| failed(e.to_string()))?;
    let mut text = ptype(env, v.ty.base).map_err(failed)?;
    if v.ty.pointers > 0 {
        let stars = "*".repeat(v.ty.pointers);
        text = if text.ends_with('*') {
            format!("{text}{stars}")
        } else {
            format!("{text} {stars}")
        };
    }
    Ok(PtypeRecord {
        query: query.clone(),
        text,
    })
}
