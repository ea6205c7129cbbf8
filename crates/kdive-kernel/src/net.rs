//! Networking, as crash's `net` reads it (net.c): the network devices of a task's network
//! namespace with their IPv4 and IPv6 addresses (`net_device.dev_list` on
//! `net.dev_base_head`, `in_device.ifa_list`, `inet6_dev.addr_list`), the ARP cache
//! (`arp_tbl`'s neighbour hash table) and the sockets a task holds open (`socket_alloc`
//! around each socket inode, its `sock`). Every list is walked bounded and cycle-checked
//! ([`crate::walk::walk_list`]); a walk that cannot go on keeps what it found and says why.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::files::{self, FsLayout};
use crate::kernel::Kernel;
use crate::walk::{null_terminated_chain, walk_list, ListParams, Walk, WalkStop, WordReader};

/// The most network devices, addresses of a device, or neighbours of a hash chain read.
pub const MAX_NET_ENTRIES: usize = 1 << 16;
/// The most hash buckets of the neighbour table read (`neigh_hash_table` grows to 2^n
/// buckets with the entries; a million is far past any real ARP cache).
pub const MAX_NEIGH_BUCKETS: u64 = 1 << 20;

/// The entries of a `list_head` ring whose head is at `head`, each `entry - node_offset`
/// (crash's `do_list()` from the head, the head itself left out); a broken ring keeps the
/// entries found and adds a warning naming `what`.
pub fn ring_entries(
    mem: &dyn WordReader,
    head: u64,
    node_offset: u64,
    what: &str,
    warnings: &mut Vec<String>,
) -> Vec<u64> {
    let walk = walk_list(
        mem,
        &ListParams {
            start: head,
            member_offset: 0,
            list_head_offset: node_offset,
            end: head,
            head_format: true,
            limit: MAX_NET_ENTRIES + 1,
        },
    );
    entries_read(walk, node_offset, what, head, warnings)
        .into_iter()
        .skip(1)
        .collect()
}

/// A walk's entries, less the last one when its own next pointer could not be read (its
/// page is not in the dump: nothing of it can be), and a warning for an early stop.
fn entries_read(
    mut walk: Walk,
    node_offset: u64,
    what: &str,
    start: u64,
    warnings: &mut Vec<String>,
) -> Vec<u64> {
    if let Some(stop) = &walk.stop {
        if let WalkStop::Unreadable { addr, .. } = stop {
            if walk.entries.last().map(|e| e.addr) == Some(addr.wrapping_sub(node_offset)) {
                walk.entries.pop();
            }
        }
        warnings.push(format!("{what} (from {start:x}): {stop}"));
    }
    walk.entries.into_iter().map(|e| e.addr).collect()
}

/// The entries of a NULL-terminated chain starting at `first`, each entry's next pointer at
/// `next_offset` (`ifa_next`, `neighbour.next`, `char_device_struct.next`):
/// [`null_terminated_chain`], the one walk for such chains (irq's actions and the timer
/// wheel's hlists use it too), so a loop ends before the repeated entry everywhere and an
/// entry whose next pointer cannot be read is still listed (its reader warns for it). A walk
/// that ends early adds a warning naming `what`.
pub fn chain_entries(
    mem: &dyn WordReader,
    first: u64,
    next_offset: u64,
    what: &str,
    warnings: &mut Vec<String>,
) -> Vec<u64> {
    if first == 0 {
        return Vec::new();
    }
    let chain = null_terminated_chain(mem, first, next_offset, 0, MAX_NET_ENTRIES);
    if let Some(stop) = chain.stop {
        warnings.push(format!("{what} (from {first:x}): {stop}"));
    }
    chain.entries
}

/// One network device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDevice {
    /// The `net_device`.
    pub addr: u64,
    pub name: String,
    /// IPv4 addresses, in `ifa_list` order, as the bytes stored (network order).
    pub ipv4: Vec<[u8; 4]>,
    /// IPv6 addresses, in `addr_list` order.
    pub ipv6: Vec<[u8; 16]>,
}

/// The name of a `net_device` (`name[IFNAMSIZ]`).
fn device_name(kernel: &Kernel, dev: u64) -> Result<String, KernelError> {
    kernel.read_char_array(VirtAddr(dev), "net_device", "name", 256)
}

/// The network namespace of `task` (`task->nsproxy->net_ns`).
pub fn task_net_namespace(kernel: &Kernel, task: VirtAddr) -> Result<VirtAddr, KernelError> {
    let nsproxy = VirtAddr(kernel.read_field(task, "task_struct", "nsproxy")?);
    Ok(VirtAddr(kernel.read_field(nsproxy, "nsproxy", "net_ns")?))
}

/// crash's `show_net_devices_v3()`: the devices on `dev_base_head` of `task`'s network
/// namespace (crash's default task is pid 0's, the init namespace), with their addresses.
pub fn net_devices(
    kernel: &Kernel,
    task: VirtAddr,
    warnings: &mut Vec<String>,
) -> Result<Vec<NetDevice>, KernelError> {
    let net = task_net_namespace(kernel, task)?;
    let head = net
        .0
        .wrapping_add(kernel.offset_of("net", "dev_base_head")?);
    let dev_list = kernel.offset_of("net_device", "dev_list")?;
    let mut devices = Vec::new();
    for dev in ring_entries(kernel, head, dev_list, "net dev_base_head", warnings) {
        let mut read = || -> Result<NetDevice, KernelError> {
            Ok(NetDevice {
                addr: dev,
                name: device_name(kernel, dev)?,
                ipv4: ipv4_addresses(kernel, dev, warnings)?,
                ipv6: ipv6_addresses(kernel, dev, warnings)?,
            })
        };
        match read() {
            Ok(d) => devices.push(d),
            Err(err) => warnings.push(format!("net_device {dev:x}: {err}")),
        }
    }
    Ok(devices)
}

/// crash's `get_device_address()`: `ip_ptr->ifa_list`, each `ifa_address`.
fn ipv4_addresses(
    kernel: &Kernel,
    dev: u64,
    warnings: &mut Vec<String>,
) -> Result<Vec<[u8; 4]>, KernelError> {
    let ip_ptr = kernel.read_field(VirtAddr(dev), "net_device", "ip_ptr")?;
    if ip_ptr == 0 {
        return Ok(Vec::new());
    }
    let first = kernel.read_field(VirtAddr(ip_ptr), "in_device", "ifa_list")?;
    let next = kernel.offset_of("in_ifaddr", "ifa_next")?;
    let mut out = Vec::new();
    for ifa in chain_entries(kernel, first, next, "in_device ifa_list", warnings) {
        match kernel.read_field(VirtAddr(ifa), "in_ifaddr", "ifa_address") {
            Ok(raw) => out.push(u32::try_from(raw & 0xffff_ffff).unwrap_or(0).to_le_bytes()),
            Err(err) => warnings.push(format!("in_ifaddr {ifa:x}: {err}")),
        }
    }
    Ok(out)
}

/// crash's `get_device_ip6_address()`: `ip6_ptr->addr_list`, each `inet6_ifaddr.addr`.
fn ipv6_addresses(
    kernel: &Kernel,
    dev: u64,
    warnings: &mut Vec<String>,
) -> Result<Vec<[u8; 16]>, KernelError> {
    if !kernel.has_member("net_device", "ip6_ptr")? {
        return Ok(Vec::new());
    }
    let ip6_ptr = kernel.read_field(VirtAddr(dev), "net_device", "ip6_ptr")?;
    if ip6_ptr == 0 {
        return Ok(Vec::new());
    }
    let head = ip6_ptr.wrapping_add(kernel.offset_of("inet6_dev", "addr_list")?);
    let if_list = kernel.offset_of("inet6_ifaddr", "if_list")?;
    let addr = kernel.offset_of("inet6_ifaddr", "addr")?;
    let mut out = Vec::new();
    for ifa in ring_entries(kernel, head, if_list, "inet6_dev addr_list", warnings) {
        let bytes = kernel.read_bytes(VirtAddr(ifa.wrapping_add(addr)), 16, "inet6_ifaddr addr")?;
        let mut a = [0u8; 16];
        a.copy_from_slice(&bytes);
        out.push(a);
    }
    Ok(out)
}

/// One entry of the ARP cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// The `neighbour`.
    pub addr: u64,
    /// `primary_key`'s first four bytes (the IPv4 address, network order).
    pub ip: [u8; 4],
    /// `ha`, the hardware address, `dev->addr_len` bytes of it.
    pub hw_addr: Vec<u8>,
    /// The device's `type` (an `ARPHRD_*`), name and `nud_state`.
    pub dev_type: u16,
    pub dev_name: String,
    pub state: u8,
}

/// crash's `dump_arp()`: every neighbour of `arp_tbl`'s hash table, bucket by bucket, each
/// chain in order (`next`; the `hash` hlist on 6.13+).
pub fn arp_cache(
    kernel: &Kernel,
    warnings: &mut Vec<String>,
) -> Result<Vec<Neighbour>, KernelError> {
    let table = kernel.symbol("arp_tbl")?;
    let nht = VirtAddr(kernel.read_field(table, "neigh_table", "nht")?);
    let buckets = if kernel.has_member("neigh_hash_table", "hash_mask")? {
        kernel
            .read_field(nht, "neigh_hash_table", "hash_mask")?
            .saturating_add(1)
    } else {
        let shift = kernel.read_field(nht, "neigh_hash_table", "hash_shift")? & 0xff;
        1u64.checked_shl(u32::try_from(shift).unwrap_or(64))
            .unwrap_or(u64::MAX)
    };
    if buckets > MAX_NEIGH_BUCKETS {
        return Err(KernelError::BadData {
            what: "arp_tbl neigh_hash_table".into(),
            addr: nht,
            why: format!("{buckets} hash buckets"),
        });
    }
    // 6.13 made the chains hlists through `neighbour.hash`: each chain links `hash` nodes;
    // before, the neighbours' `next`.
    let (array, next_offset, node_offset) =
        if kernel.has_member("neigh_hash_table", "hash_heads")? {
            (
                kernel.read_field(nht, "neigh_hash_table", "hash_heads")?,
                kernel.offset_of("hlist_node", "next")?,
                kernel.offset_of("neighbour", "hash")?,
            )
        } else {
            (
                kernel.read_field(nht, "neigh_hash_table", "hash_buckets")?,
                kernel.offset_of("neighbour", "next")?,
                0,
            )
        };
    let heads = kernel.read_bytes(VirtAddr(array), buckets * 8, "neigh_hash_table buckets")?;
    let ha = kernel.member("neighbour", "ha")?;
    let mut out = Vec::new();
    for head in heads.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(head);
        let first = u64::from_le_bytes(word);
        for node in chain_entries(kernel, first, next_offset, "neighbour chain", warnings) {
            let addr = node.wrapping_sub(node_offset);
            match neighbour(kernel, addr, ha.offset, ha.size) {
                Ok(n) => out.push(n),
                Err(err) => warnings.push(format!("neighbour {addr:x}: {err}")),
            }
        }
    }
    Ok(out)
}

fn neighbour(
    kernel: &Kernel,
    addr: u64,
    ha_offset: u64,
    ha_size: u64,
) -> Result<Neighbour, KernelError> {
    let key = kernel.offset_of("neighbour", "primary_key")?;
    let mut ip = [0u8; 4];
    kernel.read(
        VirtAddr(addr.wrapping_add(key)),
        &mut ip,
        "neighbour primary_key",
    )?;
    let dev = VirtAddr(kernel.read_field(VirtAddr(addr), "neighbour", "dev")?);
    let addr_len = kernel.read_field(dev, "net_device", "addr_len")?;
    let ha = kernel.read_bytes(
        VirtAddr(addr.wrapping_add(ha_offset)),
        ha_size.min(256),
        "neighbour ha",
    )?;
    let len = usize::try_from(addr_len).unwrap_or(0).min(ha.len());
    Ok(Neighbour {
        addr,
        ip,
        hw_addr: ha[..len].to_vec(),
        dev_type: u16::try_from(kernel.read_field(dev, "net_device", "type")? & 0xffff)
            .unwrap_or(0),
        dev_name: device_name(kernel, dev.0)?,
        state: u8::try_from(kernel.read_field(VirtAddr(addr), "neighbour", "nud_state")? & 0xff)
            .unwrap_or(0),
    })
}

/// Addresses and ports of an INET or INET6 socket (ports in host order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketAddrs {
    Inet {
        source: [u8; 4],
        source_port: u16,
        destination: [u8; 4],
        destination_port: u16,
    },
    Inet6 {
        source: [u8; 16],
        source_port: u16,
        destination: [u8; 16],
        destination_port: u16,
    },
}

/// One open socket of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSocket {
    pub fd: u64,
    /// The `struct socket` (in its `socket_alloc`, before the inode).
    pub socket: u64,
    /// `socket.sk`.
    pub sock: u64,
    /// `skc_family` (`AF_*`) and `sk_type` (`SOCK_*`).
    pub family: u16,
    pub sock_type: u16,
    /// INET and INET6 sockets' addresses (crash prints none for other families).
    pub addrs: Option<SocketAddrs>,
}

/// A task's sockets.
#[derive(Debug, Clone, Default)]
pub struct TaskSockets {
    pub sockets: Vec<OpenSocket>,
    /// The task's `fdtable.max_fds` (0 without one).
    pub max_fds: u64,
    pub warnings: Vec<String>,
}

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// crash's `dump_sockets_workhorse()`: each open descriptor whose inode is a socket, its
/// `socket`, `sock`, family, type and addresses.
pub fn task_sockets(kernel: &Kernel, task: VirtAddr) -> Result<TaskSockets, KernelError> {
    let layout = FsLayout::read(kernel)?;
    let open = files::task_files(kernel, &layout, task)?;
    // The files' paths are not shown: only what kept a descriptor from being read matters.
    let mut out = TaskSockets {
        sockets: Vec::new(),
        max_fds: open.max_fds,
        warnings: open
            .warnings
            .into_iter()
            .filter(|w| w.starts_with("fd ") || w.starts_with("fdtable "))
            .collect(),
    };
    let vfs_inode = kernel.offset_of("socket_alloc", "vfs_inode")?;
    for file in open.files.iter().filter(|f| f.kind == "SOCK") {
        let socket = file.inode.wrapping_sub(vfs_inode);
        match open_socket(kernel, file.fd, socket) {
            Ok(s) => out.sockets.push(s),
            Err(err) => out
                .warnings
                .push(format!("fd {}: socket {socket:x}: {err}", file.fd)),
        }
    }
    Ok(out)
}

fn read_u16(kernel: &Kernel, addr: u64, ty: &str, path: &str) -> Result<u16, KernelError> {
    let offset = kernel.offset_of(ty, path)?;
    let mut b = [0u8; 2];
    kernel.read(VirtAddr(addr.wrapping_add(offset)), &mut b, path)?;
    Ok(u16::from_le_bytes(b))
}

fn read_array<const N: usize>(
    kernel: &Kernel,
    addr: u64,
    ty: &str,
    path: &str,
) -> Result<[u8; N], KernelError> {
    let offset = kernel.offset_of(ty, path)?;
    let mut b = [0u8; N];
    kernel.read(VirtAddr(addr.wrapping_add(offset)), &mut b, path)?;
    Ok(b)
}

fn open_socket(kernel: &Kernel, fd: u64, socket: u64) -> Result<OpenSocket, KernelError> {
    let sock = kernel.read_field(VirtAddr(socket), "socket", "sk")?;
    let family = read_u16(kernel, sock, "sock", "__sk_common.skc_family")?;
    let sock_type = read_u16(kernel, sock, "sock", "sk_type")?;
    // The ports are big-endian in memory; crash prints them `ntohs()`ed.
    let port = |ty: &str, path: &str| read_u16(kernel, sock, ty, path).map(u16::from_be);
    let addrs = match family {
        AF_INET => Some(SocketAddrs::Inet {
            source: read_array(kernel, sock, "sock", "__sk_common.skc_rcv_saddr")?,
            source_port: port("inet_sock", "inet_sport")?,
            destination: read_array(kernel, sock, "sock", "__sk_common.skc_daddr")?,
            destination_port: port("sock", "__sk_common.skc_dport")?,
        }),
        AF_INET6 => Some(SocketAddrs::Inet6 {
            source: read_array(kernel, sock, "sock", "__sk_common.skc_v6_rcv_saddr")?,
            source_port: port("inet_sock", "inet_sport")?,
            destination: read_array(kernel, sock, "sock", "__sk_common.skc_v6_daddr")?,
            destination_port: port("sock", "__sk_common.skc_dport")?,
        }),
        _ => None,
    };
    Ok(OpenSocket {
        fd,
        socket,
        sock,
        family,
        sock_type,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use crate::walk::Mem;

    #[test]
    fn rings_leave_out_the_head_and_stop_on_damage() {
        // head 0x100 -> 0x210 -> 0x310 -> 0x410 -> head; entries at node offset 0x10.
        let mut mem = Mem(HashMap::from([
            (0x100, 0x210),
            (0x210, 0x310),
            (0x310, 0x410),
            (0x410, 0x100),
        ]));
        let mut warnings = Vec::new();
        assert_eq!(
            ring_entries(&mem, 0x100, 0x10, "ring", &mut warnings),
            vec![0x200, 0x300, 0x400]
        );
        assert!(warnings.is_empty());
        // A loop that never comes back to the head.
        mem.0.insert(0x410, 0x310);
        let found = ring_entries(&mem, 0x100, 0x10, "ring", &mut warnings);
        assert_eq!(&found[..3], &[0x200, 0x300, 0x400]);
        assert!(found.len() <= 4, "{found:x?}");
        assert!(warnings[0].contains("duplicate"), "{warnings:?}");
        // An unreadable entry keeps what came before it.
        mem.0.insert(0x410, 0x999);
        let mut warnings = Vec::new();
        let found = ring_entries(&mem, 0x100, 0x10, "ring", &mut warnings);
        assert_eq!(found, vec![0x200, 0x300, 0x400]);
        assert!(warnings[0].contains("999"), "{warnings:?}");
        // A NULL next in a ring is damage too.
        mem.0.insert(0x410, 0);
        let mut warnings = Vec::new();
        ring_entries(&mem, 0x100, 0x10, "ring", &mut warnings);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn chains_end_at_null_and_stop_on_loops() {
        // next pointers at offset 8.
        let mut mem = Mem(HashMap::from([
            (0x108, 0x200),
            (0x208, 0x300),
            (0x308, 0x400),
            (0x408, 0),
        ]));
        let mut warnings = Vec::new();
        assert_eq!(
            chain_entries(&mem, 0x100, 8, "chain", &mut warnings),
            vec![0x100, 0x200, 0x300, 0x400]
        );
        assert!(chain_entries(&mem, 0, 8, "chain", &mut warnings).is_empty());
        assert!(warnings.is_empty());
        // A loop past the first entries: each entry once, the repeated one left out, as
        // irq's and timer's chains (one walker, walk::null_terminated_chain).
        mem.0.insert(0x408, 0x300);
        let found = chain_entries(&mem, 0x100, 8, "chain", &mut warnings);
        assert_eq!(found, vec![0x100, 0x200, 0x300, 0x400]);
        assert!(warnings[0].contains("duplicate"), "{warnings:?}");
        // An entry whose next pointer cannot be read is listed (its address is known; its
        // reader warns for what it cannot read) and ends the chain with a warning.
        mem.0.insert(0x408, 0x777);
        let mut warnings = Vec::new();
        let found = chain_entries(&mem, 0x100, 8, "chain", &mut warnings);
        assert_eq!(found, vec![0x100, 0x200, 0x300, 0x400, 0x777]);
        assert!(warnings[0].contains("777"), "{warnings:?}");
        // A chain longer than the limit stops there.
        let long = Mem((0..=MAX_NET_ENTRIES as u64 + 5)
            .map(|i| (0x1000 + i * 0x10 + 8, 0x1000 + (i + 1) * 0x10))
            .collect());
        let mut warnings = Vec::new();
        let found = chain_entries(&long, 0x1000, 8, "chain", &mut warnings);
        assert_eq!(found.len(), MAX_NET_ENTRIES);
        assert!(warnings[0].contains("limit"), "{warnings:?}");
    }
}
