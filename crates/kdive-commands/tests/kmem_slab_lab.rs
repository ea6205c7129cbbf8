//! `kmem -s`, `kmem -S` and `kmem ADDRESS` on the lab's real dumps (the null-init dump of
//! every kernel series and the busy dumps), against the oracles run at test time:
//!
//! - crash 9.0.2 (and crash 8.0.2 on 5.10): the same text, line for line, for the cache
//!   table, named caches with `-s` and `-S`, every cache with `-S`, `-s`/`-S` of an
//!   object's address (and `-s` of its physical address), and
//!   `kmem ADDRESS` of every task_struct drgn lists (and of an address inside one), of an
//!   allocated and a free `dentry`, and of a page that is not slab (the mem_map line only).
//!   crash 9.0.2 cannot read 7.x's slabs ("invalid structure member offset:
//!   kmem_cache_local_node" / "page_first_page": 7.x moved `kmem_cache.node[]` into
//!   `per_node[]` and `compound_head` into `compound_info`; "-S not supported for this kernel":
//!   no `kmem_cache.cpu_slab`); there the test checks that crash still says so
//!   (docs/kernels.md).
//! - drgn 0.3.0: `for_each_slab_cache()` gives the caches in kdive's order and
//!   `slab_cache_usage()` each cache's slabs and objects (kdive's SLABS and TOTAL) and free
//!   objects: kdive's ALLOCATED is drgn's objects less its free objects less the objects other
//!   CPUs freed onto a CPU slab's own freelist, which drgn leaves out and crash counts free.
//!   `slab_object_info()` names the cache of every address above and says whether the object
//!   is allocated, as kdive does. On 7.x drgn counts objects in per-CPU and per-node sheaves
//!   as free, as kdive.
//!
//! Without a lab the test prints SKIP and passes; with CI=true it fails, and fails when crash
//! 9.0.2 compared nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use kdive_commands::{KmemAddressRecord, KmemSlabRecord, Report, Session};
use kdive_dump::{PhysAddr, Vmcore};
use kdive_kernel::Kernel;
use kdive_testkit::lab::{self, files, is_stable, lab_root, BadJson, Crash};
use serde_json::Value;

fn open(m: &Value) -> Kernel {
    let vmlinux = m["kernel"]["vmlinux"].as_str().expect("vmlinux");
    let vmcore = Vmcore::open_paths(&files(m)).expect("dump opens");
    Kernel::open(vmcore, Path::new(vmlinux)).expect("kernel opens")
}

fn text(report: &Report) -> String {
    let mut out = Vec::new();
    report.write_text(&mut out).expect("renders");
    String::from_utf8_lossy(&out).trim().to_owned()
}

/// drgn's caches (address, name, usage) and objects (cache name, allocated), one a line.
const DRGN_SCRIPT: &str = r#"
import sys, drgn
from drgn.helpers.linux.slab import for_each_slab_cache, slab_cache_usage, slab_object_info
from drgn.helpers.linux.cpumask import for_each_online_cpu, for_each_possible_cpu
from drgn.helpers.linux.percpu import per_cpu_ptr
p = drgn.Program()
p.set_core_dump(sys.argv[1])
p.load_debug_info([sys.argv[2]])
def remote_frees(c):
    # Objects freed from another CPU onto a CPU slab's own freelist: objects - inuse.
    try:
        cpu_slab = c.cpu_slab
    except AttributeError:
        return 0
    n = 0
    for cpu in for_each_online_cpu(p):
        kcc = per_cpu_ptr(cpu_slab, cpu)
        s = kcc.slab if hasattr(kcc, 'slab') else kcc.page
        if s:
            n += s.objects.value_() - s.inuse.value_()
    return n
def offline_cpu_slab_objects(c):
    # The objects of the CPU slabs and per-CPU partial slabs of CPUs the panic took offline
    # (arm64 stops the others with set_cpu_online(false)): slab_cache_usage() walks online
    # CPUs' only.
    try:
        cpu_slab = c.cpu_slab
    except AttributeError:
        return 0
    online = set(for_each_online_cpu(p))
    n = 0
    for cpu in for_each_possible_cpu(p):
        if cpu in online:
            continue
        kcc = per_cpu_ptr(cpu_slab, cpu)
        s = kcc.slab if hasattr(kcc, 'slab') else kcc.page
        if s:
            n += s.objects.value_()
        # and its per-CPU partial slabs (a bounded walk)
        s = kcc.partial if hasattr(kcc, 'partial') else None
        for _ in range(10000):
            if not s:
                break
            n += s.objects.value_()
            s = s.next
    return n
for c in for_each_slab_cache(p):
    name = c.name.string_().decode()
    try:
        u = slab_cache_usage(c)
        print('cache %x %d %d %d %d %d %s' % (c.value_(), u.num_slabs, u.num_objs, u.free_objs, remote_frees(c), offline_cpu_slab_objects(c), name))
    except Exception as e:
        print('cache %x error %s' % (c.value_(), type(e).__name__))
for a in sys.argv[3:]:
    try:
        info = slab_object_info(p, int(a, 16))
    except Exception as e:
        print('object', a, 'error', type(e).__name__)
        continue
    if info is None:
        print('object', a, 'none')
    else:
        print('object', a, int(bool(info.allocated)), info.slab_cache.name.string_().decode())
"#;

/// drgn's `slab_cache_usage()` of a cache: slabs, objects, free objects, the objects other
/// CPUs freed onto the CPU slabs' own freelists, and the objects of offline CPUs' CPU and
/// per-CPU partial slabs (which drgn does not walk).
type Usage = (i64, i64, i64, i64, i64);

struct Drgn {
    /// Address, then its usage, `None` where drgn failed.
    caches: Vec<(u64, Option<Usage>)>,
    /// Address -> `(allocated, cache)`, `None` for not slab.
    objects: BTreeMap<u64, Option<(bool, String)>>,
}

fn drgn(m: &Value, addresses: &[u64]) -> Option<Drgn> {
    let python: PathBuf = lab_root().join("tools/drgn-0.3.0/bin/python");
    let output = Process::new(python)
        .arg("-c")
        .arg(DRGN_SCRIPT)
        .arg(files(m).first()?)
        .arg(m["kernel"]["vmlinux"].as_str()?)
        .args(addresses.iter().map(|a| format!("{a:x}")))
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let out = String::from_utf8_lossy(&output.stdout);
    let mut drgn = Drgn {
        caches: Vec::new(),
        objects: BTreeMap::new(),
    };
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    for line in out.lines() {
        let f: Vec<&str> = line.splitn(8, ' ').collect();
        match f.as_slice() {
            ["cache", addr, "error", ..] => drgn.caches.push((hex(addr)?, None)),
            ["cache", addr, slabs, objs, free, remote, offline, _name] => drgn.caches.push((
                hex(addr)?,
                Some((
                    slabs.parse().ok()?,
                    objs.parse().ok()?,
                    free.parse().ok()?,
                    remote.parse().ok()?,
                    offline.parse().ok()?,
                )),
            )),
            ["object", addr, "none"] => {
                drgn.objects.insert(hex(addr)?, None);
            }
            ["object", _, "error", ..] => {}
            ["object", addr, allocated, name] => {
                drgn.objects
                    .insert(hex(addr)?, Some((*allocated == "1", (*name).to_owned())));
            }
            _ => {}
        }
    }
    Some(drgn)
}

/// The first allocated and the first free object of a cache's CPU slabs (`kmem -S`), or,
/// where the kernel has none (7.x), of its first node partial slab (`kmem -S` of the slab's
/// memory lists its objects).
fn sample_objects(session: &mut Session<'_>, cache: &str) -> Vec<u64> {
    let report = session.execute(&format!("kmem -S {cache}")).expect("runs");
    let record = report.record::<KmemSlabRecord>().expect("a slab record");
    let mut slabs: Vec<kdive_commands::SlabRow> = Vec::new();
    for cache in &record.caches {
        for cpu in cache.cpus.iter().flatten() {
            slabs.extend(cpu.slab.iter().chain(cpu.partial.iter().flatten()).cloned());
        }
    }
    if slabs.is_empty() {
        let partial = record
            .caches
            .iter()
            .flat_map(|c| c.nodes.iter().flatten())
            .flat_map(|n| n.partial.first())
            .next();
        if let Some(slab) = partial {
            let report = session
                .execute(&format!("kmem -S {:x}", slab.memory.0))
                .expect("runs");
            let record = report.record::<KmemSlabRecord>().expect("a slab record");
            slabs.extend(record.caches.iter().filter_map(|c| c.slab.clone()));
        }
    }
    let objects: Vec<_> = slabs
        .iter()
        .flat_map(|s| s.objects.iter().flatten())
        .collect();
    let allocated = objects.iter().find(|o| o.allocated);
    let free = objects.iter().find(|o| !o.allocated);
    allocated
        .into_iter()
        .chain(free)
        .map(|o| o.address.0)
        .collect()
}

/// The direct-map address of `init_task`'s page: kernel data, not slab (a reserved page).
fn not_slab_address(kernel: &Kernel) -> Option<u64> {
    let phys = kernel.virt_to_phys(kernel.symbol("init_task").ok()?).ok()?;
    kernel
        .address_space()
        .direct_map_virt(PhysAddr(phys.0))
        .map(|v| v.0)
}

/// The crash 9.0.2 failures on 7.x, which has no `kmem_cache.node[]` or
/// `page.compound_head` (docs/kernels.md).
fn crash9_cannot_read_7x_slabs(m: &Value, version: Crash, theirs: &str) -> bool {
    version == Crash::V9
        && m["kernel"]["series"] == "7.x"
        && (theirs.contains("invalid structure member offset: kmem_cache_local_node")
            || theirs.contains("invalid structure member offset: page_first_page")
            || theirs == "kmem: -S not supported for this kernel")
}

#[test]
fn kmem_slabs_match_crash_and_drgn() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let per_series = lab::null_init_dump_per_series(&manifests);
    let busy = manifests.iter().filter(|m| {
        m["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-busy.kdump-zstd-d31"))
            && lab::filtered_unsupported(m).is_none()
    });
    let mut agreement = lab::Agreement::default();
    let mut mismatches = Vec::new();
    let mut drgn_compared = 0;
    for m in per_series.into_iter().chain(busy).filter(|m| is_stable(m)) {
        let name = m["name"].as_str().unwrap_or("?");
        let kernel = open(m);
        let mut session = Session::new(&kernel, &[]);
        let table = session.execute("kmem -s").expect("kmem -s runs");
        assert!(table.warnings.is_empty(), "{name}: {:?}", table.warnings);
        let caches = table.record::<KmemSlabRecord>().expect("a slab record");
        let samples = sample_objects(&mut session, "dentry");
        assert_eq!(samples.len(), 2, "{name}: an allocated and a free dentry");

        // Every task_struct drgn found (spread over the list), one address inside one, the
        // dentry samples and a page that is not slab.
        let oracle = lab::drgn_oracle(m).expect("drgn oracle");
        let tasks: Vec<u64> = oracle["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| lab::json_hex(&t["task"]))
            .collect();
        assert!(!tasks.is_empty(), "{name}: drgn lists no tasks");
        let step = (tasks.len() / 8).max(1);
        let mut addresses: Vec<u64> = tasks.iter().step_by(step).copied().collect();
        addresses.push(tasks[0] + 0x10);
        addresses.extend(&samples);
        let page_only = not_slab_address(&kernel).expect("init_task's direct-map address");
        addresses.push(page_only);

        let mut commands: Vec<String> = [
            "kmem -s",
            "kmem -s task_struct",
            "kmem -S task_struct",
            "kmem -S kmalloc-128",
            "kmem -S dentry",
        ]
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
        commands.push(format!("kmem -s {:x}", tasks[0]));
        commands.push(format!("kmem -S {:x}", samples[0]));
        // Every cache's slabs and objects, and a physical address (crash's direct map).
        commands.push("kmem -S".into());
        let phys = kernel
            .virt_to_phys(kdive_kernel::VirtAddr(samples[1]))
            .expect("translates");
        commands.push(format!("kmem -s {:x}", phys.0));
        commands.extend(addresses.iter().map(|a| format!("kmem {a:x}")));
        let ours: Vec<Report> = commands
            .iter()
            .map(|c| session.execute(c).expect("runs"))
            .collect();
        for (command, report) in commands.iter().zip(&ours) {
            // 7.x: -S says that it lists no per-CPU sheaves.
            assert!(
                report.warnings.iter().all(|w| w.contains("sheaves")),
                "{name}: {command}: {:?}",
                report.warnings
            );
        }

        // drgn: the caches in the same order with the same counts, and each object.
        let Some(d) = drgn(m, &addresses) else {
            kdive_testkit::skip!("{name}: SKIP (drgn did not run)");
            continue;
        };
        let our_caches: Vec<u64> = caches.caches.iter().map(|c| c.address.0).collect();
        let their_caches: Vec<u64> = d.caches.iter().map(|c| c.0).collect();
        assert_eq!(our_caches, their_caches, "{name}: slab_caches order");
        let mut counted = 0;
        let mut drgn_without_cpu_freelists = 0;
        for (cache, (_, usage)) in caches.caches.iter().zip(&d.caches) {
            let Some((slabs, objs, free, remote, offline)) = usage else {
                continue;
            };
            // drgn's usage leaves out the objects freed onto a CPU slab's own freelist from
            // other CPUs, which crash (and kdive) count free (docs/kernels.md).
            let ours = (cache.slabs, cache.total, cache.allocated);
            // arm64's panic takes the other CPUs offline, and drgn walks the freelists of
            // online CPUs only: kdive (as crash, every CPU) may find up to the objects of
            // their CPU slabs more free (docs/kernels.md).
            let drgn_allocated = objs - free - remote;
            let offline_free = cache.allocated.map(|a| drgn_allocated - a);
            if *offline > 0
                && ours.0 == Some(*slabs)
                && ours.1 == Some(*objs)
                && offline_free.is_some_and(|f| (1..=*offline).contains(&f))
            {
                drgn_without_cpu_freelists += 1;
            } else if ours != (Some(*slabs), Some(*objs), Some(drgn_allocated)) {
                mismatches.push(format!(
                    "{name}: {}: kdive slabs/total/allocated {:?}/{:?}/{:?}, drgn slabs {slabs} \
                     objects {objs} free {free} remote frees {remote}",
                    cache.name, cache.slabs, cache.total, cache.allocated
                ));
            }
            counted += 1;
        }
        let mut objects = 0;
        for (addr, report) in addresses.iter().zip(&ours[9..]) {
            let record = report
                .record::<KmemAddressRecord>()
                .expect("address record");
            let row = &record.addresses[0];
            let kdive = row.cache.as_ref().and_then(|c| {
                let object = c.slab.as_ref()?.objects.as_ref()?.first()?;
                Some((object.allocated, c.name.clone()))
            });
            match d.objects.get(addr) {
                Some(theirs) if *theirs == kdive => objects += 1,
                Some(theirs) => mismatches.push(format!(
                    "{name}: kmem {addr:x}: kdive {kdive:?}, drgn {theirs:?}"
                )),
                None => {}
            }
        }
        for task in tasks.iter().step_by(step) {
            let theirs = d.objects.get(task).cloned().flatten();
            assert_eq!(
                theirs,
                Some((true, "task_struct".to_owned())),
                "{name}: drgn on task {task:x}"
            );
        }
        assert_eq!(d.objects.get(&page_only), Some(&None), "{name}: not slab");
        println!(
            "{name}: drgn: {counted} caches' counts ({drgn_without_cpu_freelists} of them with \
             free objects on an offline CPU's slab, which drgn does not walk) and {objects} \
             objects compared"
        );
        drgn_compared += counted;

        for version in lab::crash_versions_reading_whole(m) {
            let Some(theirs) = lab::crash_session(m, version, &commands) else {
                kdive_testkit::skip!("{name}: SKIP ({version} did not run)");
                continue;
            };
            let (mut same, mut known) = (0, 0);
            for ((command, ours), theirs) in commands.iter().zip(&ours).zip(&theirs) {
                if text(ours) == *theirs {
                    same += 1;
                } else if crash9_cannot_read_7x_slabs(m, version, theirs) {
                    known += 1;
                } else {
                    mismatches.push(format!(
                        "{name}: {command}: {version}\n{theirs}\n--- kdive\n{}",
                        text(ours)
                    ));
                }
            }
            agreement.add_dump(version, m, commands.len(), same, known);
        }
    }
    for m in &mismatches {
        println!("MISMATCH {m}\n");
    }
    assert!(mismatches.is_empty(), "{} mismatches", mismatches.len());
    if drgn_compared == 0 {
        kdive_testkit::skip!("SKIP (no slab counts compared with drgn)");
    }
    agreement.finish("kmem -s/-S/ADDRESS commands");
}

/// Every lab dump, filtered, truncated, split or flattened: `kmem -s` and `kmem -S dentry` run
/// to the end, and where a dump lacks pages the slab reader needs (7.x's kdump-compressed
/// `-d 31` dumps, which makedumpfile filtered without knowing the kernel: it dropped pages
/// holding per-CPU sheaves) the warnings of `kmem -s` say which page is missing instead of
/// giving wrong counts silently.
#[test]
fn kmem_slabs_run_on_every_dump() {
    let root = lab_root();
    let manifests = lab::dump_manifests(&root, BadJson::Skip);
    if manifests.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut checked = 0;
    for m in &manifests {
        let name = m["name"].as_str().unwrap_or("?");
        let Ok(vmcore) = Vmcore::open_paths(&files(m)) else {
            continue;
        };
        let vmlinux = m["kernel"]["vmlinux"].as_str().expect("vmlinux");
        let Ok(kernel) = Kernel::open(vmcore, Path::new(vmlinux)) else {
            continue;
        };
        let mut session = Session::new(&kernel, &[]);
        for command in ["kmem -s", "kmem -S dentry"] {
            match session.execute(command) {
                Ok(report) => {
                    // makedumpfile's ELF output of the same filtering kept the pages. `kmem -s`
                    // reads every cache, so it meets the dropped pages; one cache (`-S dentry`)
                    // may have all its pages (7.x-kthread-null's did).
                    if lab::filtered_unsupported(m).is_some()
                        && m["format"] != "elf"
                        && command == "kmem -s"
                    {
                        assert!(
                            report.warnings.iter().any(|w| w.contains("excluded")),
                            "{name}: {command}: no word of the excluded pages: {:?}",
                            report.warnings
                        );
                    }
                    if is_stable(m) && m["truncated"].as_bool() != Some(true) {
                        assert!(
                            report.warnings.iter().all(|w| w.contains("sheaves")),
                            "{name}: {command}: {:?}",
                            report.warnings
                        );
                    }
                }
                Err(e) => assert!(
                    m["truncated"].as_bool() == Some(true) || !is_stable(m),
                    "{name}: {command}: {e}"
                ),
            }
        }
        checked += 1;
    }
    println!("kmem -s and -S ran on {checked} dumps");
}
