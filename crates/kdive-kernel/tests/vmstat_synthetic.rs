//! `kmem -z`'s zones, `kmem -V`'s counters and `kmem -f`'s free lists on a synthetic kernel
//! (a vmcore built by kdive-testkit, BTF by `BtfBuilder`): names by enum value (a later alias
//! wins), signed counters, an unreadable zone name kept as `None`, an unmapped node an error,
//! and free lists that loop or break end with what they counted, never a hang.

use std::sync::Arc;

use kdive_dump::Vmcore;
use kdive_kernel::{vmstat, Kernel, VirtAddr};
use kdive_symbols::{Btf, ElfImage, Types};
use kdive_testkit::btf::BtfBuilder;
use kdive_testkit::symtab::vmlinux_with_symbols;
use kdive_testkit::synthetic::{self, DATA_VADDR, UNMAPPED};

const PGDAT: u64 = DATA_VADDR + 0x1000;
const ZONE_SIZE: u64 = 160;
/// `zone`: `_watermark[3]` at 0, name at 24, spanned_pages at 32, present_pages at 40,
/// vm_stat[2] at 48, zone_start_pfn at 64, free_area[2] at 72 (each `free_list[2]`, then
/// `nr_free`: 40 bytes).
const ZONE_NAME: u64 = 24;
const ZONE_SPANNED: u64 = 32;
const ZONE_PRESENT: u64 = 40;
const ZONE_VM_STAT: u64 = 48;
const ZONE_START_PFN: u64 = 64;
const ZONE_FREE_AREA: u64 = 72;
const FREE_AREA_SIZE: u64 = 40;
const NODE_START_PFN: u64 = 2 * ZONE_SIZE;
const DMA_NAME: u64 = DATA_VADDR + 0x3000;
const VM_ZONE_STAT: u64 = DATA_VADDR + 0x4000;
const VM_NODE_STAT: u64 = DATA_VADDR + 0x4100;

fn btf() -> Vec<u8> {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, 1);
    let ulong = b.int("long unsigned int", 8, 0);
    let long = b.int("long int", 8, 1);
    let chr = b.int("char", 1, 1);
    let name_ptr = b.ptr(chr);
    let marks = b.array(ulong, int, 3);
    let counters = b.array(long, int, 2);
    let list_ptr = b.ptr(b.next_id() + 1);
    let list_head = b.struct_(
        "list_head",
        16,
        &[("next", list_ptr, 0), ("prev", list_ptr, 64)],
    );
    let lists = b.array(list_head, int, 2);
    b.struct_("page", 64, &[("flags", ulong, 0), ("lru", list_head, 64)]);
    let free_area = b.struct_(
        "free_area",
        40,
        &[("free_list", lists, 0), ("nr_free", ulong, 256)],
    );
    let areas = b.array(free_area, int, 2);
    let zone = b.struct_(
        "zone",
        160,
        &[
            ("_watermark", marks, 0),
            ("name", name_ptr, 192),
            ("spanned_pages", ulong, 256),
            ("present_pages", ulong, 320),
            ("vm_stat", counters, 384),
            ("zone_start_pfn", ulong, 512),
            ("free_area", areas, 576),
        ],
    );
    let zones = b.array(zone, int, 2);
    b.struct_(
        "pglist_data",
        328,
        &[("node_zones", zones, 0), ("node_start_pfn", ulong, 2560)],
    );
    b.enum_(
        "zone_stat_item",
        4,
        false,
        &[
            ("NR_FREE_PAGES", 0),
            ("NR_ZONE_LRU_BASE", 1),
            ("NR_ZONE_INACTIVE_ANON", 1),
            ("NR_VM_ZONE_STAT_ITEMS", 2),
        ],
    );
    b.enum_(
        "node_stat_item",
        4,
        false,
        &[("NR_FILE_PAGES", 0), ("NR_VM_NODE_STAT_ITEMS", 1)],
    );
    b.enum_(
        "zone_watermarks",
        4,
        false,
        &[("WMARK_MIN", 0), ("WMARK_LOW", 1), ("WMARK_HIGH", 2)],
    );
    b.build()
}

fn kernel(data: &[u8], pgdat: u64) -> Kernel {
    let vmcore = Vmcore::from_bytes("synthetic.vmcore", synthetic::vmcore(data)).unwrap();
    let path = vmlinux_with_symbols(&[
        ("contig_page_data", pgdat),
        ("vm_zone_stat", VM_ZONE_STAT),
        ("vm_node_stat", VM_NODE_STAT),
    ]);
    let image = ElfImage::open(&path).unwrap();
    let mut types = Types::new();
    types.push_vmlinux_btf(Arc::new(Btf::parse(btf(), None, "synthetic").unwrap()));
    Kernel::new(vmcore, image, types).unwrap()
}

struct Image(Vec<u8>);

impl Image {
    fn put(&mut self, vaddr: u64, bytes: &[u8]) {
        let at = usize::try_from(vaddr - DATA_VADDR).unwrap();
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn put_u64(&mut self, vaddr: u64, v: u64) {
        self.put(vaddr, &v.to_le_bytes());
    }
}

fn image() -> Image {
    let mut image = Image(vec![0u8; 0x20_0000]);
    let dma = PGDAT;
    for (i, mark) in [50u64, 62, 74].into_iter().enumerate() {
        image.put_u64(dma + 8 * i as u64, mark);
    }
    image.put(DMA_NAME, b"DMA\0");
    image.put_u64(dma + ZONE_NAME, DMA_NAME);
    image.put_u64(dma + ZONE_SPANNED, 4095);
    image.put_u64(dma + ZONE_PRESENT, 3998);
    image.put_u64(dma + ZONE_VM_STAT, 3808);
    image.put_u64(dma + ZONE_VM_STAT + 8, (-2i64) as u64);
    image.put_u64(dma + ZONE_START_PFN, 1);
    image.put_u64(PGDAT + NODE_START_PFN, 1);
    // Free lists: order 0 list 0 holds two pages, order 0 list 1 none, order 1 list 0
    // loops between two pages without coming back to its head, order 1 list 1 breaks.
    let head = |order: u64, list: u64| dma + ZONE_FREE_AREA + order * FREE_AREA_SIZE + list * 16;
    let page = |i: u64| DATA_VADDR + 0x8000 + i * 0x40;
    image.put_u64(head(0, 0), page(0));
    image.put_u64(page(0), page(1));
    image.put_u64(page(1), head(0, 0));
    image.put_u64(head(0, 1), head(0, 1));
    image.put_u64(head(1, 0), page(2));
    image.put_u64(page(2), page(3));
    image.put_u64(page(3), page(2));
    image.put_u64(head(1, 1), page(4));
    image.put_u64(page(4), UNMAPPED);
    // The second zone's name is unreadable.
    image.put_u64(dma + ZONE_SIZE + ZONE_NAME, UNMAPPED);
    image.put_u64(VM_ZONE_STAT, 19925);
    image.put_u64(VM_ZONE_STAT + 8, 4639);
    image.put_u64(VM_NODE_STAT, 4563);
    image
}

#[test]
fn zones_and_counters_read_as_crash_names_them() {
    let kernel = kernel(&image().0, PGDAT);
    let zones = vmstat::zones(&kernel).unwrap();
    assert_eq!(zones.len(), 2);
    let dma = &zones[0];
    assert_eq!((dma.node, dma.index, dma.addr), (0, 0, VirtAddr(PGDAT)));
    assert_eq!(dma.name.as_deref(), Some("DMA"));
    assert_eq!((dma.spanned_pages, dma.present_pages), (4095, 3998));
    assert_eq!(dma.watermarks, [50, 62, 74]);
    assert_eq!((dma.start_pfn, dma.node_start_pfn), (1, 1));
    let names: Vec<(&str, i64)> = dma
        .vm_stat
        .iter()
        .map(|c| (c.name.as_str(), c.value))
        .collect();
    assert_eq!(
        names,
        [("NR_FREE_PAGES", 3808), ("NR_ZONE_INACTIVE_ANON", -2)]
    );
    let second = &zones[1];
    assert_eq!(second.addr, VirtAddr(PGDAT + ZONE_SIZE));
    assert_eq!(second.name, None);
    assert_eq!(second.spanned_pages, 0);

    let stats = vmstat::vm_stats(&kernel).unwrap();
    assert_eq!(stats.zone[0].value, 19925);
    assert_eq!(stats.zone[1].name, "NR_ZONE_INACTIVE_ANON");
    assert_eq!(stats.node[0].name, "NR_FILE_PAGES");
    assert_eq!(stats.node[0].value, 4563);
    assert!(stats.numa.is_none());
    // No vm_event_item enum nor vm_event_states: an error, which kmem -V turns into a warning.
    assert!(vmstat::vm_events(&kernel).is_err());
}

#[test]
fn free_lists_count_blocks_and_stop_on_corrupt_links() {
    let kernel = kernel(&image().0, PGDAT);
    let zones = vmstat::zones(&kernel).unwrap();
    let lists = vmstat::free_lists(&kernel, &zones[0]).unwrap();
    let counted: Vec<(u32, usize, u64, bool)> = lists
        .iter()
        .map(|l| (l.order, l.migrate_type, l.blocks, l.stop.is_some()))
        .collect();
    assert_eq!(
        counted,
        [
            (0, 0, 2, false),
            (0, 1, 0, false),
            // crash's do_list() ends a list back at its first entry.
            (1, 0, 2, false),
            (1, 1, 1, true),
        ]
    );
    assert_eq!(lists[1].head, VirtAddr(PGDAT + ZONE_FREE_AREA + 16));
    // An empty zone: every list empty, the walk bounded by the zone's size.
    let empty = vmstat::free_lists(&kernel, &zones[1]).unwrap();
    assert!(empty.iter().all(|l| l.blocks <= 1));
}

#[test]
fn the_free_block_search_takes_crashs_bounds() {
    let kernel = kernel(&image().0, PGDAT);
    // Page structs: the lists link `page.lru`, 8 bytes in.
    let page = |i: u64| DATA_VADDR + 0x8000 + i * 0x40 - 8;
    let found = vmstat::find_free_block(&kernel, page(0)).unwrap().unwrap();
    assert_eq!((found.first_page, found.list.order), (page(0), 0));
    assert_eq!(found.zone.addr, VirtAddr(PGDAT));
    // One page past an order-0 block still matches it (crash's `<=`); the caller sees the
    // page is not in it.
    let found = vmstat::find_free_block(&kernel, page(1)).unwrap().unwrap();
    assert_eq!(found.first_page, page(0));
    assert!(vmstat::find_free_block(&kernel, DATA_VADDR + 0x10_0000)
        .unwrap()
        .is_none());
}

#[test]
fn an_unmapped_node_is_an_error() {
    let kernel = kernel(&image().0, UNMAPPED);
    assert!(vmstat::zones(&kernel).is_err());
}
