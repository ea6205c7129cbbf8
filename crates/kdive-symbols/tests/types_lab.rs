//! Struct layouts of the lab's real Debian kernels: every member of a set of structs the
//! kernel model reads, from kdive's BTF reader and from its DWARF reader, compared at test time
//! with `pahole` (package `dwarves`, the oracle) on the same vmlinux.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use kdive_symbols::{Btf, DwarfTypes, TypeDesc, TypeInfo, TypeSourceKind, Types};
use kdive_testkit::lab::lab_root;

/// Structs whose every member (including those inlined from anonymous structs and unions) is
/// checked.
const STRUCTS: &[&str] = &[
    "task_struct",
    "mm_struct",
    "list_head",
    "printk_ringbuffer",
    "prb_desc_ring",
    "prb_data_ring",
    "printk_info",
    "module",
    "thread_struct",
    "sched_entity",
    "pt_regs",
    "page",
    "rq",
    "kernel_symbol",
];

/// Enums whose every enumerator is checked (by enum and in the global enumerator namespace).
const ENUMS: &[&str] = &[
    "pid_type",
    "module_state",
    "zone_stat_item",
    "node_stat_item",
    "pageflags",
];

/// Global variables whose declared types DWARF must give (BTF has only per-cpu ones; for those
/// both must agree).
const VARIABLES: &[(&str, &str)] = &[
    ("init_task", "struct task_struct"),
    ("init_uts_ns", "struct uts_namespace"),
    ("modules", "struct list_head"),
    ("runqueues", "struct rq"),
];

/// Structs whose members' descriptions (C spelling, class, size, signedness, tag) must agree
/// between BTF and DWARF.
const DESCRIBED: &[&str] = &[
    "task_struct",
    "mm_struct",
    "module",
    "page",
    "file",
    "inode",
    "super_block",
    "net_device",
    "sk_buff",
    "printk_ringbuffer",
    "printk_info",
    "rq",
];

/// Paths through named members, checked against the sum of pahole's offsets along the way
/// (members every architecture of the lab has: `thread` is x86_64's `thread_struct` or
/// arm64's).
const PATHS: &[(&str, &str)] = &[
    ("task_struct", "thread_info.flags"),
    ("task_struct", "se.on_rq"),
    ("task_struct", "tasks.next"),
    ("printk_ringbuffer", "desc_ring.count_bits"),
    ("printk_ringbuffer", "text_data_ring.data"),
];

/// Every unpacked lab vmlinux.
fn lab_vmlinuxes() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(versions) = std::fs::read_dir(lab_root().join("kernels")) else {
        return out;
    };
    for version in versions.flatten() {
        let Ok(boot) = std::fs::read_dir(version.path().join("usr/lib/debug/boot")) else {
            continue;
        };
        for entry in boot.flatten() {
            if entry.file_name().to_string_lossy().starts_with("vmlinux-") {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// One member line of `pahole -C`: offsets absolute from the struct's start (pahole prints
/// members of inlined anonymous structs and unions with offsets from the outer struct).
#[derive(Debug, Clone)]
struct PaholeMember {
    /// Declared type, e.g. `struct thread_struct`, `char`.
    ty: String,
    byte_offset: u64,
    /// Bitfields: `(bit within the byte offset's unit, width)`.
    bits: Option<(u64, u64)>,
    size: u64,
    /// `comm[16]` -> [16]; `x[2][8]` -> [2, 8]; `name[]` -> [0].
    array_dims: Option<Vec<u64>>,
}

#[derive(Debug, Default)]
struct PaholeStruct {
    size: u64,
    members: BTreeMap<String, PaholeMember>,
}

fn parse_member(line: &str) -> Option<(String, PaholeMember)> {
    let (decl, comment) = line.trim().rsplit_once("/*")?;
    let comment = comment.trim().strip_suffix("*/")?.trim();
    let decl = decl.trim().strip_suffix(';')?.trim();
    let decl = decl.split(" __attribute__").next()?.trim();
    // Function pointers, `} name;` closers and the like are not simple declarations.
    if decl.contains('(') || decl.starts_with('}') {
        return None;
    }
    let (ty, name) = decl.rsplit_once(|c: char| c.is_whitespace() || c == '*')?;
    let ty = format!("{}{}", ty.trim(), &decl[ty.len()..decl.len() - name.len()])
        .trim()
        .to_string();
    let (name, width) = match name.split_once(':') {
        Some((n, w)) => (n, Some(w.parse::<u64>().ok()?)),
        None => (name, None),
    };
    let (name, array_dims) = match name.split_once('[') {
        Some((n, rest)) => {
            let dims = rest
                .trim_end_matches(']')
                .split("][")
                // `name[]` is a flexible array member: length 0.
                .map(|d| {
                    if d.is_empty() {
                        Some(0)
                    } else {
                        d.parse::<u64>().ok()
                    }
                })
                .collect::<Option<Vec<u64>>>()?;
            (n, Some(dims))
        }
        None => (name, None),
    };
    let mut fields = comment.split_whitespace();
    let first = fields.next()?;
    let (byte_offset, bits) = if let Some((byte, bit)) = first.split_once(':') {
        let bit = if bit.is_empty() { fields.next()? } else { bit };
        (byte.parse().ok()?, Some((bit.parse().ok()?, width?)))
    } else {
        (first.parse().ok()?, None)
    };
    let size = fields.next()?.parse().ok()?;
    Some((
        name.to_string(),
        PaholeMember {
            ty,
            byte_offset,
            bits,
            size,
            array_dims,
        },
    ))
}

/// `pahole -F <format> -C a,b,c vmlinux`, parsed.
/// The pahole to ask: the lab's sid root's (1.32) when the lab made one, run with its own
/// loader and libraries; else the host's (Debian 12's 1.24).
fn pahole_command() -> Command {
    let sid = lab_root().join("tools/sid-root");
    let loader = sid.join("usr/lib64/ld-linux-x86-64.so.2");
    let binary = sid.join("usr/bin/pahole");
    if loader.exists() && binary.exists() {
        let mut cmd = Command::new(loader);
        cmd.arg("--library-path")
            .arg(sid.join("usr/lib/x86_64-linux-gnu"))
            .arg(binary);
        cmd
    } else {
        Command::new("pahole")
    }
}

fn pahole(vmlinux: &Path, format: &str, structs: &[&str]) -> BTreeMap<String, PaholeStruct> {
    let out = pahole_command()
        .args(["-F", format, "-C", &structs.join(",")])
        .arg(vmlinux)
        .output()
        .expect("run pahole");
    assert!(
        out.status.success(),
        "pahole failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut result = BTreeMap::new();
    let mut current: Option<(String, PaholeStruct)> = None;
    // Members of inlined anonymous structs/unions, one frame per open `struct {`/`union {`.
    let mut frames: Vec<Vec<(String, PaholeMember)>> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("struct ").filter(|r| r.ends_with(" {")) {
            current = Some((
                rest.trim_end_matches(" {").to_string(),
                PaholeStruct::default(),
            ));
            frames = vec![Vec::new()];
            continue;
        }
        let Some((_, s)) = current.as_mut() else {
            continue;
        };
        let trimmed = line.trim();
        if trimmed == "public:" || trimmed == "private:" {
            // A Rust unit's struct of the same name (7.x builds Rust code; pahole shows
            // the first it meets): not the C layout kdive is asked about.
            let (name, _) = current.take().unwrap();
            println!("pahole showed a non-C struct {name}: not compared");
            continue;
        }
        if let Some(size) = trimmed.strip_prefix("/* size: ") {
            s.size = size.split(',').next().unwrap().trim().parse().unwrap();
        } else if line.starts_with('}') {
            let (name, mut s) = current.take().unwrap();
            s.members = frames.pop().unwrap().into_iter().collect();
            result.insert(name, s);
        } else if trimmed.ends_with('{') {
            frames.push(Vec::new());
        } else if let Some(closer) = trimmed.strip_prefix('}') {
            // `} name;` names the inlined struct (its members are `name.member`); `};` is
            // anonymous (its members are found directly, as in C).
            let inner = frames.pop().unwrap();
            let name = closer.split("__attribute__").next().unwrap();
            let name = name.split(';').next().unwrap().trim();
            // `} regs[20];`: pahole shows the members of the first element.
            let name = match name.split_once('[') {
                Some((array, _)) => format!("{array}[0]"),
                None => name.to_string(),
            };
            let parent = frames.last_mut().unwrap();
            for (member, m) in inner {
                let member = if name.is_empty() {
                    member
                } else {
                    format!("{name}.{member}")
                };
                parent.push((member, m));
            }
        } else if let Some((name, member)) = parse_member(line) {
            frames.last_mut().unwrap().push((name, member));
        }
    }
    result
}

/// `pahole -C enum_a,enum_b`: enumerator values by enum.
fn pahole_enums(vmlinux: &Path, enums: &[&str]) -> BTreeMap<String, Vec<(String, i128)>> {
    let out = pahole_command()
        .args(["-F", "dwarf", "-C", &enums.join(",")])
        .arg(vmlinux)
        .output()
        .expect("run pahole");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut result = BTreeMap::new();
    let mut current: Option<(String, Vec<(String, i128)>)> = None;
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("enum ")
            .and_then(|r| r.strip_suffix(" {"))
        {
            current = Some((name.to_string(), Vec::new()));
        } else if line.starts_with('}') {
            if let Some((name, values)) = current.take() {
                result.insert(name, values);
            }
        } else if let (Some((_, values)), Some((name, value))) = (
            current.as_mut(),
            line.trim().trim_end_matches(',').split_once('='),
        ) {
            values.push((name.trim().to_string(), value.trim().parse().unwrap()));
        }
    }
    result
}

fn check_enums(what: &str, types: &dyn TypeInfo, oracle: &BTreeMap<String, Vec<(String, i128)>>) {
    for (name, values) in oracle {
        for (enumerator, value) in values {
            assert_eq!(
                types.enum_value(Some(name), enumerator).unwrap(),
                *value,
                "{what}: enum {name} {enumerator}"
            );
            assert_eq!(
                types.enum_value(None, enumerator).unwrap(),
                *value,
                "{what}: {enumerator}"
            );
        }
    }
}

fn have_pahole() -> bool {
    pahole_command()
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Checks one source against pahole's layouts; returns how many members were compared.
fn check_source(
    what: &str,
    types: &dyn TypeInfo,
    oracle: &BTreeMap<String, PaholeStruct>,
) -> usize {
    let mut compared = 0;
    for (struct_name, layout) in oracle {
        assert_eq!(
            types.struct_size(struct_name).unwrap(),
            layout.size,
            "{what}: sizeof(struct {struct_name})"
        );
        for (name, m) in &layout.members {
            let got = types
                .member(struct_name, name)
                .unwrap_or_else(|e| panic!("{what}: {struct_name}.{name}: {e}"));
            let ctx = format!("{what}: {struct_name}.{name} ({})", m.ty);
            match m.bits {
                Some((bit, width)) => {
                    assert_eq!(got.bit_offset, m.byte_offset * 8 + bit, "{ctx}: bit offset");
                    assert_eq!(got.bit_size, Some(width), "{ctx}: bit size");
                    assert_eq!(got.offset, m.byte_offset, "{ctx}: storage offset");
                }
                None => {
                    assert_eq!(got.offset, m.byte_offset, "{ctx}: offset");
                    assert_eq!(got.bit_size, None, "{ctx}: bit size");
                    assert_eq!(got.size, m.size, "{ctx}: size");
                }
            }
            if let Some(dims) = &m.array_dims {
                // The pahole of Debian 12's kernels flattens `u64 x[2][8]` into `u64 x[16]`
                // in BTF; the one that built 7.x keeps the dimensions, as DWARF does.
                let flat: u64 = dims.iter().product();
                let ok = match types.source() {
                    TypeSourceKind::Btf => [flat, dims[0]].map(Some).contains(&got.ty.array_len),
                    TypeSourceKind::Dwarf => got.ty.array_len == Some(dims[0]),
                };
                assert!(
                    ok,
                    "{ctx}: array length {:?}, dimensions {dims:?}",
                    got.ty.array_len
                );
            }
            if let Some(tag) =
                m.ty.strip_prefix("struct ")
                    .filter(|t| !t.contains(" ") && !t.contains("*"))
            {
                // For an array member pahole's type is the element's.
                let ty = match m.array_dims {
                    Some(_) => got.ty.target.as_deref().unwrap(),
                    None => &got.ty,
                };
                assert_eq!(ty.tag.as_deref(), Some(tag), "{ctx}: struct tag");
            }
            compared += 1;
        }
    }
    compared
}

/// `a.b.c`: pahole's offset of `a` in `ty`, plus that of `b` in `a`'s struct type, and so on.
fn oracle_path(vmlinux: &Path, ty: &str, path: &str) -> u64 {
    let mut offset = 0;
    let mut current = ty.to_string();
    for segment in path.split('.') {
        let layout = pahole(vmlinux, "dwarf", &[&current]);
        let m = layout[&current].members[segment].clone();
        offset += m.byte_offset;
        current = m.ty.trim_start_matches("struct ").to_string();
    }
    offset
}

#[test]
fn lab_layouts_match_pahole() {
    let vmlinuxes = lab_vmlinuxes();
    if vmlinuxes.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", lab_root().display());
        return;
    }
    assert!(have_pahole(), "pahole missing: apt-get install -y dwarves");
    for vmlinux in vmlinuxes {
        // Best of three: other work on the machine adds noise to a ~50 ms measurement.
        let mut btf_open = std::time::Duration::MAX;
        let mut btf = None;
        for _ in 0..3 {
            let start = Instant::now();
            btf = Some(Arc::new(Btf::from_elf_file(&vmlinux, None).unwrap()));
            btf_open = btf_open.min(start.elapsed());
        }
        let btf = btf.unwrap();

        let start = Instant::now();
        let dwarf = Arc::new(DwarfTypes::open(&vmlinux).unwrap());
        let dwarf_open = start.elapsed();
        let start = Instant::now();
        let first = dwarf.member("task_struct", "comm").unwrap();
        let dwarf_first = start.elapsed();
        let start = Instant::now();
        dwarf.member("mm_struct", "pgd").unwrap();
        let dwarf_next = start.elapsed();
        assert_eq!(
            first.ty.array_len,
            btf.member("task_struct", "comm").unwrap().ty.array_len
        );

        let dwarf_oracle = pahole(&vmlinux, "dwarf", STRUCTS);
        let btf_oracle = pahole(&vmlinux, "btf", STRUCTS);
        assert!(
            dwarf_oracle.len() >= 10,
            "pahole found only {:?}",
            dwarf_oracle.keys()
        );
        let n = check_source("BTF vs pahole -F btf", btf.as_ref(), &btf_oracle);
        check_source("BTF vs pahole -F dwarf", btf.as_ref(), &dwarf_oracle);
        check_source("DWARF vs pahole -F dwarf", dwarf.as_ref(), &dwarf_oracle);
        let (mut described, mut char_sign_lost) = (0, 0);
        for name in DESCRIBED {
            let (from_btf, from_dwarf) = (btf.members(name).unwrap(), dwarf.members(name).unwrap());
            assert_eq!(from_btf.len(), from_dwarf.len(), "{name}: member count");
            for (b, d) in from_btf.iter().zip(&from_dwarf) {
                let ctx = format!("{name}.{}", b.name);
                assert_eq!(
                    (&b.name, b.bit_offset, b.bit_size),
                    (&d.name, d.bit_offset, d.bit_size),
                    "{ctx}"
                );
                // pahole's BTF flattens multi-dimensional arrays; DWARF keeps them.
                if !d.ty.name.contains("][") {
                    assert_eq!(unsigned_chars(&b.ty), unsigned_chars(&d.ty), "{ctx}: type");
                    if b.ty != d.ty {
                        char_sign_lost += 1;
                    }
                }
                described += 1;
            }
        }
        println!(
            "{described} member types agree between BTF and DWARF ({char_sign_lost} but for a \
             `char` that this BTF does not mark signed)"
        );
        let types = Types::open_vmlinux(&vmlinux).unwrap();
        // Probing for a member or type that is absent is answered by BTF alone (no DWARF index).
        let start = Instant::now();
        assert!(!types
            .has_member("task_struct", "kdive_no_such_member")
            .unwrap());
        assert!(types.struct_size("kdive_no_such_struct").is_err());
        assert!(
            start.elapsed().as_millis() < 500,
            "probe took {:?}",
            start.elapsed()
        );
        let sources: Vec<TypeSourceKind> = types.sources().collect();
        assert_eq!(sources, [TypeSourceKind::Btf, TypeSourceKind::Dwarf]);
        assert_eq!(
            types.offset_of("task_struct", "se.load.weight").unwrap(),
            btf.member("task_struct", "se.load.weight").unwrap().offset
        );
        let enums = pahole_enums(&vmlinux, ENUMS);
        assert!(
            enums.len() >= 4,
            "pahole found only enums {:?}",
            enums.keys()
        );
        check_enums("BTF", btf.as_ref(), &enums);
        check_enums("DWARF", dwarf.as_ref(), &enums);
        for (variable, ty) in VARIABLES {
            assert_eq!(
                dwarf.variable_type(variable).unwrap().name,
                *ty,
                "DWARF {variable}"
            );
            if let Ok(from_btf) = btf.variable_type(variable) {
                assert_eq!(from_btf.name, *ty, "BTF {variable}");
            }
        }
        let mut stack = Types::new();
        stack.push(btf.clone());
        stack.push(dwarf.clone());
        assert_eq!(
            stack.variable_type("init_task").unwrap().name,
            "struct task_struct"
        );
        for (ty, path) in PATHS {
            let want = oracle_path(&vmlinux, ty, path);
            assert_eq!(
                btf.member(ty, path).unwrap().offset,
                want,
                "BTF {ty}.{path}"
            );
            assert_eq!(
                dwarf.member(ty, path).unwrap().offset,
                want,
                "DWARF {ty}.{path}"
            );
        }
        println!(
            "{}: {n} members of {} structs agree; BTF open {btf_open:?}, DWARF open {dwarf_open:?}, \
             first DWARF lookup (index build) {dwarf_first:?}, next lookup {dwarf_next:?}",
            vmlinux.display(),
            dwarf_oracle.len()
        );
    }
}

/// Every `.ko` under `dir`, sorted.
fn modules_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            modules_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "ko") {
            out.push(path);
        }
    }
}

/// `ty` with every plain `char` in it made unsigned: the pahole that built 5.10's BTF did not
/// mark `char` signed (BTF_INT_SIGNED) where DWARF says it is (x86_64).
fn unsigned_chars(ty: &TypeDesc) -> TypeDesc {
    let mut out = ty.clone();
    let words: Vec<&str> = out
        .name
        .split_whitespace()
        .filter(|w| !matches!(*w, "const" | "volatile"))
        .collect();
    if words == ["char"] {
        out.signed = false;
    }
    if let Some(target) = &ty.target {
        out.target = Some(Box::new(unsigned_chars(target)));
    }
    out
}

/// Split BTF of Debian's debug modules over their vmlinux: the structs each module defines
/// itself (ids after the base's) against `pahole -F dwarf` on the module.
#[test]
fn lab_module_split_btf_matches_pahole() {
    let vmlinuxes = lab_vmlinuxes();
    if vmlinuxes.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", lab_root().display());
        return;
    }
    assert!(have_pahole(), "pahole missing: apt-get install -y dwarves");
    let mut kernels_checked = 0;
    for vmlinux in vmlinuxes {
        let release =
            vmlinux.file_name().unwrap().to_string_lossy()["vmlinux-".len()..].to_string();
        let debug = vmlinux.parent().unwrap().parent().unwrap();
        let mut modules = Vec::new();
        modules_under(&debug.join("lib/modules").join(&release), &mut modules);
        modules.sort();
        let base = Arc::new(Btf::from_elf_file(&vmlinux, None).unwrap());
        let (mut checked_modules, mut members, mut with_btf) = (0, 0, 0);
        // Every 40th module: a spread over the tree that keeps the test short.
        for module in modules.iter().step_by(40) {
            let start = Instant::now();
            let btf = match Btf::from_elf_file(module, Some(base.clone())) {
                Ok(btf) => btf,
                Err(e) if e.to_string().contains("no .BTF") => continue,
                Err(e) => panic!("{}: {e}", module.display()),
            };
            with_btf += 1;
            let open = start.elapsed();
            assert_eq!(btf.first_id(), base.next_id());
            let own: Vec<String> = (btf.first_id()..btf.next_id())
                .filter_map(|id| btf.type_by_id(id).ok())
                .filter(|t| t.kind == kdive_symbols::btf::BtfKind::Struct && t.vlen > 0)
                .filter_map(|t| btf.name(t.name_off).ok().map(str::to_string))
                .filter(|n| !n.is_empty())
                .take(8)
                .collect();
            if own.is_empty() {
                continue;
            }
            let names: Vec<&str> = own.iter().map(String::as_str).collect();
            let oracle = pahole(module, "dwarf", &names);
            members += check_source(&format!("{} BTF", module.display()), &btf, &oracle);
            checked_modules += 1;
            assert!(
                open.as_millis() < 1000,
                "{}: split BTF open took {open:?}",
                module.display()
            );
        }
        if with_btf == 0 {
            // 5.10 has no CONFIG_DEBUG_INFO_BTF_MODULES.
            println!("{release}: its modules carry no BTF");
            continue;
        }
        assert!(
            checked_modules > 0,
            "no module with its own structs under {}",
            debug.display()
        );
        kernels_checked += 1;
        println!("{release}: {members} members in {checked_modules} modules' own structs agree with pahole");
    }
    assert!(kernels_checked > 0, "no lab kernel's modules carry BTF");
}
