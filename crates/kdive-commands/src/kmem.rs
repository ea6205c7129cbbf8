//! `kmem -i`: crash's memory usage table (memory.c `dump_kmeminfo()`), same rows and
//! arithmetic; the SHARED row only with `-i=shared`, as crash 8.0.3+ (crash 8.0.2 always
//! printed it; JSON always has it). SLAB is the vmstat slab counters, as crash 8.0.3+ prints it; crash 8.0.2
//! and older count `PG_slab` pages on 5.9+ kernels instead, which kdive reports as
//! `slab_flagged_pages` in JSON.

use std::io::{self, Write};

use kdive_kernel::meminfo::{kmem_info, KmemInfo};
use kdive_kernel::Kernel;
use serde::Serialize;

use crate::format::size_string;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

const KMEM_USAGE: &str =
    "kmem [-i[=shared] | -f | -v | -V | -z | -h | -n | -p [address ...] | -g [flags ...] | -s [cache | address] | -S [cache | address] | address ...]";

/// The `kmem` options kdive implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KmemArgs {
    /// `-i=shared`: the SHARED row too.
    pub shared: bool,
}

/// What `kmem` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmemRequest {
    /// `-i`.
    Info(KmemArgs),
    /// `-s` (`verbose`: `-S`), for every cache, the named one, or the caches and slabs of
    /// addresses.
    Slabs {
        verbose: bool,
        name: Option<String>,
        addresses: Vec<u64>,
    },
    /// `kmem ADDRESS...`.
    Addresses(Vec<u64>),
    /// `-v`.
    Vmalloc,
    /// `-p ADDRESS...`.
    Pages(Vec<u64>),
    /// `-p`: every page of the mem_map.
    MemMap,
    /// `-n`.
    Nodes,
    /// `-g [FLAGS...]`.
    PageFlags(Vec<u64>),
    /// `-h`.
    Huge,
    /// `-z`.
    Zones,
    /// `-f`.
    FreeAreas,
    /// `-V`.
    VmStat,
}

fn bad(what: String) -> CommandError {
    CommandError::BadArgs {
        command: "kmem",
        what,
        usage: KMEM_USAGE,
    }
}

/// crash's `hexadecimal()` test of an operand: hex digits, with or without `0x`.
fn hex_operand(word: &str) -> Option<u64> {
    let digits = word.strip_prefix("0x").unwrap_or(word);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

pub fn parse_kmem(words: &[&str]) -> Result<KmemRequest, CommandError> {
    let (mut info, mut slabs, mut verbose, mut vmalloc, mut pages, mut huge) =
        (false, false, false, false, false, false);
    let (mut zones, mut vm_stat, mut free) = (false, false, false);
    let (mut nodes, mut page_flags) = (false, false);
    let mut args = KmemArgs::default();
    let mut name = None;
    let mut addresses = Vec::new();
    for word in words {
        if *word == "-i=shared" {
            info = true;
            args.shared = true;
            continue;
        }
        match word.strip_prefix('-') {
            Some(options) if !options.is_empty() => {
                for option in options.chars() {
                    match option {
                        'i' => info = true,
                        'v' => vmalloc = true,
                        'p' => pages = true,
                        'h' => huge = true,
                        'z' => zones = true,
                        'f' => free = true,
                        'V' => vm_stat = true,
                        'n' => nodes = true,
                        'g' => page_flags = true,
                        's' => (slabs, verbose) = (true, false),
                        'S' => (slabs, verbose) = (true, true),
                        _ => {
                            return Err(bad(format!("option -{option} is not supported by kdive")))
                        }
                    }
                }
            }
            _ => match hex_operand(word) {
                Some(addr) => addresses.push(addr),
                None => {
                    if name.is_some() {
                        return Err(bad("only one kmem_cache reference is allowed".into()));
                    }
                    // crash's `\\name`: a cache named like a number or `list`.
                    name = Some(word.strip_prefix('\\').unwrap_or(word).to_owned());
                }
            },
        }
    }
    let flags = [
        info, slabs, vmalloc, pages, huge, zones, vm_stat, free, nodes, page_flags,
    ];
    if flags.iter().filter(|f| **f).count() > 1 {
        return Err(bad("only one flag allowed".into()));
    }
    if pages {
        if let Some(name) = name {
            return Err(bad(format!("unexpected argument: {name}")));
        }
        if addresses.is_empty() {
            return Ok(KmemRequest::MemMap);
        }
        return Ok(KmemRequest::Pages(addresses));
    }
    if page_flags {
        if let Some(name) = name {
            return Err(bad(format!("unexpected argument: {name}")));
        }
        return Ok(KmemRequest::PageFlags(addresses));
    }
    if vmalloc || huge || zones || vm_stat || free || nodes {
        if !addresses.is_empty() || name.is_some() {
            return Err(bad("no address arguments allowed with this option".into()));
        }
        return Ok(if huge {
            KmemRequest::Huge
        } else if zones {
            KmemRequest::Zones
        } else if vm_stat {
            KmemRequest::VmStat
        } else if free {
            KmemRequest::FreeAreas
        } else if nodes {
            KmemRequest::Nodes
        } else {
            KmemRequest::Vmalloc
        });
    }
    if info {
        if !addresses.is_empty() || name.is_some() {
            return Err(bad("no address arguments allowed with this option".into()));
        }
        return Ok(KmemRequest::Info(args));
    }
    if slabs {
        return Ok(KmemRequest::Slabs {
            verbose,
            name,
            addresses,
        });
    }
    if let Some(name) = name {
        return Err(bad(format!("unexpected argument: {name}")));
    }
    if addresses.is_empty() {
        return Err(bad("an option or an address is required".into()));
    }
    Ok(KmemRequest::Addresses(addresses))
}

/// The table's numbers, in pages (`null` when unreadable; `warnings` says why).
#[derive(Debug, Clone, Serialize)]
pub struct KmemRecord {
    pub page_size: u64,
    pub total_mem: Option<u64>,
    pub free: Option<u64>,
    pub used: Option<u64>,
    pub shared: Option<u64>,
    pub buffers: Option<u64>,
    pub cached: Option<i64>,
    pub slab: Option<u64>,
    pub slab_flagged_pages: Option<u64>,
    /// Absent when the kernel keeps no huge page pools crash can read.
    pub total_huge: Option<u64>,
    pub huge_free: Option<u64>,
    /// `null` when the kernel has no swap cache crash reads (7.x).
    pub total_swap: Option<u64>,
    pub swap_used: Option<u64>,
    pub swap_free: Option<u64>,
    pub commit_limit: Option<u64>,
    pub committed: Option<u64>,
    #[serde(skip)]
    pub show_shared: bool,
}

pub fn kmem(kernel: &Kernel, args: &KmemArgs, warnings: &mut Vec<String>) -> KmemRecord {
    let info = kmem_info(kernel);
    KmemRecord {
        show_shared: args.shared,
        ..record(&info, warnings)
    }
}

fn record(info: &KmemInfo, warnings: &mut Vec<String>) -> KmemRecord {
    warnings.extend(info.errors.iter().map(|e| format!("kmem: {e}")));
    if info.unreadable_mem_map_bytes > 0 {
        warnings.push(format!(
            "kmem: {} bytes of page structs are not in the dump; SHARED counts what is",
            info.unreadable_mem_map_bytes
        ));
    }
    KmemRecord {
        page_size: info.page_size,
        total_mem: info.total_ram,
        free: info.free,
        used: info
            .total_ram
            .zip(info.free)
            .map(|(t, f)| t.saturating_sub(f)),
        shared: info.shared,
        buffers: info.buffers,
        cached: info.cached,
        slab: info.slab,
        slab_flagged_pages: info.slab_flagged_pages,
        total_huge: info.huge.map(|h| h.total),
        huge_free: info.huge.map(|h| h.free),
        total_swap: info.swap.map(|s| s.total),
        swap_used: info.swap.map(|s| s.used),
        swap_free: info.swap.map(|s| s.total.saturating_sub(s.used)),
        commit_limit: info.commit.map(|c| c.limit),
        committed: info.commit.map(|c| c.committed),
        show_shared: false,
    }
}

impl KmemRecord {
    fn size(&self, pages: u64) -> String {
        size_string(pages.saturating_mul(self.page_size))
    }

    /// `%13s  %7ld  %11s         ----`
    fn total_line(&self, out: &mut dyn Write, label: &str, pages: Option<u64>) -> io::Result<()> {
        match pages {
            Some(p) => writeln!(
                out,
                "{label:>13}  {p:>7}  {:>11}         ----",
                self.size(p)
            ),
            None => writeln!(out, "{label:>13}  {:>7}  {:>11}         ----", "?", "?"),
        }
    }

    /// `%13s  %7ld  %11s  %3ld%% of TOTAL ...`; the percentage truncates, as crash's
    /// integer division does.
    fn share_line(
        &self,
        out: &mut dyn Write,
        label: &str,
        pages: Option<i64>,
        of: Option<u64>,
        of_name: &str,
    ) -> io::Result<()> {
        let Some(p) = pages else {
            return writeln!(
                out,
                "{label:>13}  {:>7}  {:>11}    ? of {of_name}",
                "?", "?"
            );
        };
        let unsigned = u64::try_from(p).unwrap_or(0);
        let pct = match of {
            Some(total) if total > 0 => unsigned.saturating_mul(100) / total,
            _ => 0,
        };
        writeln!(
            out,
            "{label:>13}  {p:>7}  {:>11}  {pct:>3}% of {of_name}",
            self.size(unsigned)
        )
    }

    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let signed = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        writeln!(out, "                 PAGES        TOTAL      PERCENTAGE")?;
        self.total_line(out, "TOTAL MEM", self.total_mem)?;
        let mem = "TOTAL MEM";
        self.share_line(out, "FREE", signed(self.free), self.total_mem, mem)?;
        self.share_line(out, "USED", signed(self.used), self.total_mem, mem)?;
        if self.show_shared {
            self.share_line(out, "SHARED", signed(self.shared), self.total_mem, mem)?;
        }
        self.share_line(out, "BUFFERS", signed(self.buffers), self.total_mem, mem)?;
        self.share_line(out, "CACHED", self.cached, self.total_mem, mem)?;
        self.share_line(out, "SLAB", signed(self.slab), self.total_mem, mem)?;
        if self.total_huge.is_some() {
            writeln!(out)?;
            self.total_line(out, "TOTAL HUGE", self.total_huge)?;
            self.share_line(
                out,
                "HUGE FREE",
                signed(self.huge_free),
                self.total_huge,
                "TOTAL HUGE",
            )?;
        }
        writeln!(out)?;
        if self.total_swap.is_some() {
            let swap = "TOTAL SWAP";
            self.total_line(out, swap, self.total_swap)?;
            self.share_line(
                out,
                "SWAP USED",
                signed(self.swap_used),
                self.total_swap,
                swap,
            )?;
            self.share_line(
                out,
                "SWAP FREE",
                signed(self.swap_free),
                self.total_swap,
                swap,
            )?;
        }
        if let (Some(limit), Some(committed)) = (self.commit_limit, self.committed) {
            writeln!(out)?;
            self.total_line(out, "COMMIT LIMIT", Some(limit))?;
            if limit > 0 {
                self.share_line(
                    out,
                    "COMMITTED",
                    signed(Some(committed)),
                    Some(limit),
                    "TOTAL LIMIT",
                )?;
            } else {
                self.total_line(out, "COMMITTED", Some(committed))?;
            }
        }
        Ok(())
    }
}

/// `kmem`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "kmem",
    aliases: &[],
    summary: "kernel memory usage, slab caches, what holds an address",
    usage: KMEM_USAGE,
    description: "-i  the memory summary: total, free, used, buffers, cached, slab, total and\n\
    free huge pages, swap, committed memory, as crash prints it\n\
  -i=shared  the same with SHARED (pages mapped more than once: a walk of every page)\n\
  -v  the vmalloc areas: VMAP_AREA VM_STRUCT ADDRESS RANGE SIZE, by address\n\
  -h  the huge page pools: HSTATE SIZE FREE TOTAL NAME\n\
  -z  each zone of each node: its address, name, size, present pages, min/low/high\n\
    watermarks and vm_stat counters\n\
  -f  each zone's buddy free lists by order and migrate type: AREA SIZE\n\
    FREE_AREA_STRUCT BLOCKS PAGES, and nr_free_pages checked against the lists\n\
  -V  the vm_zone_stat, vm_node_stat, vm_numa_stat (before 5.14) counters and the\n\
    vm_event_states summed over the CPUs\n\
  -p address  the page of a page struct, kernel virtual or physical address (PAGE\n\
    PHYSICAL MAPPING INDEX CNT FLAGS)\n\
  -p  every page of every present memory section, the same columns (one line a page;\n\
    page structs that are not in the dump print as zeros, as crash prints them)\n\
  -n  each memory node (size, pglist_data, node_zones, first page) and its zones, the\n\
    present memory sections (NR SECTION CODED_MEM_MAP MEM_MAP STATE PFN) and the\n\
    memory blocks of the memory bus\n\
  -g [flags]  the page flag bits of enum pageflags (PAGE-FLAG BIT VALUE); with a\n\
    flags value, the bits set in it\n\
  -s [cache]  the slab caches in slab_caches order: CACHE OBJSIZE ALLOCATED TOTAL SLABS\n\
    SSIZE NAME, counted as crash counts them (per-CPU slab and freelist, per-CPU partial\n\
    slabs, each node's partial list and counters)\n\
  -S [cache]  the same with each CPU's slab (every object, [allocated] or free) and\n\
    partial slabs, and each node's counters, partial and (when tracked) full slabs\n\
  -s|-S address  the cache and slab holding a slab object (-S: every object of the slab)\n\
  address  what holds the address: its symbol (kernel image, modules), the vmalloc area\n\
    and the task whose stack it is in, its slab cache, slab and object (FREE or\n\
    [ALLOCATED]), the task whose task_struct it is in, the free block of a free page\n\
    (ZONE, AREA, \"(ADDR is Nth of M pages)\"), and its page (PAGE PHYSICAL MAPPING INDEX\n\
    CNT FLAGS)",
    examples: &[
        "kmem -i              memory usage summary",
        "kmem -i=shared       with the shared pages",
        "kmem -v              the vmalloc areas",
        "kmem -h              the huge page pools",
        "kmem -z              the memory zones",
        "kmem -f              the free lists of each zone",
        "kmem -V              the vmstat counters and vm events",
        "kmem -p ffff888004c9c900  the page of an address",
        "kmem -p              every page of the mem_map",
        "kmem -n              memory nodes, sections and blocks",
        "kmem -g              the page flag bits",
        "kmem -g 400          the flag bits set in a value",
        "kmem -s              every slab cache",
        "kmem -s dentry       one cache",
        "kmem -S kmalloc-128  one cache's slabs and objects",
        "kmem ffff888004c9c900  the cache, slab, object and page of an address",
    ],
    options: &[
        "-i",
        "-i=shared",
        "-f",
        "-v",
        "-V",
        "-z",
        "-h",
        "-p",
        "-n",
        "-g",
        "-s",
        "-S",
    ],
    operands: Operand::None,
    schema: 3,
    run: run_kmem,
};

fn run_kmem(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Ok(match parse_kmem(&words)? {
        KmemRequest::Info(args) => Box::new(kmem(session.kernel(), &args, warnings)),
        KmemRequest::Slabs {
            verbose,
            name,
            addresses,
        } => Box::new(crate::kmem_slab::slabs(
            session,
            verbose,
            name.as_deref(),
            &addresses,
            warnings,
        )?),
        KmemRequest::Addresses(addresses) => Box::new(crate::kmem_address::addresses(
            session, &addresses, warnings,
        )?),
        KmemRequest::Vmalloc => Box::new(crate::kmem_vmalloc::vmalloc(session, warnings)?),
        KmemRequest::Huge => Box::new(crate::kmem_huge::huge(session)?),
        KmemRequest::Zones => Box::new(crate::kmem_zone::zone_stats(session)?),
        KmemRequest::VmStat => Box::new(crate::kmem_zone::vm_stat(session, warnings)?),
        KmemRequest::FreeAreas => Box::new(crate::kmem_zone::free_areas(session, warnings)?),
        KmemRequest::Pages(addresses) => {
            Box::new(crate::kmem_page::pages(session, &addresses, warnings)?)
        }
        KmemRequest::MemMap => Box::new(crate::kmem_mem_map::mem_map(session, warnings)?),
        KmemRequest::Nodes => Box::new(crate::kmem_nodes::nodes(session, warnings)?),
        KmemRequest::PageFlags(values) => {
            Box::new(crate::kmem_flags::page_flags(session, &values)?)
        }
    })
}

crate::impl_record!(KmemRecord);

#[cfg(test)]
mod tests {
    use super::*;
    use kdive_kernel::meminfo::{Commit, HugePages, Swap};

    #[test]
    fn text_layout_is_crashs() {
        let info = KmemInfo {
            page_size: 4096,
            total_ram: Some(31262),
            free: Some(19843),
            shared: Some(453),
            buffers: Some(0),
            cached: Some(5139),
            slab: Some(2263),
            slab_flagged_pages: Some(1000),
            huge: Some(HugePages { total: 0, free: 0 }),
            swap: Some(Swap { total: 0, used: 0 }),
            commit: Some(Commit {
                limit: 15631,
                committed: 4384,
            }),
            ..KmemInfo::default()
        };
        let mut warnings = Vec::new();
        let record = KmemRecord {
            show_shared: true,
            ..record(&info, &mut warnings)
        };
        assert!(warnings.is_empty());
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        let expected = "                 PAGES        TOTAL      PERCENTAGE
    TOTAL MEM    31262     122.1 MB         ----
         FREE    19843      77.5 MB   63% of TOTAL MEM
         USED    11419      44.6 MB   36% of TOTAL MEM
       SHARED      453       1.8 MB    1% of TOTAL MEM
      BUFFERS        0            0    0% of TOTAL MEM
       CACHED     5139      20.1 MB   16% of TOTAL MEM
         SLAB     2263       8.8 MB    7% of TOTAL MEM

   TOTAL HUGE        0            0         ----
    HUGE FREE        0            0    0% of TOTAL HUGE

   TOTAL SWAP        0            0         ----
    SWAP USED        0            0    0% of TOTAL SWAP
    SWAP FREE        0            0    0% of TOTAL SWAP

 COMMIT LIMIT    15631      61.1 MB         ----
    COMMITTED     4384      17.1 MB   28% of TOTAL LIMIT
";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn unreadable_counters_are_marked() {
        let info = KmemInfo {
            page_size: 4096,
            total_ram: Some(1000),
            ..KmemInfo::default()
        };
        let mut warnings = Vec::new();
        let record = record(&info, &mut warnings);
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("         FREE        ?            ?    ? of TOTAL MEM"));
        assert!(!text.contains("TOTAL SWAP"));
    }

    #[test]
    fn parses_options() {
        let info = |shared| KmemRequest::Info(KmemArgs { shared });
        assert_eq!(parse_kmem(&["-i"]).unwrap(), info(false));
        assert_eq!(parse_kmem(&["-i=shared"]).unwrap(), info(true));
        assert!(parse_kmem(&[]).is_err());
        assert!(parse_kmem(&["-x"]).is_err());
        assert!(parse_kmem(&["-i", "x"]).is_err());
        assert!(parse_kmem(&["-i", "-s"]).is_err());
        assert_eq!(parse_kmem(&["-v"]).unwrap(), KmemRequest::Vmalloc);
        assert!(parse_kmem(&["-v", "-i"]).is_err());
        assert!(parse_kmem(&["-v", "ffff888004c9c900"]).is_err());
        assert_eq!(
            parse_kmem(&["-p", "1000"]).unwrap(),
            KmemRequest::Pages(vec![0x1000])
        );
        assert_eq!(parse_kmem(&["-p"]).unwrap(), KmemRequest::MemMap);
        assert_eq!(parse_kmem(&["-n"]).unwrap(), KmemRequest::Nodes);
        assert!(parse_kmem(&["-n", "1000"]).is_err());
        assert!(parse_kmem(&["-n", "-p"]).is_err());
        assert_eq!(parse_kmem(&["-g"]).unwrap(), KmemRequest::PageFlags(vec![]));
        assert_eq!(
            parse_kmem(&["-g", "400", "0x10"]).unwrap(),
            KmemRequest::PageFlags(vec![0x400, 0x10])
        );
        assert!(parse_kmem(&["-g", "-z"]).is_err());
        assert_eq!(parse_kmem(&["-h"]).unwrap(), KmemRequest::Huge);
        assert!(parse_kmem(&["-h", "-v"]).is_err());
        assert_eq!(parse_kmem(&["-z"]).unwrap(), KmemRequest::Zones);
        assert_eq!(parse_kmem(&["-V"]).unwrap(), KmemRequest::VmStat);
        assert!(parse_kmem(&["-z", "-V"]).is_err());
        assert_eq!(parse_kmem(&["-f"]).unwrap(), KmemRequest::FreeAreas);
        assert!(parse_kmem(&["-f", "1000"]).is_err());
        assert!(parse_kmem(&["-z", "1000"]).is_err());
        assert!(parse_kmem(&["-p", "-v", "1000"]).is_err());
        assert_eq!(
            parse_kmem(&["-s"]).unwrap(),
            KmemRequest::Slabs {
                verbose: false,
                name: None,
                addresses: vec![]
            }
        );
        assert_eq!(
            parse_kmem(&["-S", "kmalloc-64"]).unwrap(),
            KmemRequest::Slabs {
                verbose: true,
                name: Some("kmalloc-64".into()),
                addresses: vec![]
            }
        );
        // A cache named like a number takes crash's backslash.
        assert_eq!(
            parse_kmem(&["-s", "\\abc"]).unwrap(),
            KmemRequest::Slabs {
                verbose: false,
                name: Some("abc".into()),
                addresses: vec![]
            }
        );
        assert_eq!(
            parse_kmem(&["ffff888004c9c900", "0x10"]).unwrap(),
            KmemRequest::Addresses(vec![0xffff_8880_04c9_c900, 0x10])
        );
        assert!(parse_kmem(&["dentry"]).is_err());
        assert!(parse_kmem(&["-s", "a-b", "c-d"]).is_err());
    }
}
