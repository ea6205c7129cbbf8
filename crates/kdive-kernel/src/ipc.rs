//! System V IPC objects (shared memory, semaphore arrays, message queues) of the initial IPC
//! namespace, as crash's `ipcs` lists them: each `ipc_ids`' `ipcs_idr` walked as the xarray
//! it is (bounded), each entry a `kern_ipc_perm` inside its object.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::walk::{walk_xarray, XarrayLayout};

/// The most objects read of one kind (`kernel.shmmni` and friends default to 4096 and are
/// at most IPCMNI, 32768; 2^24 with `ipcmni_extend`).
const MAX_IPC_OBJECTS: usize = 1 << 16;

/// Which table: its index in `ipc_namespace.ids[]`, its struct and the `kern_ipc_perm`
/// member in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpcKind {
    SharedMemory,
    Semaphores,
    MessageQueues,
}

impl IpcKind {
    fn ids_index(self) -> u64 {
        match self {
            IpcKind::Semaphores => 0,
            IpcKind::MessageQueues => 1,
            IpcKind::SharedMemory => 2,
        }
    }

    fn object(self) -> (&'static str, &'static str) {
        match self {
            IpcKind::SharedMemory => ("shmid_kernel", "shm_perm"),
            IpcKind::Semaphores => ("sem_array", "sem_perm"),
            IpcKind::MessageQueues => ("msg_queue", "q_perm"),
        }
    }
}

/// One IPC object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcObject {
    /// The `shmid_kernel`, `sem_array` or `msg_queue`.
    pub addr: u64,
    pub key: u32,
    pub id: i64,
    pub uid: u32,
    /// `kern_ipc_perm.mode`: permissions and, for shared memory, `SHM_DEST`/`SHM_LOCKED`.
    pub mode: u64,
    /// Bytes (`shm_segsz`, `q_cbytes`) or semaphores (`sem_nsems`).
    pub size: u64,
    /// Attaches (`shm_nattch`) or messages (`q_qnum`); 0 for semaphores.
    pub count: u64,
}

/// The objects of `kind` in the initial task's IPC namespace, in id order; `Ok(None)` when
/// the namespace has none in use. Objects being removed (`deleted`) are left out, as crash
/// does; `warnings` says where a walk stopped.
pub fn ipc_objects(
    kernel: &Kernel,
    kind: IpcKind,
    warnings: &mut Vec<String>,
) -> Result<Option<Vec<IpcObject>>, KernelError> {
    let init = kernel.symbol("init_task")?;
    let nsproxy = VirtAddr(kernel.read_field(init, "task_struct", "nsproxy")?);
    let ns = VirtAddr(kernel.read_field(nsproxy, "nsproxy", "ipc_ns")?);
    let ids = VirtAddr(
        ns.0.wrapping_add(kernel.offset_of("ipc_namespace", "ids")?)
            .wrapping_add(kind.ids_index() * kernel.struct_size("ipc_ids")?),
    );
    if kernel.read_field(ids, "ipc_ids", "in_use")? == 0 {
        return Ok(None);
    }
    let idr = ids
        .0
        .wrapping_add(kernel.offset_of("ipc_ids", "ipcs_idr")?)
        .wrapping_add(kernel.offset_of("idr", "idr_rt")?);
    let walk = walk_xarray(
        kernel,
        idr,
        false,
        XarrayLayout::read(kernel)?,
        MAX_IPC_OBJECTS,
    );
    warnings.extend(walk.warnings);
    if let Some(stop) = walk.stop {
        warnings.push(format!("ipcs: the {kind:?} table at {ids}: {stop}"));
    }
    let (ty, perm) = kind.object();
    let perm_offset = kernel.offset_of(ty, perm)?;
    let mut objects = Vec::new();
    for entry in walk.entries {
        let addr = entry.addr.wrapping_sub(perm_offset);
        let perm = VirtAddr(entry.addr);
        let field = |name: &str| kernel.read_field(perm, "kern_ipc_perm", name);
        if field("deleted")? != 0 {
            continue;
        }
        let object = VirtAddr(addr);
        let (size, count) = match kind {
            IpcKind::SharedMemory => (
                kernel.read_field(object, ty, "shm_segsz")?,
                kernel.read_field(object, ty, "shm_nattch")?,
            ),
            IpcKind::Semaphores => (kernel.read_field(object, ty, "sem_nsems")?, 0),
            IpcKind::MessageQueues => (
                kernel.read_field(object, ty, "q_cbytes")?,
                kernel.read_field(object, ty, "q_qnum")?,
            ),
        };
        objects.push(IpcObject {
            addr,
            key: u32::try_from(field("key")? & 0xffff_ffff).unwrap_or(0),
            id: kernel.read_field_signed(perm, "kern_ipc_perm", "id")?,
            uid: u32::try_from(field("uid.val")? & 0xffff_ffff).unwrap_or(0),
            mode: field("mode")?,
            size,
            count,
        });
    }
    Ok(Some(objects))
}
