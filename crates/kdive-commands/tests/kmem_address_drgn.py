# Addresses for kmem_address_lab.rs, picked and classified by drgn 0.3.0 on one dump:
#   drgn_python kmem_address_drgn.py DUMP VMLINUX
# prints one line per address: `LABEL ADDRESS none` (slab_object_info() says None),
# `LABEL ADDRESS slab ALLOCATED OBJECT INDEX OBJECTS CACHE` (ALLOCATED 1, 0 or ? for
# unknown; INDEX the object's number in its slab, OBJECTS the slab's object count) or
# `LABEL ADDRESS error TYPE`, and `online-cpus N...` (drgn's online CPUs). Every pick is bounded: a few objects of a few caches, a few
# tasks, vmap areas, modules, page frames and free pages.
import sys

import drgn
from drgn import cast
from drgn.helpers.linux.list import list_for_each_entry
from drgn.helpers.linux.mm import (
    for_each_valid_page_range,
    for_each_vmap_area,
    page_to_virt,
    pfn_to_virt,
)
from drgn.helpers.linux.module import for_each_module, module_address_regions
from drgn.helpers.linux.cpumask import for_each_online_cpu
from drgn.helpers.linux.percpu import per_cpu_ptr
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.slab import (
    _get_slab_type,
    find_slab_cache,
    slab_cache_for_each_allocated_object,
    slab_object_info,
)

p = drgn.Program()
p.set_core_dump(sys.argv[1])
p.load_debug_info([sys.argv[2]])

picked = []


def pick(label, addr):
    picked.append((label, int(addr) & 0xFFFFFFFFFFFFFFFF))


def first(iterable, n):
    out = []
    for x in iterable:
        out.append(x)
        if len(out) >= n:
            break
    return out


def slab_of(cache):
    """CPU 0's slab, else the first slab of node 0's partial list (7.x has no CPU slabs)."""
    try:
        kcc = per_cpu_ptr(cache.cpu_slab, 0)
        slab = kcc.slab if has_member(kcc, "slab") else kcc.page
        if slab:
            return slab
    except AttributeError:
        pass
    try:
        node = cache.per_node[0].node if has_member(cache, "per_node") else cache.node[0]
    except AttributeError:
        return None
    # drgn's own choice of the slab type and its list member (slab.py).
    slab_type = _get_slab_type(p).type
    member = "slab_list" if slab_type.has_member("slab_list") else "lru"
    for slab in first(list_for_each_entry(slab_type, node.partial.address_of_(), member), 1):
        return slab
    return None


def has_member(obj, name):
    try:
        obj.member_(name)
        return True
    except LookupError:
        return False


# Allocated objects of a few caches and an address inside each, and the objects of a slab
# that has free ones (CPU 0's, or a partial one): two free, one allocated.
for name in ["task_struct", "dentry", "kmalloc-64", "kmalloc-256", "inode_cache",
             "vm_area_struct", "filp", "kmalloc-1k", "kmalloc-4k"]:
    try:
        cache = find_slab_cache(p, name)
        if not cache:
            continue
        for obj in first(slab_cache_for_each_allocated_object(cache, "void"), 2):
            pick("slab-object", obj.value_())
            pick("slab-inside", obj.value_() + 0x18)
        slab = slab_of(cache)
        if slab is None:
            continue
        size = cache.size.value_()
        base = page_to_virt(cast("struct page *", slab)).value_()
        free, allocated = 0, 0
        for i in range(slab.objects.value_()):
            info = slab_object_info(p, base + i * size)
            if info is None or info.allocated is None:
                continue
            if not info.allocated and free < 2:
                pick("slab-free", info.address)
                free += 1
            elif info.allocated and allocated < 1:
                pick("slab-object", info.address)
                allocated += 1
    except Exception as e:
        print("pick", name, "error", type(e).__name__, e, file=sys.stderr)

# Task stacks (not init's: its stack is the kernel image's init_stack), page tables.
for t in first((t for t in for_each_task(p) if t.pid.value_() > 0), 3):
    try:
        pick("stack", t.stack.value_() + 0x100)
        if t.mm:
            pick("pgd", t.mm.pgd.value_())
    except Exception as e:
        print("pick stack error", type(e).__name__, file=sys.stderr)
try:
    pick("pgd", p["init_mm"].pgd.value_())
except Exception as e:
    print("pick pgd error", type(e).__name__, file=sys.stderr)

# vmalloc areas with a vm_struct (crash lists only those).
try:
    for va in first((va for va in for_each_vmap_area(p) if va.vm), 4):
        pick("vmalloc", va.va_start.value_() + 0x10)
except Exception as e:
    print("pick vmalloc error", type(e).__name__, file=sys.stderr)

# Module text and data.
try:
    for mod in first(for_each_module(p), 2):
        for start, length in module_address_regions(mod)[:2]:
            if length:
                pick("module", start + 0x10)
except Exception as e:
    print("pick module error", type(e).__name__, file=sys.stderr)

# Kernel image symbols.
for sym in ["jiffies", "schedule", "init_task"]:
    try:
        pick("symbol", p[sym].address_ + 4)
    except Exception as e:
        print("pick symbol error", type(e).__name__, file=sys.stderr)

# Page frames spread over memory.
try:
    pfns = []
    for start, end, _ in for_each_valid_page_range(p):
        pfns.append((start, end))
    total = sum(e - s for s, e in pfns)
    step = max(total // 40, 1)
    n = 0
    for s, e in pfns:
        for pfn in range(s + (-n) % step, e, step):
            pick("page", pfn_to_virt(p, pfn).value_() + 0x40)
        n += e - s
except Exception as e:
    print("pick page error", type(e).__name__, file=sys.stderr)

# Free pages: the first block of each order's first non-empty free list of each zone.
try:
    member = "buddy_list" if p.type("struct page").has_member("buddy_list") else "lru"
    try:
        pgdat = p["node_data"][0]
    except KeyError:
        pgdat = p["contig_page_data"].address_of_()
    for zone in pgdat.node_zones:
        if not zone.present_pages:
            continue
        for order in range(len(zone.free_area)):
            area = zone.free_area[order]
            for fl in area.free_list:
                head = fl.address_of_()
                pages = first(list_for_each_entry("struct page", head, member), 1)
                if pages:
                    pick("free-page", page_to_virt(pages[0]).value_() + 0x80)
                    break
except Exception as e:
    print("pick free-page error", type(e).__name__, file=sys.stderr)

# crash and kdive count free the objects on every CPU's freelist; drgn only the online CPUs'
# (at a panic the other CPUs are taken offline).
print("online-cpus", *[int(c) for c in for_each_online_cpu(p)])

seen = set()
for label, addr in picked:
    if addr in seen:
        continue
    seen.add(addr)
    try:
        info = slab_object_info(p, addr)
    except Exception as e:
        print(label, "%x" % addr, "error", type(e).__name__)
        continue
    if info is None:
        print(label, "%x" % addr, "none")
        continue
    try:
        size = info.slab_cache.size.value_()
        base = page_to_virt(cast("struct page *", info.slab)).value_()
        objects = info.slab.objects.value_()
        index = (info.address - base) // size
        allocated = "?" if info.allocated is None else str(int(info.allocated))
        name = info.slab_cache.name.string_().decode()
        print(label, "%x" % addr, "slab", allocated, "%x" % info.address, index, objects, name)
    except Exception as e:
        print(label, "%x" % addr, "error", type(e).__name__)
