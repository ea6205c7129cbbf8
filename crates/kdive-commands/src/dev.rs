//! `dev`: character and block devices (crash's dev.c `cmd_dev()`, `dump_chrdevs()`,
//! `dump_blkdevs_v3()`) and `dev -d`/`-D`, the requests in flight on each disk
//! (`display_all_diskio()`).

use std::io::{self, Write};

use kdive_kernel::dev::{self as kdev, DiskIo, PciBus, PciDevice};
use kdive_kernel::VirtAddr;
use serde::Serialize;

use crate::format::center;
use crate::ps::Hex;
use crate::registry::{CommandSpec, Operand, Record};
use crate::session::Session;
use crate::CommandError;

const USAGE: &str = "dev [-i | -p | -d | -D]";

/// One character device region or block major.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    pub major: u32,
    pub name: String,
    /// The `cdev` (character) or a `gendisk` of the major (block); `null` with crash's
    /// `(none)`.
    pub addr: Option<Hex>,
    /// The file or block device operations and their symbol (`null` with `(none)`, or
    /// when no symbol is there: crash prints the address).
    pub operations: Option<Hex>,
    pub operations_symbol: Option<String>,
}

/// One disk of `dev -d`.
#[derive(Debug, Clone, Serialize)]
pub struct DiskRow {
    pub major: i64,
    pub gendisk: Hex,
    pub name: String,
    pub request_queue: Hex,
    pub total: u64,
    /// Requests in flight by direction (crash heads them ASYNC and SYNC where the kernel has
    /// `BLK_RW_SYNC`, 5.10; READ and WRITE since).
    pub read: u64,
    pub write: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskTable {
    /// Whether crash names the columns ASYNC and SYNC.
    pub sync_columns: bool,
    pub disks: Vec<DiskRow>,
}

/// One PCI device (`dev -p`).
#[derive(Debug, Clone, Serialize)]
pub struct PciRow {
    pub pci_dev: Hex,
    /// `DOMAIN:BUS:SLOT.FN`.
    pub name: String,
    /// The class and subclass (`class >> 8`: 0x0600 a host bridge).
    pub class: u32,
    pub vendor: u16,
    pub device: u16,
    /// crash's TYPE: the PCIe port type (ENDPOINT, ROOT_PORT, ...), ` [BRIDGE]` after it for
    /// bridge headers; `null` on kernels without `pcie_flags_reg`.
    #[serde(rename = "type")]
    pub pcie_type: Option<String>,
    #[serde(skip)]
    type_text: String,
}

/// One PCI bus: its bridge, devices, and the buses below it.
#[derive(Debug, Clone, Serialize)]
pub struct PciBusRow {
    pub pci_bus: Hex,
    pub parent: Hex,
    /// `DOMAIN:BUS`.
    pub name: String,
    pub bridge: Option<PciRow>,
    pub devices: Vec<PciRow>,
    pub children: Vec<PciBusRow>,
}

/// One `struct resource` (`dev -i`).
#[derive(Debug, Clone, Serialize)]
pub struct ResourceRow {
    pub resource: Hex,
    pub start: Hex,
    pub end: Hex,
    pub name: String,
}

/// One resource tree of `dev -i`.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceTable {
    /// The root's `end` is past 0xffff: crash prints the range 8 hex digits wide (else 4).
    pub wide: bool,
    pub resources: Vec<ResourceRow>,
}

/// crash's `do_resource_list()` line: `%8lx  %04lx-%04lx` (or `%08lx` wide), then the
/// name; a name that would pass column 80 is cut at a space and goes on under the name.
fn write_resources(out: &mut dyn Write, table: &ResourceTable) -> io::Result<()> {
    let digits = if table.wide { 8 } else { 4 };
    writeln!(
        out,
        "{}  {}  NAME",
        center("RESOURCE", 16, false),
        center("RANGE", digits * 2 + 1, false)
    )?;
    let wrap = 16 + 2 + (digits * 2 + 1) + 2;
    for r in &table.resources {
        write!(
            out,
            "{:8x}  {:0digits$x}-{:0digits$x}",
            r.resource.0, r.start.0, r.end.0
        )?;
        let (first, rest) = wrap_name(&r.name, wrap);
        writeln!(out, "  {first}")?;
        if let Some(rest) = rest {
            writeln!(out, "{}{rest}", " ".repeat(wrap))?;
        }
    }
    Ok(())
}

/// crash's cut of a long resource name: from the end, the first space with at least the
/// overflow's worth of characters after it ends the first line.
fn wrap_name(name: &str, wrap: usize) -> (&str, Option<&str>) {
    let len = name.len();
    if wrap + len <= 80 {
        return (name, None);
    }
    let over = wrap + len - 80;
    let bytes = name.as_bytes();
    // crash's scan stops before the first character: a leading space is never a cut.
    for at in (1..len).rev() {
        if bytes[at] == b' ' && len - 1 - at >= over {
            return (&name[..at], Some(&name[at + 1..]));
        }
    }
    (name, None)
}

#[derive(Debug, Clone, Serialize)]
pub struct DevRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub character: Option<Vec<DeviceRow>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<Vec<DeviceRow>>,
    /// `dev -d`, `dev -D`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_io: Option<DiskTable>,
    /// `dev -p`: the PCI root buses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pci: Option<Vec<PciBusRow>>,
    /// `dev -i`: the I/O port tree (`ioport_resource`), then the I/O memory tree
    /// (`iomem_resource`), each resource once, in crash's order (parent, its children,
    /// then its next sibling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ioports: Option<ResourceTable>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iomem: Option<ResourceTable>,
    /// The kernel's `pci_dev` has `pcie_flags_reg`: crash heads a TYPE column.
    #[serde(skip)]
    pcie_column: bool,
}

/// crash's `walk_devices()`: the header, the bus's bridge and its devices.
fn write_pci_devices(out: &mut dyn Write, bus: &PciBusRow, pcie: bool) -> io::Result<()> {
    write!(
        out,
        "  {} {} {} {}",
        center("PCI DEV", 16, false),
        center("DO:BU:SL.FN", 12, false),
        center("CLASS", 6, false),
        center("PCI_ID", 9, false)
    )?;
    if pcie {
        write!(out, " {}", center("TYPE", 10, false))?;
    }
    writeln!(out)?;
    for d in bus.bridge.iter().chain(&bus.devices) {
        writeln!(
            out,
            "  {:<16x} {} {} {} {}",
            d.pci_dev.0,
            center(&d.name, 12, false),
            center(&format!("{:04x}", d.class), 6, false),
            center(&format!("{:x}:{:x}", d.vendor, d.device), 9, false),
            center(&d.type_text, 10, false)
        )?;
    }
    Ok(())
}

/// crash's `walk_buses()`: each child bus, its devices, then its own children.
fn write_pci_children(out: &mut dyn Write, bus: &PciBusRow, pcie: bool) -> io::Result<()> {
    for child in &bus.children {
        writeln!(
            out,
            "  {} {}",
            center("PCI BUS", 16, false),
            center("PARENT BUS", 16, false)
        )?;
        writeln!(out, "  {:<16x} {:<16x}", child.pci_bus.0, child.parent.0)?;
        write_pci_devices(out, child, pcie)?;
        writeln!(out)?;
        write_pci_children(out, child, pcie)?;
    }
    Ok(())
}

/// crash's `fill_pcie_type()`.
fn pci_row(d: &PciDevice) -> PciRow {
    const PCI_HEADER_TYPE_BRIDGE: u8 = 1;
    const PCI_HEADER_TYPE_CARDBUS: u8 = 2;
    let port = d.pcie_flags.map(|flags| match (flags & 0xf0) >> 4 {
        0 => "ENDPOINT",
        1 => "LEG_END",
        4 => "ROOT_PORT",
        5 => "UPSTREAM",
        6 => "DOWNSTREAM",
        7 => "PCI_BRIDGE",
        8 => "PCIE_BRIDGE",
        9 => "RC_END",
        0xa => "RC_EC",
        _ => "",
    });
    let mut text = port.unwrap_or("").to_owned();
    if matches!(d.hdr_type, PCI_HEADER_TYPE_BRIDGE | PCI_HEADER_TYPE_CARDBUS) {
        text.push_str(" [BRIDGE]");
    }
    PciRow {
        pci_dev: Hex(d.addr),
        name: d.name.clone(),
        class: d.class >> 8,
        vendor: d.vendor,
        device: d.device,
        pcie_type: port.map(|_| text.trim_start().to_owned()),
        type_text: text,
    }
}

fn pci_bus_row(b: &PciBus) -> PciBusRow {
    PciBusRow {
        pci_bus: Hex(b.addr),
        parent: Hex(b.parent),
        name: b.name.clone(),
        bridge: b.bridge.as_ref().map(pci_row),
        devices: b.devices.iter().map(pci_row).collect(),
        children: b.children.iter().map(pci_bus_row).collect(),
    }
}

fn write_device(out: &mut dyn Write, d: &DeviceRow) -> io::Result<()> {
    write!(out, " {:>3}      {:<13} ", d.major, d.name)?;
    match (d.addr, d.operations) {
        (Some(addr), Some(ops)) => {
            let symbol = d
                .operations_symbol
                .clone()
                .unwrap_or_else(|| format!("{:x}", ops.0));
            writeln!(out, " {:>16x}  {symbol}", addr.0)
        }
        _ => writeln!(out, " {}", center("(none)", 16, false)),
    }
}

impl DevRecord {
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(table) = &self.ioports {
            write_resources(out, table)?;
        }
        if let Some(table) = &self.iomem {
            writeln!(out)?;
            write_resources(out, table)?;
        }
        if let Some(rows) = &self.character {
            writeln!(
                out,
                "CHRDEV    NAME           {}  {:<16}",
                center("CDEV", 16, false),
                "OPERATIONS"
            )?;
            for d in rows {
                write_device(out, d)?;
            }
        }
        if let Some(rows) = &self.block {
            writeln!(out)?;
            writeln!(
                out,
                "BLKDEV    NAME           {}  {:<16}",
                center("GENDISK", 16, true),
                "OPERATIONS"
            )?;
            for d in rows {
                write_device(out, d)?;
            }
        }
        if let Some(table) = &self.disk_io {
            let (read, write) = if table.sync_columns {
                ("ASYNC", "SYNC")
            } else {
                ("READ", "WRITE")
            };
            writeln!(
                out,
                "MAJOR {:<18} NAME       {:<18} TOTAL {read:>5} {write:>5} ",
                "GENDISK", "REQUEST_QUEUE"
            )?;
            for d in &table.disks {
                writeln!(
                    out,
                    "{:>5} {:<16x}   {:<10} {:<16x}   {:>5} {:>5} {:>5} ",
                    d.major, d.gendisk.0, d.name, d.request_queue.0, d.total, d.read, d.write
                )?;
            }
        }
        for root in self.pci.iter().flatten() {
            writeln!(
                out,
                "{} {}",
                center("ROOT BUS", 16, false),
                center("BUSNAME", 7, false)
            )?;
            writeln!(
                out,
                "{:<16x} {}",
                root.pci_bus.0,
                center(&root.name, 7, false)
            )?;
            write_pci_devices(out, root, self.pcie_column)?;
            write_pci_children(out, root, self.pcie_column)?;
            writeln!(out)?;
        }
        Ok(())
    }
}

fn failed(what: String) -> CommandError {
    CommandError::Failed {
        command: "dev",
        what,
    }
}

fn disk_row(d: &DiskIo) -> DiskRow {
    DiskRow {
        major: d.major,
        gendisk: Hex(d.gendisk),
        name: d.name.clone(),
        request_queue: Hex(d.queue),
        total: d.in_flight.read + d.in_flight.write,
        read: d.in_flight.read,
        write: d.in_flight.write,
    }
}

fn run(
    session: &mut Session<'_>,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Record>, CommandError> {
    // crash acts on the first of -d, -D, -p and -i and ignores the rest of the line.
    let mut first = None;
    for w in words {
        let Some(options) = w.strip_prefix('-').filter(|o| !o.is_empty()) else {
            return Err(SPEC.bad_args(format!("unexpected argument: {w}")));
        };
        for option in options.chars() {
            match option {
                'd' | 'D' | 'p' | 'i' => first = first.or(Some(option)),
                other => {
                    return Err(CommandError::BadOption {
                        command: "dev",
                        option: other,
                        usage: USAGE,
                    })
                }
            }
        }
    }
    let kernel = session.kernel();
    let disks = match first {
        Some('d') => Some(false),
        Some('D') => Some(true),
        _ => None,
    };
    let mut record = DevRecord {
        character: None,
        block: None,
        disk_io: None,
        pci: None,
        ioports: None,
        iomem: None,
        pcie_column: false,
    };
    if first == Some('i') {
        let table = |symbol: &str, warnings: &mut Vec<String>| {
            let (root_end, resources) = kdev::resources(kernel, symbol, warnings)
                .map_err(|e| failed(format!("-i: {symbol}: {e}")))?;
            Ok::<_, CommandError>(ResourceTable {
                wide: root_end > 0xffff,
                resources: resources
                    .into_iter()
                    .map(|r| ResourceRow {
                        resource: Hex(r.addr),
                        start: Hex(r.start),
                        end: Hex(r.end),
                        name: r.name,
                    })
                    .collect(),
            })
        };
        record.ioports = Some(table("ioport_resource", warnings)?);
        record.iomem = Some(table("iomem_resource", warnings)?);
        return Ok(Box::new(record));
    }
    if first == Some('p') {
        let buses =
            kdev::pci_root_buses(kernel, warnings).map_err(|e| failed(format!("-p: {e}")))?;
        if buses.is_empty() {
            return Err(failed("no PCI devices found on this system".into()));
        }
        record.pci = Some(buses.iter().map(pci_bus_row).collect());
        record.pcie_column = kernel
            .has_member("pci_dev", "pcie_flags_reg")
            .unwrap_or(false);
        return Ok(Box::new(record));
    }
    if let Some(nonzero) = disks {
        let table = kdev::disk_io(kernel, warnings).map_err(|e| failed(format!("-d: {e}")))?;
        record.disk_io = Some(DiskTable {
            sync_columns: table.sync_names,
            disks: table
                .disks
                .iter()
                .filter(|d| !nonzero || d.in_flight.read + d.in_flight.write != 0)
                .map(disk_row)
                .collect(),
        });
        return Ok(Box::new(record));
    }
    let modules = session.modules();
    let symbol = |addr: u64| {
        modules
            .lookup(kernel, VirtAddr(addr))
            .map(|hit| match hit.offset {
                0 => hit.name,
                off => format!("{}+{off}", hit.name),
            })
    };
    let row = |major: u32, name: &str, addr: u64, fops: u64| DeviceRow {
        major,
        name: name.to_owned(),
        addr: (fops != 0).then_some(Hex(addr)),
        operations: (fops != 0).then_some(Hex(fops)),
        operations_symbol: (fops != 0).then(|| symbol(fops)).flatten(),
    };
    let character = kdev::char_devices(kernel, warnings)
        .map_err(|e| failed(format!("chrdevs: {e}")))?
        .iter()
        .map(|c| row(c.major, &c.name, c.cdev, c.fops))
        .collect();
    let block = kdev::block_majors(kernel, warnings)
        .map_err(|e| failed(format!("major_names: {e}")))?
        .iter()
        .map(|b| row(b.major, &b.name, b.gendisk, b.fops))
        .collect();
    record.character = Some(character);
    record.block = Some(block);
    Ok(Box::new(record))
}

crate::impl_record!(DevRecord);

/// `dev`.
pub(crate) const SPEC: CommandSpec = CommandSpec {
    name: "dev",
    aliases: &[],
    summary: "character and block devices, disk I/O in flight",
    usage: USAGE,
    description: "Without options, the registered character devices (major, name, cdev and its\n\
file operations) and block majors (major, name, a gendisk and its block device\n\
operations; (none) when crash's search finds none).\n\
  -d  each disk: major, gendisk, name, request queue and the requests in flight on it\n\
      (from the busy tags of its blk-mq hardware queues), read and write\n\
  -D  the same, only the disks with requests in flight
  -p  the PCI buses and devices: address, DOMAIN:BUS:SLOT.FN, class, vendor:device, the
      PCIe port type
  -i  the I/O port and I/O memory resource trees, as /proc/ioports and /proc/iomem: each
      resource's address, range and name",
    examples: &[
        "dev                  character and block devices",
        "dev -d               requests in flight on each disk",
        "dev -i               I/O ports and I/O memory",
    ],
    options: &["-d", "-D", "-p", "-i"],
    operands: Operand::None,
    schema: 1,
    run,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// crash 9.0.2's `dev -i` lines (the lab's 6.12 dump), and its cut of a long name.
    #[test]
    fn resource_layout() {
        let row = |resource, start, end, name: &str| ResourceRow {
            resource: Hex(resource),
            start: Hex(start),
            end: Hex(end),
            name: name.into(),
        };
        let mut out = Vec::new();
        write_resources(
            &mut out,
            &ResourceTable {
                wide: false,
                resources: vec![row(0xffff_ffff_b3a4_b1c0, 0, 0xffff, "PCI IO")],
            },
        )
        .unwrap();
        write_resources(
            &mut out,
            &ResourceTable {
                wide: true,
                resources: vec![
                    row(0xffff_8ac3_8ffd_0c80, 0, 0xfff, "Reserved"),
                    row(
                        0xffff_8ac3_81a1_a9e0,
                        0x1_0000_0000,
                        0x1_7fff_ffff,
                        "PCI Bus 0000:00",
                    ),
                ],
            },
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "    RESOURCE        RANGE    NAME\n\
             ffffffffb3a4b1c0  0000-ffff  PCI IO\n    \
             RESOURCE            RANGE        NAME\n\
             ffff8ac38ffd0c80  00000000-00000fff  Reserved\n\
             ffff8ac381a1a9e0  100000000-17fffffff  PCI Bus 0000:00\n"
        );
        // 37 columns before the name: a 51-character name passes 80 by 8, cut at the last
        // space with at least 8 characters after it.
        let name = "aaaaaaaaaa bbbbbbbbbb cccccccccc dddddddddd eeeeeee";
        assert_eq!(
            wrap_name(name, 37),
            (
                "aaaaaaaaaa bbbbbbbbbb cccccccccc",
                Some("dddddddddd eeeeeee")
            )
        );
        assert_eq!(wrap_name("short", 37), ("short", None));
        let spaceless = "x".repeat(60);
        assert_eq!(wrap_name(&spaceless, 37), (spaceless.as_str(), None));
    }

    #[test]
    fn crash_layout() {
        let device = |major, name: &str, addr, ops: Option<(u64, &str)>| DeviceRow {
            major,
            name: name.into(),
            addr: ops.map(|_| Hex(addr)),
            operations: ops.map(|(o, _)| Hex(o)),
            operations_symbol: ops.map(|(_, s)| s.to_owned()),
        };
        let record = DevRecord {
            character: Some(vec![
                device(1, "mem", 0xffff_8ac3_81b1_7180, Some((1, "memory_fops"))),
                device(13, "input", 0, None),
            ]),
            block: Some(vec![device(
                259,
                "blkext",
                0xffff_8ac3_81d6_6400,
                Some((1, "nvme_bdev_ops")),
            )]),
            disk_io: None,
            pci: None,
            ioports: None,
            iomem: None,
            pcie_column: false,
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CHRDEV    NAME                 CDEV        OPERATIONS      \n   \
             1      mem            ffff8ac381b17180  memory_fops\n  \
             13      input               (none)     \n\
             \n\
             BLKDEV    NAME                GENDISK      OPERATIONS      \n \
             259      blkext         ffff8ac381d66400  nvme_bdev_ops\n"
        );
        let disks = DevRecord {
            character: None,
            block: None,
            disk_io: Some(DiskTable {
                sync_columns: false,
                disks: vec![DiskRow {
                    major: 259,
                    gendisk: Hex(0xffff_8ac3_81d6_6400),
                    name: "nvme0n1".into(),
                    request_queue: Hex(0xffff_8ac3_8f9a_cf20),
                    total: 0,
                    read: 0,
                    write: 0,
                }],
            }),
            pci: None,
            ioports: None,
            iomem: None,
            pcie_column: false,
        };
        let mut out = Vec::new();
        disks.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "MAJOR GENDISK            NAME       REQUEST_QUEUE      TOTAL  READ WRITE \n  \
             259 ffff8ac381d66400   nvme0n1    ffff8ac38f9acf20       0     0     0 \n"
        );
    }

    #[test]
    fn pci_layout_as_crash() {
        let device = |addr, name: &str, class, hdr_type, flags| {
            pci_row(&PciDevice {
                addr,
                name: name.into(),
                class,
                vendor: 0x1b36,
                device: 0x10,
                hdr_type,
                pcie_flags: flags,
            })
        };
        let child = PciBusRow {
            pci_bus: Hex(0xffff_8ac3_81b4_f000),
            parent: Hex(0xffff_8ac3_81b4_e800),
            name: "0000:01".into(),
            bridge: Some(device(
                0xffff_8ac3_8112_d000,
                "0000:00:1c.0",
                0x06_0400,
                1,
                Some(0x42),
            )),
            devices: Vec::new(),
            children: Vec::new(),
        };
        let record = DevRecord {
            character: None,
            block: None,
            disk_io: None,
            pci: Some(vec![PciBusRow {
                pci_bus: Hex(0xffff_8ac3_81b4_e800),
                parent: Hex(0),
                name: "0000:00".into(),
                bridge: None,
                devices: vec![device(
                    0xffff_8ac3_81b5_8000,
                    "0000:00:04.0",
                    0x01_0802,
                    0,
                    Some(0),
                )],
                children: vec![child],
            }]),
            ioports: None,
            iomem: None,
            pcie_column: true,
        };
        let mut out = Vec::new();
        record.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "    ROOT BUS     BUSNAME\n\
             ffff8ac381b4e800 0000:00\n      \
             PCI DEV      DO:BU:SL.FN  CLASS   PCI_ID      TYPE   \n  \
             ffff8ac381b58000 0000:00:04.0  0108   1b36:10   ENDPOINT \n      \
             PCI BUS         PARENT BUS   \n  \
             ffff8ac381b4f000 ffff8ac381b4e800\n      \
             PCI DEV      DO:BU:SL.FN  CLASS   PCI_ID      TYPE   \n  \
             ffff8ac38112d000 0000:00:1c.0  0604   1b36:10  ROOT_PORT [BRIDGE]\n\
             \n\
             \n"
        );
    }
}
