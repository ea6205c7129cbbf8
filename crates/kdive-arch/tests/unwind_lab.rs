//! The unwinder on the lab's kdump-captured dumps: every CPU's NT_PRSTATUS registers are
//! unwound with vmlinux's ORC and the loaded modules' ORC (read from the dump, as the kernel
//! itself uses them); one CPU's chain must contain, in order, the frames of the `Call Trace:`
//! the guest printed, and every task's chain must equal drgn's `prog.stack_trace(task)`
//! (oracle/drgn.json) where drgn has one.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use kdive_arch::{
    unwind, unwind_across, Backtrace, DwarfCfi, InactiveTaskFrameLayout, KernelAddressSpace,
    OrcTable, OrcTables, OrcVersion, Reg, RegisterSet, UnwindStart, UnwindTables, VirtAddr,
    VirtMem,
};
use kdive_dump::{PhysMem, Vmcore};
use kdive_symbols::{Btf, TypeInfo};
use kdive_testkit::lab::{self, lab_root, BadJson};
use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};
use serde_json::Value;

/// Each x86_64 dump's own manifest (written with its dump): ORC is x86_64's (arm64's frame
/// records are held to the console and drgn by kdive-commands' bt_lab and arm64_lab).
fn manifests(root: &Path) -> Vec<Value> {
    let mut out = lab::dump_manifests(root, BadJson::Skip);
    out.retain(|m| lab::arch(m) == "x86_64");
    out
}

/// Opens a manifest's dump unless its files are missing or being rewritten by the lab.
fn open_dump(m: &Value) -> Result<Vmcore, String> {
    Vmcore::open_paths(&lab::present_files(m)?).map_err(|e| e.to_string())
}

/// A text symbol: address, name, module.
type Sym = (u64, String, Option<String>);

/// What the test takes from a vmlinux: text symbols (link addresses), ORC sections, a few
/// symbol addresses, and its BTF for the layouts of `struct module` and the task frame.
struct Vmlinux {
    text: Vec<Sym>,
    orc_ip: (u64, Vec<u8>),
    orc: Vec<u8>,
    orc_header: Option<Vec<u8>>,
    debug_frame: Vec<u8>,
    addrs: HashMap<String, u64>,
    btf: Btf,
}

fn load_vmlinux(path: &str) -> Vmlinux {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // SAFETY: the lab's vmlinux is not modified while the test runs.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("mmap vmlinux");
    let elf = object::File::parse(&*map).expect("vmlinux ELF");
    let section = |name: &str| {
        elf.section_by_name(name)
            .map(|s| (s.address(), s.data().expect("section data").to_vec()))
    };
    let orc_ip = section(".orc_unwind_ip").expect(".orc_unwind_ip");
    let orc = section(".orc_unwind").expect(".orc_unwind").1;
    let orc_header = section(".orc_header").map(|(_, d)| d);
    let debug_frame = section(".debug_frame").expect(".debug_frame").1;
    let wanted = [
        "modules",
        "ret_from_fork",
        "ret_from_fork_asm",
        "__start_orc_unwind_ip",
        "__stop_orc_unwind_ip",
        "__start_orc_unwind",
        "__per_cpu_offset",
        "hardirq_stack_ptr",
        "pcpu_hot",
    ];
    let mut addrs = HashMap::new();
    let mut text = Vec::new();
    for sym in elf.symbols() {
        let Ok(name) = sym.name() else { continue };
        if wanted.contains(&name) {
            addrs.insert(name.to_owned(), sym.address());
        }
        // Functions and the entry code's labels (NOTYPE), as kallsyms lists them.
        let in_text = sym
            .section_index()
            .and_then(|i| elf.section_by_index(i).ok())
            .is_some_and(|s| s.kind() == SectionKind::Text);
        if in_text
            && matches!(
                sym.kind(),
                SymbolKind::Text | SymbolKind::Unknown | SymbolKind::Label
            )
            && !name.is_empty()
        {
            text.push((sym.address(), name.to_owned(), None));
        }
    }
    text.sort();
    let btf = Btf::from_elf_file(Path::new(path), None).expect("vmlinux BTF");
    Vmlinux {
        text,
        orc_ip,
        orc,
        orc_header,
        debug_frame,
        addrs,
        btf,
    }
}

/// `cpu`'s hard-IRQ stack: the per-CPU `hardirq_stack_ptr` (`pcpu_hot`'s since 6.2) holds its
/// top minus 8, `struct irq_stack` its size. A walk may leave it for a lower address.
fn irq_stack(v: &Vmlinux, space: &dyn VirtMem, kaslr: u64, cpu: usize) -> Option<Range<u64>> {
    let var = match (v.addrs.get("hardirq_stack_ptr"), v.addrs.get("pcpu_hot")) {
        (Some(&at), _) => at,
        (None, Some(&hot)) => hot + offset(&v.btf, "pcpu_hot", "hardirq_stack_ptr"),
        (None, None) => return None,
    };
    // Per-CPU symbols are offsets from 0 until 6.15 and addresses in the image since, which
    // move with KASLR.
    let var = if var >= 0xffff_ffff_8000_0000 {
        var + kaslr
    } else {
        var
    };
    let cpu_offsets = v.addrs["__per_cpu_offset"] + kaslr;
    let base = space
        .read_u64(VirtAddr(cpu_offsets + 8 * cpu as u64))
        .expect("__per_cpu_offset");
    let top = space
        .read_u64(VirtAddr(base.wrapping_add(var)))
        .expect("hardirq_stack_ptr")
        + 8;
    let size = v.btf.struct_size("irq_stack").expect("struct irq_stack");
    Some(top - size..top)
}

fn offset(btf: &Btf, ty: &str, member: &str) -> u64 {
    btf.member(ty, member)
        .unwrap_or_else(|e| panic!("{ty}.{member}: {e}"))
        .offset
}

/// The kernel as the unwinder needs it: ORC tables of vmlinux and modules, and symbols.
struct Kernel {
    tables: UnwindTables,
    symbols: Vec<Sym>,
    kaslr: u64,
}

impl Kernel {
    /// `pc`'s symbol as kallsyms prints it: the nearest preceding text symbol, of aliases the
    /// first (see the order in `load_kernel`).
    fn symbolize(&self, pc: u64) -> String {
        let end = self.symbols.partition_point(|(a, _, _)| *a <= pc);
        let nearest = end.checked_sub(1).and_then(|i| self.symbols.get(i));
        let first = nearest.map(|(at, _, _)| self.symbols.partition_point(|(a, _, _)| a < at));
        match first.and_then(|i| self.symbols.get(i)) {
            Some((addr, name, module)) if pc - addr < 0x10_0000 => match module {
                Some(m) => format!("{name}+{:#x} [{m}]", pc - addr),
                None => format!("{name}+{:#x}", pc - addr),
            },
            _ => format!("{pc:#x}"),
        }
    }

    fn function(&self, pc: u64) -> String {
        let s = self.symbolize(pc);
        s.split('+').next().unwrap_or_default().to_owned()
    }
}

fn read_bytes(space: &dyn VirtMem, addr: u64, len: u64) -> Vec<u8> {
    let mut buf = vec![0u8; usize::try_from(len).expect("len")];
    space
        .read_virt(VirtAddr(addr), &mut buf)
        .unwrap_or_else(|e| panic!("{len} bytes at {addr:#x}: {e}"));
    buf
}

fn load_kernel(v: &Vmlinux, space: &dyn VirtMem, kaslr: u64, osrelease: Option<&str>) -> Kernel {
    let version = OrcVersion::detect(v.orc_header.as_deref(), osrelease).expect("ORC version");
    let mut tables = OrcTables::new();
    let (ip_addr, ip_bytes) = &v.orc_ip;
    tables.push(
        OrcTable::parse(
            "vmlinux",
            VirtAddr(ip_addr + kaslr),
            ip_bytes,
            &v.orc,
            version,
        )
        .expect("vmlinux ORC"),
    );
    // The same table as the running kernel holds it (how kdive reads it when only the
    // dump's memory is at hand): identical entries.
    let start = |s: &str| VirtAddr(v.addrs[s] + kaslr);
    let in_memory = OrcTable::read(
        space,
        "vmlinux (memory)",
        start("__start_orc_unwind_ip"),
        start("__start_orc_unwind"),
        (v.addrs["__stop_orc_unwind_ip"] - v.addrs["__start_orc_unwind_ip"]) / 4,
        version,
    )
    .expect("vmlinux ORC in memory");
    let from_file = tables.tables().next().expect("vmlinux table");
    assert_eq!(in_memory.len(), from_file.len());
    assert!(in_memory.iter().eq(from_file.iter()));
    let mut symbols: Vec<Sym> = v
        .text
        .iter()
        .map(|(a, n, m)| (a + kaslr, n.clone(), m.clone()))
        .collect();

    // Loaded modules: their ORC tables and kallsyms symbols, as the kernel keeps them
    // (mod->arch.orc_unwind_ip/orc_unwind/num_orcs, mod->kallsyms).
    let btf = &v.btf;
    let list_off = offset(btf, "module", "list");
    let name_off = offset(btf, "module", "name");
    let head = v.addrs["modules"] + kaslr;
    let mut node = space.read_u64(VirtAddr(head)).expect("modules.next");
    let mut count = 0;
    while node != head {
        count += 1;
        assert!(count < 1000, "module list does not end");
        let module = node - list_off;
        let name = String::from_utf8_lossy(
            &space
                .read_cstr(VirtAddr(module + name_off), 56)
                .expect("module name"),
        )
        .into_owned();
        let field = |path: &str| module + offset(btf, "module", path);
        let num = u64::from(
            space
                .read_u32(VirtAddr(field("arch.num_orcs")))
                .expect("num_orcs"),
        );
        let ip = space
            .read_u64(VirtAddr(field("arch.orc_unwind_ip")))
            .expect("orc ip");
        let orc = space
            .read_u64(VirtAddr(field("arch.orc_unwind")))
            .expect("orc");
        if num > 0 {
            let table = OrcTable::read(space, &name, VirtAddr(ip), VirtAddr(orc), num, version)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            tables.push(table);
        }
        let kallsyms = space
            .read_u64(VirtAddr(field("kallsyms")))
            .expect("kallsyms");
        let symtab = space
            .read_u64(VirtAddr(kallsyms + offset(btf, "mod_kallsyms", "symtab")))
            .expect("symtab");
        let num_symtab = space
            .read_u32(VirtAddr(
                kallsyms + offset(btf, "mod_kallsyms", "num_symtab"),
            ))
            .expect("num_symtab");
        let strtab = space
            .read_u64(VirtAddr(kallsyms + offset(btf, "mod_kallsyms", "strtab")))
            .expect("strtab");
        let syms = read_bytes(space, symtab, u64::from(num_symtab) * 24);
        for sym in syms.chunks_exact(24) {
            let st_name = u32::from_le_bytes(sym[0..4].try_into().unwrap());
            let st_type = sym[4] & 0xf;
            let st_shndx = u16::from_le_bytes(sym[6..8].try_into().unwrap());
            let st_value = u64::from_le_bytes(sym[8..16].try_into().unwrap());
            // Not section (3) or file (4) symbols, not undefined ones.
            if st_type >= 3 || st_shndx == 0 || st_name == 0 {
                continue;
            }
            let sym_name = space
                .read_cstr(VirtAddr(strtab + u64::from(st_name)), 128)
                .expect("symbol name");
            symbols.push((
                st_value,
                String::from_utf8_lossy(&sym_name).into_owned(),
                Some(name.clone()),
            ));
        }
        node = space.read_u64(VirtAddr(node)).expect("list next");
    }
    // Aliases as the kernel orders them: vmlinux's by name (kallsyms is built from `nm -n`),
    // a module's in its symbol table's order (`find_kallsyms_symbol()` keeps the first:
    // kdive_lab_init before its alias init_module). The sort is stable.
    symbols.sort_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| match (&a.2, &b.2) {
            (None, None) => a.1.cmp(&b.1),
            _ => std::cmp::Ordering::Equal,
        })
    });
    Kernel {
        tables: UnwindTables {
            orc: tables,
            cfi: vec![DwarfCfi::from_debug_frame(
                "vmlinux",
                v.debug_frame.clone(),
                kaslr,
            )],
            functions: Default::default(),
        },
        symbols,
        kaslr,
    }
}

/// `name [module]` or `name`, as `lab::crash_call_trace` gives them.
fn chain_names(kernel: &Kernel, bt: &Backtrace) -> Vec<String> {
    bt.frames
        .iter()
        .map(|f| {
            let s = kernel.symbolize(f.lookup_pc().0);
            match s.split_once(" [") {
                Some((head, module)) => {
                    format!("{} [{module}", head.split('+').next().unwrap_or_default())
                }
                None => s.split('+').next().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

fn is_subsequence(needle: &[String], hay: &[String]) -> bool {
    let mut it = hay.iter();
    needle.iter().all(|n| it.any(|h| h == n))
}

fn print_chain(kernel: &Kernel, bt: &Backtrace) {
    for (i, f) in bt.frames.iter().enumerate() {
        println!(
            "  #{i:<2} [{:#x}] {} ({:#x}){}",
            f.sp.0,
            kernel.symbolize(f.lookup_pc().0),
            f.pc.0,
            if f.exception.is_some() {
                " <- exception frame"
            } else {
                ""
            }
        );
    }
    println!("  stop: {:?}", bt.stop);
}

#[test]
fn unwind_kdump_dumps_like_the_console_and_drgn() {
    if !lab::tests_architecture("x86_64") {
        return;
    }
    let root = lab_root();
    let manifests = manifests(&root);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut vmlinuxes: HashMap<String, Vmlinux> = HashMap::new();
    let mut checked = Vec::new();
    let mut drgn_checked = 0usize;
    let mut crash_ids = std::collections::HashSet::new();
    for m in &manifests {
        let name = m["name"].as_str().expect("name");
        if m["truncated"] == true {
            continue;
        }
        if let Some(why) = lab::filtered_unsupported(m) {
            println!("{name}: not checked: makedumpfile: {why}");
            continue;
        }
        let qemu = m["capture"] == "qemu";
        let crash_id = m["crash_id"].as_str().unwrap_or(name).to_owned();
        let drgn_path = m["oracle"]["drgn"].as_str().map(str::to_owned);
        // One dump per crash suffices for the console check; drgn's oracle where it exists.
        if crash_ids.contains(&crash_id) && drgn_path.is_none() {
            continue;
        }
        let vmcore = match open_dump(m) {
            Ok(v) => v,
            Err(err) => {
                println!("{name}: not checked: {err}");
                continue;
            }
        };
        let vmlinux_path = m["kernel"]["vmlinux"].as_str().expect("vmlinux");
        let v = vmlinuxes
            .entry(vmlinux_path.to_owned())
            .or_insert_with(|| load_vmlinux(vmlinux_path));
        let mem: &dyn PhysMem = &*vmcore.mem;
        let space = KernelAddressSpace::from_notes(mem, &vmcore.notes)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let kaslr = space.kaslr_offset().unwrap_or(0);
        let osrelease = vmcore.vmcoreinfo().and_then(|i| i.osrelease());
        let kernel = load_kernel(v, &space, kaslr, osrelease);
        let expected: Vec<String> = lab::crash_call_trace(m).into_iter().map(|f| f.0).collect();
        assert!(
            !expected.is_empty(),
            "{name}: no Call Trace on the console or in dmesg"
        );
        println!("{name}: console trace {expected:?}");

        // kdump: each CPU's NT_PRSTATUS (the panic CPU's is the oops's pt_regs or
        // crash_setup_regs() in __crash_kexec); QEMU: the CPUs' state after the panic.
        let starts: Vec<(u32, RegisterSet)> = if qemu {
            kdive_arch::qemu_cpu_states(&vmcore.notes)
                .iter()
                .map(|q| (0, q.registers()))
                .collect()
        } else {
            vmcore
                .notes
                .prstatus
                .iter()
                .map(|p| (p.pid, kdive_arch::registers_from_user_regs(&p.pr_reg)))
                .collect()
        };
        let mut found = false;
        let mut cpu_traces = Vec::new();
        for (cpu, (pid, regs)) in starts.into_iter().enumerate() {
            let stacks = irq_stack(v, &space, kaslr, cpu);
            let bt = unwind_across(
                &kernel.tables,
                &space,
                UnwindStart::from_registers(regs),
                stacks.as_slice(),
            );
            println!("{name}: CPU {cpu} (pid {pid}):");
            print_chain(&kernel, &bt);
            assert!(
                bt.stop.is_complete(),
                "{name}: CPU {cpu}: the walk gave up: {:?}",
                bt.stop
            );
            let names = chain_names(&kernel, &bt);
            if is_subsequence(&expected, &names) {
                found = true;
            }
            cpu_traces.push((pid, bt));
        }
        assert!(
            found,
            "{name}: no CPU's chain contains the console's Call Trace {expected:?}"
        );
        crash_ids.insert(crash_id);
        checked.push(name.to_owned());

        let Some(drgn_path) = drgn_path else { continue };
        let Ok(text) = std::fs::read_to_string(&drgn_path) else {
            continue;
        };
        let drgn: Value = serde_json::from_str(&text).expect("drgn.json");
        drgn_checked += compare_with_drgn(name, v, &kernel, &space, &drgn, &cpu_traces);
    }
    println!("checked against the console: {checked:?}; {drgn_checked} task stacks equal drgn's");
    assert!(!checked.is_empty(), "no kdump dump could be checked");
}

/// Unwinds every task drgn listed and compares the frames; returns how many agreed.
fn compare_with_drgn(
    name: &str,
    v: &Vmlinux,
    kernel: &Kernel,
    space: &dyn VirtMem,
    drgn: &Value,
    cpu_traces: &[(u32, Backtrace)],
) -> usize {
    let btf = &v.btf;
    let thread_sp = offset(btf, "task_struct", "thread.sp");
    let stack = offset(btf, "task_struct", "stack");
    let frame_members = btf
        .members("inactive_task_frame")
        .expect("inactive_task_frame");
    let mut layout = InactiveTaskFrameLayout {
        size: btf
            .struct_size("inactive_task_frame")
            .expect("sizeof inactive_task_frame"),
        ret_addr: 0,
        saved: Vec::new(),
    };
    for mb in &frame_members {
        match mb.name.as_str() {
            "ret_addr" => layout.ret_addr = mb.offset,
            "bp" => layout.saved.push((Reg::Rbp, mb.offset)),
            "bx" => layout.saved.push((Reg::Rbx, mb.offset)),
            other => {
                if let Some(reg) = Reg::from_name(other) {
                    layout.saved.push((reg, mb.offset));
                }
            }
        }
    }
    let fork_entries: Vec<u64> = ["ret_from_fork", "ret_from_fork_asm"]
        .iter()
        .filter_map(|s| v.addrs.get(*s).map(|a| a + kernel.kaslr))
        .collect();

    let mut agreed = 0;
    let mut unwinding = std::time::Duration::ZERO;
    // The crashed thread as drgn unwinds it (from the panic CPU's registers).
    if let Some(cpu) = drgn["panic"]["task"]["cpu"].as_u64() {
        if let Some((_, bt)) = cpu_traces.get(usize::try_from(cpu).unwrap_or(usize::MAX)) {
            check_against_drgn(
                name,
                "the panic task",
                kernel,
                &lab::drgn_kernel_pcs(&drgn["panic"]["stack"]),
                bt,
            );
            agreed += 1;
        }
    }
    let tasks = drgn["tasks"]
        .as_array()
        .into_iter()
        .chain(drgn["idle_tasks"].as_array())
        .flatten();
    for task in tasks {
        let pid = task["pid"].as_u64().unwrap_or(0);
        let comm = task["comm"].as_str().unwrap_or("");
        let addr = task["task"].as_str().unwrap_or("0");
        let addr = u64::from_str_radix(addr.trim_start_matches("0x"), 16).expect("task address");
        let bt = if task["on_cpu"] == true {
            let cpu = task["cpu"].as_u64().unwrap_or(0);
            match cpu_traces.get(usize::try_from(cpu).unwrap_or(usize::MAX)) {
                Some((p, bt)) if u64::from(*p) == pid => bt.clone(),
                _ => continue,
            }
        } else {
            // A zombie's stack is freed (`stack` NULL): crash says "(no stack)", and what drgn
            // unwinds there is what the freed page held since.
            if space
                .read_u64(VirtAddr(addr + stack))
                .expect("task_struct.stack")
                == 0
            {
                println!("{name}: pid {pid} ({comm}): no stack");
                continue;
            }
            let sp = space
                .read_u64(VirtAddr(addr + thread_sp))
                .expect("thread.sp");
            let mut start = UnwindStart::from_inactive_task_frame(space, VirtAddr(sp), &layout)
                .unwrap_or_else(|e| panic!("{name}: pid {pid}: {e}"));
            if start.regs.pc().is_some_and(|ip| fork_entries.contains(&ip)) {
                start.interrupted = true;
            }
            let t0 = Instant::now();
            let bt = unwind(&kernel.tables, space, start);
            unwinding += t0.elapsed();
            bt
        };
        assert!(
            bt.stop.is_complete(),
            "{name}: pid {pid} ({comm}): the walk gave up: {:?}",
            bt.stop
        );
        check_against_drgn(
            name,
            &format!("pid {pid} ({comm})"),
            kernel,
            &lab::drgn_kernel_pcs(&task["stack"]),
            &bt,
        );
        agreed += 1;
    }
    println!("{name}: {agreed} stacks agree with drgn; sleeping tasks unwound in {unwinding:?}");
    agreed
}

/// kdive's frames must be drgn's, pc for pc. drgn loses the way where it has no unwind data
/// (a module's init text, whose ORC it does not load): there, compare up to its first frame
/// without a symbol and print what kdive found beyond.
fn check_against_drgn(
    name: &str,
    who: &str,
    kernel: &Kernel,
    want: &[(u64, bool)],
    bt: &Backtrace,
) {
    let got: Vec<u64> = bt.frames.iter().map(|f| f.pc.0).collect();
    let reliable = want.iter().take_while(|(_, sym)| *sym).count();
    let want_pcs: Vec<u64> = want.iter().map(|(pc, _)| *pc).collect();
    let prefix = &want_pcs[..reliable];
    if got.get(..reliable) != Some(prefix) || (reliable == want.len() && got != want_pcs) {
        println!("{name}: {who} differs from drgn");
        println!(
            "  drgn: {:?}",
            want_pcs
                .iter()
                .map(|pc| kernel.symbolize(*pc))
                .collect::<Vec<_>>()
        );
        print_chain(kernel, bt);
        panic!("{name}: {who}: stack differs from drgn's");
    }
    if reliable < want.len() {
        println!(
            "{name}: {who}: drgn loses the way at frame {reliable} ({:#x}); kdive goes on: {:?}",
            want_pcs[reliable],
            bt.frames[reliable..]
                .iter()
                .map(|f| kernel.function(f.lookup_pc().0))
                .collect::<Vec<_>>()
        );
    }
}
