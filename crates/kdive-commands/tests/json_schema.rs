//! docs/json.md holds every command's JSON schema; these tests hold the output to it.
//!
//! Each command has a block in docs/json.md:
//!
//! ````text
//! ```schema ps 1
//! run: ps
//! run: ps -t
//! command: string
//! tasks[].pid: integer
//! tasks[].parents: array|null
//! ```
//! ````
//!
//! The first line names the command and its schema version (the registry's); `run:` lines are
//! command lines run on a lab dump (`{task}` stands for the panic task's address, `{stack}` for
//! an address in its kernel stack, `{jiffies}` for the address of `jiffies`, `{free}` for a
//! page in a free buddy block, `{mm}` for pid 1's `mm_struct`, `{inode}` for the inode of
//! pid 1's executable, which has pages in the page cache); the other lines are every JSON path the output may have
//! with its types (`[]` steps into arrays). The lab test runs the lines on every kernel's
//! null-init kdump dump and checks that every path and type printed is documented and that every
//! documented path was printed. `KDIVE_JSON_SCHEMA_UPDATE=1` prints the observed blocks.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kdive_commands::{Session, COMMANDS};
use kdive_testkit::lab::{self, lab_root, manifests};
use serde_json::Value;

/// One documented command.
struct Block {
    schema: u32,
    runs: Vec<String>,
    /// path → allowed types.
    paths: BTreeMap<String, BTreeSet<String>>,
    /// path → the one architecture that prints it (`path: types (aarch64)`).
    arch_only: BTreeMap<String, String>,
}

fn docs() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/json.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn blocks(text: &str) -> BTreeMap<String, Block> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(head) = line.strip_prefix("```schema ") else {
            continue;
        };
        let mut words = head.split_whitespace();
        let name = words.next().expect("a command name").to_owned();
        let schema = words
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no schema version"));
        let mut block = Block {
            schema,
            runs: Vec::new(),
            paths: BTreeMap::new(),
            arch_only: BTreeMap::new(),
        };
        for line in lines.by_ref() {
            if line.starts_with("```") {
                break;
            }
            if let Some(run) = line.strip_prefix("run: ") {
                block.runs.push(run.to_owned());
            } else if let Some((path, types)) = line.split_once(": ") {
                let types = match types.split_once(" (") {
                    Some((types, arch)) => {
                        let arch = arch.strip_suffix(')').expect("`(arch)` closes");
                        block.arch_only.insert(path.to_owned(), arch.to_owned());
                        types
                    }
                    None => types,
                };
                block.paths.insert(
                    path.to_owned(),
                    types.split('|').map(str::to_owned).collect(),
                );
            }
        }
        assert!(out.insert(name.clone(), block).is_none(), "{name} twice");
    }
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A typed value (`{"type": "struct task_struct", "value": ...}`, with `name` for a member):
/// recursive, so documented once in docs/json.md and listed as the type `value`.
fn is_typed_value(v: &Value) -> bool {
    v.get("type").is_some_and(Value::is_string) && v.get("value").is_some()
}

/// Every path of `v` with the types seen there.
fn flatten(v: &Value, path: &str, out: &mut BTreeMap<String, BTreeSet<String>>) {
    if !path.is_empty() {
        let kind = if is_typed_value(v) { "value" } else { kind(v) };
        out.entry(path.to_owned())
            .or_default()
            .insert(kind.to_owned());
        if is_typed_value(v) {
            return;
        }
    }
    match v {
        Value::Object(map) => {
            for (key, value) in map {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(value, &sub, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                flatten(item, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_command_is_documented_with_its_schema_version() {
    let documented = blocks(&docs());
    for spec in COMMANDS {
        let block = documented
            .get(spec.name)
            .unwrap_or_else(|| panic!("docs/json.md has no ```schema {} block", spec.name));
        assert_eq!(block.schema, spec.schema, "{}: schema version", spec.name);
        assert!(!block.runs.is_empty(), "{}: no run: line", spec.name);
        for key in ["command", "schema"] {
            assert!(block.paths.contains_key(key), "{}: {key}", spec.name);
        }
    }
    for name in documented.keys() {
        assert!(
            COMMANDS.iter().any(|s| s.name == name),
            "docs/json.md documents {name}, which is no command"
        );
    }
}

/// The direct-map address of the second page of the first free block of order 1 or more
/// that `kmem -f` lists.
fn free_page(session: &mut Session<'_>, kernel: &kdive_kernel::Kernel) -> u64 {
    let free = session.execute("kmem -f").expect("kmem -f").to_json();
    let head = free["free_areas"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|z| z["free_lists"].as_array().into_iter().flatten())
        .find(|l| l["order"].as_u64() > Some(0) && l["blocks"].as_u64() > Some(0))
        .and_then(|l| lab::json_hex(&l["free_area_struct"]))
        .expect("a free block of order 1 or more");
    let lru = kernel
        .read_u64(kdive_kernel::VirtAddr(head), "free_list")
        .expect("free_list.next");
    let page = lru - kernel.offset_of("page", "lru").expect("page.lru");
    let vmemmap = match kernel.address_space().vmemmap_base() {
        Some(base) => base,
        None => kernel
            .read_symbol_u64("vmemmap_base")
            .expect("vmemmap_base"),
    };
    let pfn = (page - vmemmap) / kernel.struct_size("page").expect("sizeof(page)") + 1;
    kernel
        .address_space()
        .direct_map_virt(kdive_dump::PhysAddr(pfn * kernel.page_size()))
        .expect("a direct-map address")
        .0
}

#[test]
fn lab_output_matches_the_documented_schema() {
    let root = lab_root();
    let all = manifests(&root);
    let dumps: Vec<Value> = lab::null_init_dump_per_series(&all)
        .into_iter()
        .cloned()
        .collect();
    if dumps.is_empty() {
        kdive_testkit::skip!("SKIP (no lab null-init kdump dumps at {})", root.display());
        return;
    }
    let documented = blocks(&docs());
    let mut observed: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut runs = 0;
    let mut ran = BTreeSet::new();
    let arches_run: BTreeSet<&str> = dumps.iter().map(lab::arch).collect();
    let mut unsupported: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for m in &dumps {
        let Some((kernel, dirs)) = common::open_with_module_dir(m) else {
            panic!("{}: does not open", m["name"]);
        };
        let mut session = Session::new(&kernel, &dirs);
        let task = session.execute("set").expect("set").to_json()["task"]
            .as_str()
            .map(|t| t.trim_start_matches("0x").to_owned())
            .expect("a panic task");
        // A word of the panic task's kernel stack (vmalloc'ed on every lab kernel), and
        // `jiffies` (kernel data).
        let stack = kernel
            .read_field(
                kdive_kernel::VirtAddr(u64::from_str_radix(&task, 16).expect("hex")),
                "task_struct",
                "stack",
            )
            .map(|s| format!("{:x}", s + 0x100))
            .expect("task_struct.stack");
        let jiffies = format!("{:x}", kernel.symbol("jiffies").expect("jiffies").0);
        let free = format!("{:x}", free_page(&mut session, &kernel));
        // Pid 1's `mm_struct` and its executable's inode.
        let init = session
            .tasks()
            .tasks
            .iter()
            .find(|t| t.pid == 1)
            .cloned()
            .expect("pid 1");
        let mm = format!("{:x}", init.mm.0);
        let inode = kernel
            .read_field(init.mm, "mm_struct", "exe_file")
            .and_then(|file| kernel.read_field(kdive_kernel::VirtAddr(file), "file", "f_inode"))
            .map(|inode| format!("{inode:x}"))
            .expect("pid 1's executable's inode");
        for (name, block) in &documented {
            for template in &block.runs {
                let line = &template
                    .replace("{task}", &task)
                    .replace("{stack}", &stack)
                    .replace("{jiffies}", &jiffies)
                    .replace("{free}", &free)
                    .replace("{mm}", &mm)
                    .replace("{inode}", &inode);
                let report = match session.execute(line) {
                    Ok(report) => report,
                    // crash's answer where an architecture has no such thing (`mach -c`,
                    // `irq -d` on arm64).
                    Err(e) if common::not_on_this_architecture(&e.to_string()) => {
                        unsupported
                            .entry(template.clone())
                            .or_default()
                            .push(m["name"].clone());
                        continue;
                    }
                    Err(e) => panic!("{}: {line}: {e}", m["name"]),
                };
                ran.insert(template.clone());
                let json = report.to_json();
                assert_eq!(json["command"], name.as_str(), "{line}");
                // One line of JSON Lines.
                assert!(!serde_json::to_string(&json).expect("json").contains('\n'));
                flatten(&json, "", observed.entry(name.clone()).or_default());
                runs += 1;
            }
        }
    }
    if std::env::var_os("KDIVE_JSON_SCHEMA_UPDATE").is_some() {
        for (name, paths) in &observed {
            println!("```schema {name} {}", documented[name].schema);
            for run in &documented[name].runs {
                println!("run: {run}");
            }
            for (path, types) in paths {
                let types: Vec<&str> = types.iter().map(String::as_str).collect();
                println!("{path}: {}", types.join("|"));
            }
            println!("```\n");
        }
    }
    for (line, dumps) in &unsupported {
        println!("{line}: not on the architecture of {dumps:?}");
    }
    let mut problems = Vec::new();
    let mut never_printed = Vec::new();
    for (name, block) in &documented {
        // A run line no dump's architecture has leaves its paths unseen.
        let arch_ran = |path: &str| {
            block
                .arch_only
                .get(path)
                .is_none_or(|arch| arches_run.contains(arch.as_str()))
        };
        let every_line_ran = block
            .runs
            .iter()
            .all(|l| !unsupported.contains_key(l) || ran.contains(l));
        let seen = observed.get(name).cloned().unwrap_or_default();
        for (path, types) in &seen {
            // `warnings` appears on partial answers only; its type is fixed.
            if path == "warnings" || path == "warnings[]" {
                continue;
            }
            match block.paths.get(path) {
                None => problems.push(format!("{name}: {path} ({types:?}) is not documented")),
                Some(allowed) => {
                    for t in types {
                        if !allowed.contains(t) {
                            problems.push(format!("{name}: {path} is {t}, documented {allowed:?}"));
                        }
                    }
                }
            }
        }
        // Elements of an array that every run printed empty (no page flag set on this dump)
        // cannot be seen; the array itself must be.
        let empty_array = |path: &str| {
            path.rfind("[]").is_some_and(|i| {
                let array = &path[..i];
                seen.get(array).is_some_and(|t| t.contains("array"))
                    && !seen.keys().any(|k| k.starts_with(&format!("{array}[]")))
            })
        };
        for path in block.paths.keys() {
            if every_line_ran
                && arch_ran(path)
                && path != "warnings"
                && path != "warnings[]"
                && !seen.contains_key(path)
                && !empty_array(path)
            {
                never_printed.push(format!(
                    "{name}: documented {path} never printed by the run: lines"
                ));
            }
        }
    }
    // Every documented path shows on some kernel of the lab; one architecture's dumps alone
    // (KDIVE_LAB_ARCHES, to list what an architecture lacks) do not print the other's
    // registers nor every series' extras.
    if std::env::var_os("KDIVE_LAB_ARCHES").is_some() {
        for line in &never_printed {
            println!("NOTE (KDIVE_LAB_ARCHES narrows the lab) {line}");
        }
    } else {
        problems.extend(never_printed);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(runs >= COMMANDS.len(), "only {runs} command lines ran");
    println!("{runs} command lines checked against docs/json.md");
}
