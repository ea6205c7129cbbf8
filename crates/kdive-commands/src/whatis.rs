//! `whatis`: a type's layout (struct, union, typedef, enum) or the declaration of a symbol,
//! as crash 8 prints them; for an expression, gdb's `whatis` (its type's name).

use std::io::{self, Write};

use kdive_kernel::symbols::CType;
use serde::Serialize;

use crate::expr::{vtype_name, Eval};
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::typed::{
    composite_body, composite_head, declaration, ptype_decl, with_session_env, Env,
};
use crate::CommandError;

pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "whatis",
    aliases: &[],
    summary: "a type's definition, or a symbol's type",
    usage: "whatis struct | union | typedef | enum | symbol | expression",
    description: "A struct or union: its members and SIZE. A typedef: what it names and SIZE.\n\
An enum: its enumerators and values. A symbol: its declaration (`volatile unsigned long\n\
jiffies;`). Another expression: the name of its type.",
    examples: &[
        "whatis task_struct",
        "whatis pid_t",
        "whatis enum pid_type",
        "whatis jiffies",
        "whatis init_task.comm",
    ],
    options: &[],
    operands: Operand::Type,
    schema: 1,
    run: run_whatis,
};

#[derive(Debug, Clone, Serialize)]
pub struct WhatisRecord {
    pub query: String,
    /// What was found: `struct`, `union`, `typedef`, `enum`, `symbol`, `expression`.
    pub kind: &'static str,
    /// The type's name, or the symbol's declaration.
    pub declaration: String,
    pub size: Option<u64>,
    /// crash's text.
    pub text: String,
}

impl WhatisRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", self.text)
    }
}

crate::impl_record!(WhatisRecord);

fn run_whatis(
    session: &mut Session<'_>,
    words: &[String],
    _warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    Ok(Box::new(with_session_env(session, |env| {
        whatis_with(env, words)
    })?))
}

pub(crate) fn whatis_with(env: &Env<'_>, words: &[String]) -> Result<WhatisRecord, CommandError> {
    let query = words.join(" ");
    if query.trim().is_empty() {
        return Err(SPEC.bad_args("nothing to look up"));
    }
    let failed = |what: String| CommandError::Failed {
        command: "whatis",
        what,
    };
    let q = query.trim();
    let is_word = q
        .split_whitespace()
        .all(|w| w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if is_word {
        if let Ok(ty) = env.types.c_type(q) {
            let explicit_enum = q.starts_with("enum ");
            let node = env.node(ty).map_err(failed)?;
            let size = env.sizeof(ty).ok();
            match node {
                CType::Struct(c) => {
                    let head = composite_head(&c);
                    let body = composite_body(env, &c, &head).map_err(failed)?;
                    return Ok(WhatisRecord {
                        query: query.clone(),
                        kind: if c.union { "union" } else { "struct" },
                        declaration: head,
                        size: Some(c.size),
                        text: format!("{body}\nSIZE: {}", c.size),
                    });
                }
                CType::Typedef { name, target } => {
                    let decl = ptype_decl(env, target, &name).map_err(failed)?;
                    let text = format!("typedef {decl};\nSIZE: {}", size.unwrap_or(0));
                    return Ok(WhatisRecord {
                        query: query.clone(),
                        kind: "typedef",
                        declaration: decl,
                        size,
                        text,
                    });
                }
                CType::Enum {
                    tag, enumerators, ..
                } if explicit_enum || tag.is_some() => {
                    let head = format!("enum {}", tag.unwrap_or_default());
                    let mut text = format!("{head} {{\n");
                    for (name, value) in &enumerators {
                        text.push_str(&format!("  {name} = {value}\n"));
                    }
                    text.push_str("};");
                    return Ok(WhatisRecord {
                        query: query.clone(),
                        kind: "enum",
                        declaration: head,
                        size,
                        text,
                    });
                }
                // crash shows a base type's size alone.
                CType::Base { size, .. } => {
                    return Ok(WhatisRecord {
                        query: query.clone(),
                        kind: "base",
                        declaration: q.to_string(),
                        size: Some(size),
                        text: format!("SIZE: {size}"),
                    });
                }
                _ => {}
            }
        } else if ["struct ", "union ", "enum "]
            .iter()
            .any(|k| q.starts_with(k))
        {
            return Err(failed(format!("no type named `{q}`")));
        }
        if !q.contains(' ') {
            if let Ok(ty) = env.types.c_variable(q) {
                let decl = declaration(env, ty, q).map_err(failed)?;
                return Ok(WhatisRecord {
                    query: query.clone(),
                    kind: "symbol",
                    declaration: decl.clone(),
                    size: env.sizeof(ty).ok(),
                    text: format!("{decl};"),
                });
            }
        }
    }
    let mut eval = Eval::new(env, q).map_err(|e| failed(e.to_string()))?;
    let v = eval.run().map_err(|e| failed(e.to_string()))?;
    let name = vtype_name(env, v.ty).map_err(failed)?;
    Ok(WhatisRecord {
        query: query.clone(),
        kind: "expression",
        declaration: name.clone(),
        size: None,
        text: name,
    })
}
